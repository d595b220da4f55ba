"""Run a grid: clips × method variants × seeds, each cell generated, scored and stored.

Crash safety: a cell's video is written (atomically) before its row, and the row is one
transaction; finished cells are skipped on resume, so ``kill -9`` at any moment loses at most
the cell in progress and never duplicates one. A failing cell is stored as failed with its
reason and the run goes on.
"""
from __future__ import annotations

import logging
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from motiongrid.bench.api import Method, Metric
from motiongrid.bench.clip import Clip
from motiongrid.bench.config import ConfigError, RunConfig
from motiongrid.bench.grid import Cell, MethodVariant, expand_cells, expand_methods
from motiongrid.bench.provenance import write_run_json
from motiongrid.bench.registry import UnknownName, datasets
from motiongrid.bench.resources import ResourceMeter
from motiongrid.bench.scoring import DeviceError, build_metrics, prepare_metrics, resolve_device, score_video
from motiongrid.bench.store import CellResult, Store
from motiongrid.bench.video import Video, VideoError, write_video

log = logging.getLogger(__name__)


def load_clips(config: RunConfig, source: str, limit: int | None = None) -> list[Clip]:
    cc = config.clips
    try:
        clip_set = datasets.get(cc.set)(**cc.options)
    except UnknownName as exc:
        raise ConfigError(f"{source}: clips.set: {exc}") from None
    try:
        clips = clip_set.load()
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{source}: clips ({cc.set}): {exc}") from None
    if cc.ids:
        by_id = {c.id: c for c in clips}
        missing = [i for i in cc.ids if i not in by_id]
        if missing:
            raise ConfigError(f"{source}: clips.ids: unknown clip ids {missing}; "
                              f"available: {', '.join(list(by_id)[:20])}{' ...' if len(by_id) > 20 else ''}")
        clips = [by_id[i] for i in cc.ids]
    n = limit or cc.limit
    return clips[:n] if n else clips


def build_run_metrics(names: list[str], options: dict[str, dict], source: str
                      ) -> tuple[list[Metric], dict[str, str]]:
    """``scoring.build_metrics`` with config errors that name the file and key."""
    try:
        return build_metrics(names, options)
    except UnknownName as exc:
        raise ConfigError(f"{source}: metrics: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: metric_options: {exc}") from None


def check_output(video, variant: MethodVariant) -> Video:
    if not isinstance(video, Video):
        raise VideoError(f"{variant.label}: generate() returned {type(video).__name__}, expected Video")
    frames = video.frames
    if not torch.isfinite(frames).all():
        raise VideoError(f"{variant.label}: output contains NaN or inf")
    lo, hi = float(frames.min()), float(frames.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise VideoError(f"{variant.label}: output outside [0, 1] (min {lo:.3f}, max {hi:.3f})")
    return Video(frames.detach().float().clamp(0, 1).cpu(), video.fps)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return f"out of memory: {exc}".strip()
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    loc = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{loc}"


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:120]


@dataclass
class RunSummary:
    total: int
    skipped: int
    ok: int
    failed: int


class Runner:
    def __init__(self, config: RunConfig, source: str, out_dir: Path, limit: int | None = None,
                 device: str | None = None, progress: bool = True):
        self.config, self.source, self.out = config, source, Path(out_dir)
        try:
            self.device = resolve_device(device or config.device)
        except DeviceError as exc:
            raise ConfigError(str(exc)) from None
        self.progress = progress
        # Everything below validates before any cell runs.
        self.variants = expand_methods(config, source)
        self.clips = load_clips(config, source, limit)
        if not self.clips:
            raise ConfigError(f"{source}: clips: the clip set gave no clips")
        self.metrics, self.unavailable = build_run_metrics(config.metrics, config.metric_options, source)
        self.metric_spec = {m: config.metric_options.get(m, {}) for m in sorted(config.metrics)}
        self.total_cells = len(self.variants) * len(self.clips) * len(config.seeds)
        self.cells: list[Cell] = []          # keyed once the methods are prepared (run)
        self._prepared = False
        self.prepared: dict[str, Method | BaseException] = {}
        self.method_info: dict[str, dict] = {}   # methods loaded in this invocation: load time
        self._loaded: set[str] = set()            # variant labels whose models are loaded

    def prepare_methods(self) -> None:
        """Key every cell without loading any model: each method's fingerprint (its weights'
        identity, which goes into every cell key) comes from ``fingerprint`` on an instance
        that is not prepared yet. Models load in ``_method``, for the first cell that needs
        generating, so re-running a finished grid loads none. A method that fails to construct
        fails its cells (with the reason), never the run."""
        for name in dict.fromkeys(v.method for v in self.variants):
            cls = next(v.method_cls for v in self.variants if v.method == name)
            try:
                method = cls()
                method.device = self.device   # fingerprints may depend on it (e.g. fp16 on CUDA)
                self.prepared[name] = method
            except Exception as exc:
                self.prepared[name] = exc
        fingerprints = {}
        for v in self.variants:
            method = self.prepared[v.method]
            try:
                if isinstance(method, BaseException):
                    raise method
                fingerprints[v.label] = method.fingerprint(v.params)
            except Exception as exc:
                fingerprints[v.label] = {"unavailable": _failure_reason(exc)}
        self.fingerprints = fingerprints
        self.cells = expand_cells(self.variants, self.clips, self.config.seeds, self.metric_spec, fingerprints)

    def prepare(self) -> None:
        """Key the cells (loading no model) and load metrics once, before any cell; what
        fails is recorded (methods: their cells fail; metrics: unavailable), never raised."""
        if self._prepared:
            return
        self.prepare_methods()
        self.metrics = prepare_metrics(self.metrics, self.device, self.unavailable)
        self._prepared = True

    def run(self) -> RunSummary:
        self.out.mkdir(parents=True, exist_ok=True)
        store = Store(self.out / "results.sqlite")
        try:
            self.prepare()
            done = store.finished_keys()
            todo = [c for c in self.cells if c.key not in done]
            self._write_provenance(finished=False)
            self._save_references()
            ok = failed = 0
            with self._progress(len(todo)) as advance:
                for cell in todo:
                    self._load(cell.variant)
                    result = self._run_cell(cell)
                    store.put(result)
                    ok += result.status == "ok"
                    failed += result.status == "failed"
                    advance(cell, result)
            summary = RunSummary(len(self.cells), len(self.cells) - len(todo), ok, failed)
            self._write_provenance(finished=True, store=store)
            return summary
        finally:
            store.close()

    # -- one cell ------------------------------------------------------------------
    def _method(self, variant: MethodVariant) -> Method:
        method = self.prepared[variant.method]
        if isinstance(method, BaseException):
            raise RuntimeError(f"prepare failed: {_failure_reason(method)}")
        fingerprint = self.fingerprints[variant.label]
        if "unavailable" in fingerprint:
            raise RuntimeError(fingerprint["unavailable"])
        return method

    def _load(self, variant: MethodVariant) -> None:
        """Before the first cell of ``variant`` that needs generating (outside cell timings):
        prepare its method once, then let it load what these params need. A failure is kept
        and fails the cells (``_method`` / ``generate`` raise it again), never the run."""
        if variant.label in self._loaded:
            return
        self._loaded.add(variant.label)
        start = time.perf_counter()
        method = self.prepared[variant.method]
        if variant.method not in self.method_info and not isinstance(method, BaseException):
            try:
                method.prepare(self.device, None)
            except Exception as exc:
                self.prepared[variant.method] = method = exc
        if not isinstance(method, BaseException) and "unavailable" not in self.fingerprints[variant.label]:
            try:
                method.load(variant.params)
            except Exception:
                log.debug("load of %s failed; its cells will say why", variant.label, exc_info=True)
        info = self.method_info.setdefault(variant.method, {"load_s": 0.0})
        info["load_s"] = round(info["load_s"] + time.perf_counter() - start, 3)

    def _run_cell(self, cell: Cell) -> CellResult:
        v = cell.variant
        result = CellResult(key=cell.key, method=v.method, label=v.label,
                            params=v.params.model_dump(mode="json"), clip_id=cell.clip.id,
                            clip_hash=cell.clip.content_hash, seed=cell.seed)
        meter = ResourceMeter(self.device)
        try:
            with meter:
                method = self._method(v)
                with meter.stage("generate"):
                    video = check_output(method.generate(cell.clip, v.params, cell.seed), v)
            artifact = Path("videos") / f"{cell.key}.mp4"
            write_video(video, self.out / artifact)
            result.artifact = str(artifact)
            with meter.stage("score"):
                result.metrics, result.metric_errors = score_video(self.metrics, video, cell.clip)
        except Exception as exc:
            result.status, result.reason = "failed", _failure_reason(exc)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        result.timings = {k: round(t, 4) for k, t in meter.timings.items()}
        result.peak_memory_mb, result.memory_kind = round(meter.peak_memory_mb, 1), meter.memory_kind
        return result

    # -- bookkeeping ---------------------------------------------------------------
    def _save_references(self) -> None:
        """Reference clips as mp4 beside the results, for report previews."""
        for clip in self.clips:
            path = self.out / "references" / f"{safe_name(clip.id)}.mp4"
            if not path.exists():
                try:
                    write_video(clip.video, path)
                except (VideoError, OSError) as exc:
                    log.warning("reference preview for %r not written: %s", clip.id, exc)

    def _write_provenance(self, finished: bool, store: Store | None = None) -> None:
        counts = None
        if store is not None:
            rows = store.rows()
            keys = {c.key for c in self.cells}
            mine = [r for r in rows if r["key"] in keys]
            counts = {"total": len(self.cells), "ok": sum(r["status"] == "ok" for r in mine),
                      "failed": sum(r["status"] == "failed" for r in mine)}
        write_run_json(
            self.out, config=self.config, source=self.source, device=self.device,
            clips=self.clips, variants=self.variants, metrics=self.metrics,
            unavailable=self.unavailable, finished=finished, cells=counts,
            reference_videos={c.id: f"references/{safe_name(c.id)}.mp4" for c in self.clips},
            cell_keys=[c.key for c in self.cells], fingerprints=self.fingerprints,
            method_info=self.method_info)

    def _progress(self, total: int):
        return _ProgressBar(total, enabled=self.progress)


class _ProgressBar:
    """rich progress with ETA; prints one line per failed cell so failures are seen early."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled

    def __enter__(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 disable=not self.enabled)
        self.progress.__enter__()
        self.task = self.progress.add_task("cells", total=self.total)
        return self.advance

    def advance(self, cell: Cell, result: CellResult) -> None:
        if result.status == "failed":
            self.progress.console.print(f"[red]failed[/red] {cell.variant.label} {cell.clip.id} seed={cell.seed}: {result.reason}")
        self.progress.update(self.task, advance=1, description=f"{cell.variant.label[:40]}")

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)
