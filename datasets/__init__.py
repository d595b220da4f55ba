"""datasets package (see README: one file per family).

The built-in clip sets are declared here, so that listing them imports no torch; each module is
imported when a run first needs its class. A class's attributes must match its declaration
(tests/test_startup.py checks it).
"""
from motiongrid.bench.registry import datasets

datasets.declare("shapes", "motiongrid.datasets.shapes:ShapesClipSet",
                 description="procedural textured shapes with ground-truth tracks (no files needed)")
datasets.declare("folder", "motiongrid.datasets.folder:FolderClipSet",
                 description="videos (mp4/webm/gif) or frame folders under root, listed in a CSV/YAML manifest")
datasets.declare("davis", "motiongrid.datasets.folder:DavisClipSet",
                 description="DAVIS-2017 JPEG frame folders from a local root; prompts from a manifest")
