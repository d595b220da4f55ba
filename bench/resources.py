"""Peak memory and wall time of one cell's stages.

On CUDA: ``torch.cuda.max_memory_allocated`` reset before the cell. On CPU: the peak resident
set size while the cell ran, sampled by a background thread (ru_maxrss cannot be reset).
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psutil
import torch


class ResourceMeter:
    def __init__(self, device: torch.device, interval_s: float = 0.005):
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.timings: dict[str, float] = {}
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = None

    @property
    def memory_kind(self) -> str:
        return "cuda_max_allocated" if self.device.type == "cuda" else "cpu_peak_rss"

    @property
    def peak_memory_mb(self) -> float:
        return self.peak_bytes / 2**20

    def _poll_rss(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, proc.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> ResourceMeter:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_bytes = psutil.Process().memory_info().rss
            self._thread = threading.Thread(target=self._poll_rss, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, psutil.Process().memory_info().rss)

    @contextmanager
    def stage(self, name: str):
        """Time one stage (load, generate, score); CUDA work is synchronised at the edges."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
