"""Files written whole or not at all, under names no concurrent writer shares.

``atomic_path(dest)`` yields a unique temporary path beside ``dest`` (``tempfile`` names, so two
processes writing the same file never share a temporary); on success it is renamed over
``dest`` (atomic on POSIX and Windows), on any error it is removed, so a kill, a full disk or a
crash never leaves a truncated file under the final name nor a stray temporary. The file gets
the permissions any newly created file gets (0666 less the umask), as the SQLite store does, not
``mkstemp``'s owner-only 0600: a teammate who can read the store can read the videos and run.json.
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
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(dest: str | os.PathLike, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def current_umask() -> int:
    """The process umask. Linux reports it in /proc without changing it; elsewhere it is read by
    setting and restoring it (harmless here: temporaries are created by mkstemp with 0600)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
