"""Executors: where a plan's cells run. One small protocol, two implementations: ``local``
(this process, one cell after another) and ``ray`` (``bench/ray_executor.py``, imported only
when chosen). Both run ``bench.cell.run_cell`` and yield each finished cell to the runner, which
is the only writer of the run directory.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch

from motiongrid.bench.cell import Finished, RunPlan, run_cell
from motiongrid.bench.config import ConfigError
from motiongrid.bench.grid import Cell
from motiongrid.bench.scoring import resolve_device
from motiongrid.bench.signals import StopOnSignal


class Executor(Protocol):
    name: str

    def resolve_device(self, name: str) -> torch.device:
        """``auto``/``cpu``/``cuda`` -> the device cells run on (``auto`` as this executor sees it)."""

    def execute(self, plan: RunPlan, todo: list[Cell], stop: StopOnSignal) -> Iterator[Finished]:
        """Run ``todo`` under ``plan``, yielding each cell as it finishes; hand out no new cell
        once ``stop`` has seen a signal."""

    def info(self) -> dict:
        """Where this invocation ran, for run.json."""

    def close(self) -> None:
        """Release what ``execute`` started."""


class LocalExecutor:
    """The default: cells one after another in this process, on ``--device``."""
    name = "local"

    def resolve_device(self, name: str) -> torch.device:
        return resolve_device(name)

    def execute(self, plan: RunPlan, todo: list[Cell], stop: StopOnSignal) -> Iterator[Finished]:
        """Each cell in turn, its video written through the plan; stops between cells on a signal,
        and after loading a model (which can take minutes) before the cell that needed it starts."""
        for cell in todo:
            if stop.signum is not None:
                break
            load_s = plan.load(cell.variant)
            if stop.signum is not None:
                break
            yield Finished(cell, run_cell(cell, plan.methods, plan.metrics, plan.device, plan.save_video), None, load_s)

    def info(self) -> dict:
        return {"name": self.name}

    def close(self) -> None:
        pass


def make_executor(name: str, ray_address: str | None = None, workers: int | None = None) -> Executor:
    """``local`` or ``ray`` (Ray is an optional extra, imported only here)."""
    if name == "ray":
        from motiongrid.bench.ray_executor import RayExecutor

        return RayExecutor(address=ray_address, workers=workers)
    if ray_address or workers:
        raise ConfigError("--ray-address and --workers need the ray executor (--executor ray)")
    return LocalExecutor()
