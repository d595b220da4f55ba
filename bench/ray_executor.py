"""Run a grid's cells on a Ray cluster: ``motiongrid run --executor ray [--ray-address ADDR]``.

The driver (the ``motiongrid run`` process) keys the cells, holds the run directory's lock and
is the only writer of results.sqlite: it hands cells to worker actors and, as each future
completes, commits the cell through the runner's own write path (video atomically, then the
row). Same cell keys, same store, same resume: a run directory started locally resumes on Ray
and the other way round.

Workers are actors, one per worker slot, in pools by what their methods declare
(``Method.resources``: GPUs on a CUDA grid, CPUs = torch threads, host memory). A worker loads a
method's model once, before its first cell of that variant, and scores on its own device with
its own copy of the metrics. A worker process that dies mid-cell is restarted by Ray and the
cell retried (``retries`` times: Ray's ``max_task_retries``) before it is stored as failed with
the reason; a cell is never lost or stored twice because only the driver writes, after the
future completes.

Shared storage on a real cluster: the run directory needs to be on the driver only; the weights
(``MOTIONGRID_WEIGHTS``, ``TORCH_HOME``, ``HF_HOME``) and the feature cache (``MOTIONGRID_CACHE``)
must be readable at the same paths on every node; the driver forwards those variables to its
workers, so point them at shared storage and reference-side features are computed once per clip
for the whole cluster (``bench/cache.py`` locks an entry while one worker computes it).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections import deque
from collections.abc import Iterator

import torch

from motiongrid.bench.api import Method
from motiongrid.bench.grid import Cell, MethodVariant
from motiongrid.bench.ray_address import RayAuthError, RayUnavailable, check_address
from motiongrid.bench.runner import MethodSet, Runner, new_result, run_cell
from motiongrid.bench.scoring import DeviceError, build_metrics, prepare_metrics
from motiongrid.bench.signals import StopOnSignal
from motiongrid.bench.store import CellResult
from motiongrid.bench.video import encode_video

log = logging.getLogger(__name__)

INSTALL = "pip install -e '.[ray]' (or: pip install 'ray>=2.9')"
# Where weights and cached features live: workers must look where the driver looks.
FORWARDED_ENV = ("MOTIONGRID_CACHE", "MOTIONGRID_WEIGHTS", "MOTIONGRID_CLEANFID_DIR", "TORCH_HOME", "HF_HOME",
                 "HF_HUB_OFFLINE")
RETRIES = 2   # a cell whose worker dies is run at most 1 + RETRIES times


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"--executor ray needs Ray, which is not installed here: {INSTALL}") from None
    return ray


class CellWorker:
    """One worker process (a Ray actor): the cells of its pool's method variants, one at a
    time, through ``run_cell``; it returns each result with its video encoded as mp4 bytes."""

    def __init__(self, variants: list[MethodVariant], fingerprints: dict, metric_names: list[str],
                 metric_options: dict, device: str, threads: int):
        torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.methods = MethodSet(variants, self.device, fingerprints)
        metrics, self.unavailable = build_metrics(metric_names, metric_options)
        self.metrics = prepare_metrics(metrics, self.device, self.unavailable)

    def info(self) -> dict:
        import ray

        return {"pid": os.getpid(), "host": socket.gethostname(), "node": ray.get_runtime_context().get_node_id(),
                "device": str(self.device), "threads": torch.get_num_threads()}

    def run(self, cell: Cell, clip) -> tuple[CellResult, bytes | None, float | None]:
        """(result, mp4 bytes or None, seconds spent loading the model before this cell)."""
        cell = dataclasses.replace(cell, clip=clip)
        load_s = self.methods.load(cell.variant)
        encoded: list[bytes] = []
        result = run_cell(cell, self.methods, self.metrics, self.device,
                          lambda video, artifact: encoded.append(encode_video(video)))
        if result.status == "ok":
            for name, reason in self.unavailable.items():   # runs on the driver, not on this node
                result.metrics[name] = None
                result.metric_errors[name] = f"unavailable on worker {socket.gethostname()}: {reason}"
        return result, (encoded[0] if encoded else None), load_s


@dataclasses.dataclass(frozen=True)
class Shape:
    """What each worker of a pool reserves from Ray."""
    gpus: float
    cpus: int
    memory_gb: float | None

    @classmethod
    def of(cls, method_cls: type[Method], device: torch.device) -> Shape:
        declared = {**Method.resources, **method_cls.resources}
        gpus = float(declared.get("gpus") or 0) if device.type == "cuda" else 0.0
        return cls(gpus, max(1, int(declared.get("cpus") or 1)), declared.get("memory_gb"))

    def options(self) -> dict:
        out = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.memory_gb:
            out["memory"] = int(self.memory_gb * 2**30)
        return out


class RayExecutor:
    """Cells as Ray actor tasks; this process stays the only writer (see the module docstring)."""
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, retries: int | None = None):
        self.ray = import_ray()
        self.address, self.workers = address, workers
        self.retries = RETRIES if retries is None else retries
        self._started = False     # we started (and so shut down) a local Ray instance
        self.worker_info: list[dict] = []   # pid, host, device per worker, once started

    # -- cluster ---------------------------------------------------------------------
    def connect(self) -> None:
        if self.ray.is_initialized():
            return
        address = self.address or os.environ.get("RAY_ADDRESS")
        if address and address not in ("auto", "local"):
            check_address(address)   # one clear error in seconds, where ray.init would retry for long
        try:
            # address None: Ray's rule: the cluster `ray start` began on this machine, else a new local instance
            self.ray.init(address=self.address, include_dashboard=False, logging_level=logging.ERROR)
        except self.ray.exceptions.AuthenticationError as exc:
            raise RayAuthError(f"Ray cluster at {address or 'this machine'}: {_first_line(exc)}") from None
        except ConnectionError as exc:
            raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {str(exc).rstrip('.')}; start it "
                                 f"with `ray start --head` on that machine, or fix --ray-address / RAY_ADDRESS"
                                 ) from None
        self._started = True

    def resolve_device(self, name: str) -> torch.device:
        """The grid's device on the cluster: "auto" is CUDA when the cluster has GPUs."""
        self.connect()
        gpus = self.ray.cluster_resources().get("GPU", 0)
        if name == "auto":
            return torch.device("cuda" if gpus else "cpu")
        if name == "cuda" and not gpus:
            raise DeviceError("device 'cuda' requested but the Ray cluster has no GPUs (use --device cpu or auto)")
        return torch.device(name)

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False

    def info(self) -> dict:
        """For run.json: where this invocation ran."""
        if not self.ray.is_initialized():
            return {"name": self.name}
        resources = {k: v for k, v in self.ray.cluster_resources().items() if not k.startswith("node:")}
        for k in ("memory", "object_store_memory"):
            if k in resources:
                resources[k + "_gb"] = round(resources.pop(k) / 2**30, 2)
        return {"name": self.name, "ray": self.ray.__version__, "address": self.ray.get_runtime_context().gcs_address,
                "nodes": sum(n["Alive"] for n in self.ray.nodes()), "cluster_resources": resources,
                "retries": self.retries, "workers": [w for w in self.worker_info if w]}

    # -- cells -------------------------------------------------------------------------
    def _pools(self, runner: Runner, todo: list[Cell]) -> dict[Shape, list[Cell]]:
        pools: dict[Shape, list[Cell]] = {}
        for cell in todo:
            pools.setdefault(Shape.of(cell.variant.method_cls, runner.device), []).append(cell)
        return pools

    def _size(self, shape: Shape, cells: int) -> int:
        """Workers for a pool: as many as the cluster fits (or --workers), at most one per cell."""
        resources = self.ray.cluster_resources()
        fits = int(resources.get("CPU", 1) // shape.cpus)
        if shape.gpus:
            fits = min(fits, int(resources.get("GPU", 0) // shape.gpus))
        if fits < 1:
            raise RayUnavailable(f"no room on the Ray cluster for a worker needing {shape.options()} "
                                 f"(cluster: {resources}); lower the method's resources or add nodes")
        return max(1, min(cells, self.workers or fits, fits))

    def _start(self, runner: Runner, shape: Shape, cells: list[Cell], count: int) -> list:
        ray = self.ray
        variants = list({c.variant.label: c.variant for c in cells}.values())
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        env["OMP_NUM_THREADS"] = str(shape.cpus)
        worker = ray.remote(CellWorker).options(
            **shape.options(), max_restarts=-1, max_task_retries=self.retries, runtime_env={"env_vars": env})
        device = "cuda" if shape.gpus else "cpu"   # Ray sets CUDA_VISIBLE_DEVICES to the worker's GPUs
        metrics = [m.name for m in runner.metrics]
        return [worker.remote(variants, runner.fingerprints, metrics, runner.config.metric_options, device, shape.cpus)
                for _ in range(count)]

    def execute(self, runner: Runner, todo: list[Cell], stop: StopOnSignal
                ) -> Iterator[tuple[Cell, CellResult, bytes | None]]:
        """(cell, result, mp4 bytes) as futures complete. After a first signal no new cell is
        handed out and those in progress finish; whatever ends this early (a second signal, a
        store that cannot be written) kills the workers, and their cells are simply not stored."""
        if not todo:
            return
        self.connect()   # again if this runner ran before and shut its own instance down
        ray = self.ray
        clips = {c.clip.id: c.clip for c in todo}
        clip_refs = {cid: ray.put(_loaded(clip)) for cid, clip in clips.items()}   # each clip shipped once
        queues, idle, actors = {}, {}, []
        for shape, cells in self._pools(runner, todo).items():
            pool = self._start(runner, shape, cells, self._size(shape, len(cells)))
            queues[shape], idle[shape] = deque(cells), deque(pool)
            actors += pool
        running: dict = {}   # future -> (cell, actor, shape)
        # who is who, recorded as each worker starts (not awaited: a pool may wait for another's resources)
        starting = {a.info.remote(): i for i, a in enumerate(actors)}
        self.worker_info = [{} for _ in actors]
        try:
            while True:
                for shape, queue in queues.items():
                    while queue and idle[shape] and stop.signum is None:
                        cell, actor = queue.popleft(), idle[shape].popleft()
                        future = actor.run.remote(dataclasses.replace(cell, clip=None), clip_refs[cell.clip.id])
                        running[future] = (cell, actor, shape)
                    if not queue and idle[shape]:   # a finished pool frees its resources for others
                        for actor in idle[shape]:
                            ray.kill(actor)
                        idle[shape].clear()
                if not running:
                    return
                # a timeout so a signal is handled within a second even while cells run long
                ready, _ = ray.wait(list(running) + list(starting), num_returns=1, timeout=1.0)
                for future in ready:
                    if future in starting:
                        try:
                            self.worker_info[starting.pop(future)] = ray.get(future)
                        except ray.exceptions.RayError:   # retired, or died, before it said who it was
                            pass
                        continue
                    cell, actor, shape = running.pop(future)
                    idle[shape].append(actor)
                    result, video = self._result(cell, future, runner)
                    yield cell, result, video
        finally:
            for actor in actors:
                ray.kill(actor)

    def _result(self, cell: Cell, future, runner: Runner) -> tuple[CellResult, bytes | None]:
        ray = self.ray
        try:
            result, video, load_s = ray.get(future)
        except ray.exceptions.RayActorError as exc:
            reason = (f"the worker process died while running this cell ({1 + self.retries} attempts; killed, out "
                      f"of memory or crashed): {_first_line(exc)}")
        except ray.exceptions.RayError as exc:   # an object store or scheduling failure, say
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
        else:
            runner.add_load_time(cell.variant.method, load_s)
            return result, video
        return new_result(cell, status="failed", reason=reason), None


def _loaded(clip):
    """The clip with everything its cells read loaded here, so worker nodes need no clip files.
    What fails to load stays lazy: the worker meets the same error and fails those cells with it."""
    for load in (lambda: clip.video, lambda: clip.scoring_reference().video,
                 lambda: clip.edit and clip.edit.inputs(clip)):
        try:
            load()
        except Exception:
            pass
    return clip


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
