"""Disk cache for derived per-clip data (reference features, tracks, motion representations).

Entries are keyed by (clip content hash, extractor name, preprocessing/settings dict), so a
second grid over the same clips reuses them and any change of settings misses. Values are
dicts of tensors stored as safetensors, written atomically.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from motiongrid.bench.hashing import sha256_json


def default_cache_dir() -> Path:
    return Path(os.environ.get("MOTIONGRID_CACHE", Path.home() / ".cache" / "motiongrid")) / "features"


class FeatureCache:
    def __init__(self, root: str | Path | None = None, enabled: bool = True):
        self.root = Path(root) if root else default_cache_dir()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def key(self, clip_hash: str, extractor: str, settings: dict) -> str:
        return sha256_json({"clip": clip_hash, "extractor": extractor, "settings": settings}, 24)

    def _path(self, extractor: str, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in extractor)
        return self.root / safe / f"{key}.safetensors"

    def get(self, clip_hash: str, extractor: str, settings: dict) -> dict[str, torch.Tensor] | None:
        if not self.enabled:
            return None
        path = self._path(extractor, self.key(clip_hash, extractor, settings))
        if not path.exists():
            self.misses += 1
            return None
        try:
            value = load_file(path)
        except Exception:  # a corrupt entry is a miss, and gets rewritten
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, clip_hash: str, extractor: str, settings: dict, value: dict[str, torch.Tensor]) -> None:
        if not self.enabled:
            return
        path = self._path(extractor, self.key(clip_hash, extractor, settings))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
        save_file({k: v.detach().contiguous().cpu() for k, v in value.items()}, str(tmp))
        os.replace(tmp, path)

    def get_or_compute(self, clip_hash: str, extractor: str, settings: dict, compute) -> dict[str, torch.Tensor]:
        """The cached value, else ``compute()`` stored. Computed once per entry even when several
        processes (Ray workers over a shared cache) want it at once: the first holds a lock on the
        entry while it computes; the others wait for it and read its result."""
        value = self.get(clip_hash, extractor, settings)
        if value is None and self.enabled:
            path = self._path(extractor, self.key(clip_hash, extractor, settings))
            with _entry_lock(path):
                if path.exists():   # another process computed it while this one waited
                    self.misses -= 1
                    value = self.get(clip_hash, extractor, settings)
                if value is None:
                    value = compute()
                    self.put(clip_hash, extractor, settings, value)
        elif value is None:
            value = compute()
        return value


@contextlib.contextmanager
def _entry_lock(path: Path):
    """An exclusive flock on ``<entry>.lock`` (released by the kernel however the holder ends);
    without fcntl, or on a file system that refuses locks, no lock: at worst an entry is
    computed twice."""
    try:
        import fcntl
    except ImportError:   # Windows
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)
