"""One cell, executed: the cell function every executor runs, and the plan it runs under.

A cell is one (method variant, clip, seed): generate a video, check it, save it, score it, and
return a :class:`CellResult` (never raise: a failure is the result's status and reason).
``run_cell`` is that one function; executors (``bench/executors.py``: local, Ray) call it with
the pieces of a :class:`RunPlan` and never see the Runner.
"""
from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from motiongrid.bench.api import Method, Metric
from motiongrid.bench.grid import Cell, MethodVariant
from motiongrid.bench.resources import ResourceMeter
from motiongrid.bench.scoring import score_video
from motiongrid.bench.store import CellResult
from motiongrid.bench.video import Video, VideoError

log = logging.getLogger(__name__)


@dataclass
class RunPlan:
    """What an executor needs to run a grid's cells, decided by the runner before any cell:
    the device, every variant's weights identity (for cell keys; a worker reuses the driver's),
    the metrics by name with their options (a worker builds its own from these), this process's
    prepared metrics and method adapters, and two hooks: ``save_video(video, artifact)`` writes
    an artifact (path relative to the run directory) and ``load(variant)`` loads a variant's
    model before its first cell, returning the seconds it took (None: loaded already)."""
    device: torch.device
    fingerprints: dict[str, dict]
    metric_specs: dict[str, dict]
    metrics: list[Metric] = field(default_factory=list)
    methods: MethodSet | None = None
    save_video: Callable[[Video, Path], None] | None = None

    def load(self, variant: MethodVariant) -> float | None:
        return self.methods.load(variant)


class Finished(NamedTuple):
    """One executed cell: its result, its video as mp4 bytes when the executor did not write it
    (a Ray worker's), and the seconds spent loading its method's model before it (or None)."""
    cell: Cell
    result: CellResult
    video: bytes | None
    load_s: float | None


def check_output(video, variant: MethodVariant) -> Video:
    if not isinstance(video, Video):
        raise VideoError(f"{variant.label}: generate() returned {type(video).__name__}, expected Video")
    frames = video.frames
    if frames.device.type == "meta":   # shape-only (motiongrid profile): no pixels, never a result
        raise VideoError(f"{variant.label}: a shape-only video (meta tensors, random weights) cannot be scored or stored")
    if not torch.isfinite(frames).all():
        raise VideoError(f"{variant.label}: output contains NaN or inf")
    lo, hi = float(frames.min()), float(frames.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise VideoError(f"{variant.label}: output outside [0, 1] (min {lo:.3f}, max {hi:.3f})")
    return Video(frames.detach().float().clamp(0, 1).cpu(), video.fps)


def failure_reason(exc: BaseException) -> str:
    """A failed cell's stored reason: out-of-memory said plainly, else the error and where it rose."""
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return f"out of memory: {exc}".strip()
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    loc = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{loc}"


def json_safe(notes) -> dict:
    """A method's cell notes as plain JSON (numbers, strings, lists, dicts); anything else as text."""
    import json

    return json.loads(json.dumps(notes if isinstance(notes, dict) else {"notes": notes}, default=str))


class MethodSet:
    """The method adapters of one process (the local runner's, or one Ray worker's): one
    instance per method, prepared once, each variant loaded once before its first cell that
    needs generating (outside cell timings). A method that fails to construct, prepare or load
    fails its cells with the reason (``get`` raises it again), never the run.

    ``fingerprints`` (label -> weights identity, for cell keys) are computed here without
    loading any model, unless given (a Ray worker gets the driver's)."""

    def __init__(self, variants: list[MethodVariant], device: torch.device, fingerprints: dict | None = None):
        self.device = device
        self.instances: dict[str, Method | BaseException] = {}
        for name in dict.fromkeys(v.method for v in variants):
            cls = next(v.method_cls for v in variants if v.method == name)
            try:
                method = cls()
                method.device = device   # fingerprints may depend on it (e.g. fp16 on CUDA)
                self.instances[name] = method
            except Exception as exc:
                self.instances[name] = exc
        self.fingerprints = fingerprints if fingerprints is not None else self._fingerprints(variants)
        self._prepared: set[str] = set()
        self._loaded: set[str] = set()

    def _fingerprints(self, variants: list[MethodVariant]) -> dict[str, dict]:
        out = {}
        for v in variants:
            method = self.instances[v.method]
            try:
                if isinstance(method, BaseException):
                    raise method
                out[v.label] = method.fingerprint(v.params)
            except Exception as exc:
                out[v.label] = {"unavailable": failure_reason(exc)}
        return out

    def load(self, variant: MethodVariant) -> float | None:
        """Prepare ``variant``'s method (once) and load what its params need; the seconds it
        took, or None when it was loaded already."""
        if variant.label in self._loaded:
            return None
        self._loaded.add(variant.label)
        start = time.perf_counter()
        method = self.instances[variant.method]
        if variant.method not in self._prepared and not isinstance(method, BaseException):
            self._prepared.add(variant.method)
            try:
                method.prepare(self.device, None)
            except Exception as exc:
                self.instances[variant.method] = method = exc
        if not isinstance(method, BaseException) and "unavailable" not in self.fingerprints[variant.label]:
            try:
                method.load(variant.params)
            except Exception:
                log.debug("load of %s failed; its cells will say why", variant.label, exc_info=True)
        return time.perf_counter() - start

    def get(self, variant: MethodVariant) -> Method:
        method = self.instances[variant.method]
        if isinstance(method, BaseException):
            raise RuntimeError(f"prepare failed: {failure_reason(method)}")
        fingerprint = self.fingerprints[variant.label]
        if "unavailable" in fingerprint:
            raise RuntimeError(fingerprint["unavailable"])
        return method


def new_result(cell: Cell, **fields) -> CellResult:
    v = cell.variant
    return CellResult(key=cell.key, method=v.method, label=v.label, params=v.params.model_dump(mode="json"),
                      clip_id=cell.clip.id, clip_hash=cell.clip.content_hash, seed=cell.seed, **fields)


def run_cell(cell: Cell, methods: MethodSet, metrics: list[Metric], device: torch.device,
             save_video: Callable[[Video, Path], None]) -> CellResult:
    """One cell: generate, check, save the video (``save_video(video, artifact path relative to
    the run dir)``, before scoring: a video that cannot be saved fails the cell), score. Never
    raises: a failure is the result's status and reason. Both executors run this."""
    v = cell.variant
    result = new_result(cell)
    meter = ResourceMeter(device)
    try:
        with meter:
            method = methods.get(v)
            method.cell_notes = {}
            with meter.stage("generate"):
                video = check_output(method.generate(cell.clip, v.params, cell.seed), v)
            result.notes = json_safe(method.cell_notes)
        artifact = Path("videos") / f"{cell.key}.mp4"
        save_video(video, artifact)
        result.artifact = str(artifact)
        with meter.stage("score"):
            result.metrics, result.metric_errors = score_video(metrics, video, cell.clip.scoring_reference())
    except Exception as exc:
        result.status, result.reason = "failed", failure_reason(exc)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    result.timings = {k: round(t, 4) for k, t in meter.timings.items()}
    result.peak_memory_mb, result.memory_kind = round(meter.peak_memory_mb, 1), meter.memory_kind
    return result
