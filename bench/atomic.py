"""Files written whole or not at all, under names no concurrent writer shares.

``atomic_path(dest)`` yields a unique temporary path beside ``dest`` (``tempfile`` names, so two
processes writing the same file never share a temporary); on success it is renamed over
``dest`` (atomic on POSIX and Windows), on any error it is removed, so a kill, a full disk or a
crash never leaves a truncated file under the final name nor a stray temporary.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(dest: str | os.PathLike, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)
