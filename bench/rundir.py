"""One run at a time per run directory: an exclusive lock on ``RUN_DIR/.lock``.

``fcntl.flock`` is released by the kernel when the process ends, however it ends (kill -9
included), so a stale lock never blocks a resume. A second run on the same directory is
refused at once with the holder's pid, instead of two runs interleaving cells and run.json.
"""
from __future__ import annotations

import os
from pathlib import Path

from motiongrid.bench.errors import RunDirBusy

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; runs are not guarded against each other
    fcntl = None

LOCK_NAME = ".lock"


class RunDirLock:
    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunDirBusy(f"{self.path.parent}: another motiongrid run (pid {holder}) is writing to this "
                                 f"run directory; wait for it to finish, or use another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)   # closing drops the flock; the file stays (removing it would race)
            self.fd = None

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

