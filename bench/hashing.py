"""The one place sha256 is computed: of files (streamed), of text, of JSON values.

Digests that go into cell keys, cache keys and clip hashes are built here so that their
encoding (text as UTF-8, files in 1 MiB blocks, JSON with sorted keys) is written once.
"""
from __future__ import annotations

import hashlib
import json
import os

CHUNK = 1 << 20


def update_file(h, path: str | os.PathLike) -> None:
    """Feed ``path``'s bytes into the hash object ``h``, a block at a time."""
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)


def sha256_file(path: str | os.PathLike) -> str:
    """Full hex sha256 of a file's bytes (what ``sha256sum`` prints)."""
    h = hashlib.sha256()
    update_file(h, path)
    return h.hexdigest()


def sha256_text(text: str, length: int | None = None) -> str:
    """Hex sha256 of ``text`` (UTF-8), cut to ``length`` characters when given."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def sha256_json(value, length: int | None = None, default=str) -> str:
    """Hex sha256 of ``value`` as JSON with sorted keys (``default`` for what JSON lacks)."""
    return sha256_text(json.dumps(value, sort_keys=True, default=default), length)
