"""Stop a run between cells on SIGINT/SIGTERM.

Inside ``StopOnSignal()`` the first SIGINT or SIGTERM only sets ``stop.signum``; the runner
checks it after each cell, so the cell in progress finishes and is stored, then the run stops
with a consistent store. A second signal restores the default behaviour and re-delivers it,
abandoning the cell in progress: its video is written atomically and its row in one
transaction, so that also leaves nothing half-written.
"""
from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # second signal: stop now
            self._restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.signum = signum

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
