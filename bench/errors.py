"""The one split the CLI makes between errors: the user's (input, files, environment) and ours.

A ``UserError`` is a problem the user can fix; its message names the input, what was expected
and, where there is one, the fix. The CLI prints it as one line and exits 2. Anything else that
escapes a command is an internal error: one line, the traceback in a log file, its own exit code.
This module imports nothing heavy: the CLI imports it at start-up.
"""
from __future__ import annotations

import os
import signal
import tempfile
import time
import traceback
from pathlib import Path

DEBUG_ENV = "MOTIONGRID_DEBUG"


class UserError(Exception):
    """Mixin base for errors in the user's input, files or environment."""


class StoreError(UserError, ValueError):
    """A results.sqlite that is not a motiongrid store, or one this version cannot read."""


class StoreWriteError(UserError, RuntimeError):
    """A finished cell's row could not be written (disk full, say); the run stopped cleanly."""


class RunDirBusy(UserError, RuntimeError):
    """Another process holds the run directory's lock."""


class Interrupted(Exception):
    """A run stopped by SIGINT/SIGTERM after the cell in progress; the store is consistent."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum   # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def did_you_mean(word: str, choices) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, else ""."""
    import difflib

    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def is_user_error(exc: BaseException) -> bool:
    # OSError covers the environment: a path that cannot be a directory, no permission, disk full.
    return isinstance(exc, (UserError, OSError))


def describe(exc: BaseException) -> str:
    """One line for the user. OSErrors get their path and the system's reason, not a repr."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def debug_enabled(flag: bool = False) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def write_traceback(exc: BaseException, folder: str | os.PathLike | None) -> Path:
    """Write ``exc``'s traceback to a log file in ``folder`` (if it is a writable directory),
    else to a temporary file; return its path."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    name = f"motiongrid-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    if folder is not None and Path(folder).is_dir():
        try:
            path = Path(folder) / name
            path.write_text(text)
            return path
        except OSError:
            pass
    fd, tmp = tempfile.mkstemp(prefix=name.removesuffix(".log") + "-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return Path(tmp)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
