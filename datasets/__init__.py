"""datasets package (see README: one file per family)."""
