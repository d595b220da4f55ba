"""Cheap inputs for cell keys, so a finished grid re-runs without loading (or importing) models.

``file_sha256(path)``: a weight file's sha256, cached by (path, size, mtime): hashing a
multi-GB checkpoint on every run would cost more than the no-op re-run itself.
``memo(namespace, inputs, compute)``: a JSON value that is a pure function of ``inputs``
(e.g. a sampler's resolved timesteps, which need diffusers, ~2 s to import), computed once.
Both live under ``$MOTIONGRID_CACHE`` (default ``~/.cache/motiongrid``); a missing, corrupt or
unwritable cache only costs the recomputation.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from motiongrid.bench.hashing import sha256_file, sha256_json


def cache_root() -> Path:
    return Path(os.environ.get("MOTIONGRID_CACHE", Path.home() / ".cache" / "motiongrid")).expanduser()


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
        tmp.write_text(json.dumps(value, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache is a slower run, not a failed one


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of ``path``, recomputed only when its size or mtime changed since last time."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns]
    index_path = cache_root() / "digests.json"
    index = _read_json(index_path)
    index = index if isinstance(index, dict) else {}
    hit = index.get(str(path))
    if isinstance(hit, dict) and hit.get("stamp") == stamp:
        return hit["sha256"]
    digest = sha256_file(path)
    index[str(path)] = {"stamp": stamp, "sha256": digest}
    _write_json(index_path, index)
    return digest


def memo(namespace: str, inputs: dict, compute: Callable[[], Any]) -> Any:
    """``compute()`` (a JSON value) cached under the hash of ``inputs``, which must hold
    everything the value depends on (including code versions)."""
    key = sha256_json(inputs, 24)
    path = cache_root() / "memo" / namespace / f"{key}.json"
    hit = _read_json(path)
    if isinstance(hit, dict) and "value" in hit:
        return hit["value"]
    value = compute()
    _write_json(path, {"inputs": inputs, "value": value})
    return value
