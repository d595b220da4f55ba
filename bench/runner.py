"""Run a grid: clips × method variants × seeds, each cell generated, scored and stored.

Crash safety: a cell's video is written (atomically) before its row, and the row is one
transaction; finished cells are skipped on resume, so ``kill -9`` at any moment loses at most
the cell in progress and never duplicates one. A failing cell is stored as failed with its
reason and the run goes on.

Executors: cells run one after another in this process (``LocalExecutor``, the default) or on a
Ray cluster (``bench/ray_executor.py``). Both run the one cell function ``run_cell`` and both
commit through the runner's one write path (``Runner._commit``: video, then row), so the same
run directory resumes under either.
"""
from __future__ import annotations

import logging
import sqlite3
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from motiongrid.bench.api import Method, Metric
from motiongrid.bench.atomic import atomic_path
from motiongrid.bench.clip import REFERENCE_GROUND_TRUTH, REFERENCE_SOURCE, Clip
from motiongrid.bench.config import ConfigError, RunConfig
from motiongrid.bench.errors import Interrupted, StoreWriteError, signal_name
from motiongrid.bench.files import file_stem
from motiongrid.bench.grid import Cell, MethodVariant, expand_cells, expand_methods
from motiongrid.bench.provenance import write_run_json
from motiongrid.bench.registry import UnknownName, datasets
from motiongrid.bench.resources import ResourceMeter
from motiongrid.bench.rundir import RunDirLock
from motiongrid.bench.scoring import DeviceError, build_metrics, flatten, prepare_metrics, resolve_device, score_video
from motiongrid.bench.signals import StopOnSignal
from motiongrid.bench.store import CellResult, Store, cells_digest
from motiongrid.bench.video import Video, VideoError, artifact_problems, describe_artifact_problems, read_video, write_video

log = logging.getLogger(__name__)


def load_clips(config: RunConfig, source: str, limit: int | None = None) -> list[Clip]:
    cc = config.clips
    try:
        clip_set = datasets.get(cc.set)(**cc.options)
    except UnknownName as exc:
        raise ConfigError(f"{source}: clips.set: {exc}") from None
    except ValueError as exc:   # OptionsError: an unknown key, a bad type, NaN
        raise ConfigError(f"{source}: clips.options: {exc}") from None
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


def check_tasks(variants: list[MethodVariant], clips: list[Clip], source: str) -> None:
    """An editing method needs editing cases and a motion-cloning method needs motion
    references: a grid that pairs either with the other kind of clip is one config error,
    not N failed cells. Baselines run on both."""
    edits = sum(c.is_edit for c in clips)
    for v in variants:
        task = v.method_cls.task
        if task == "edit" and edits < len(clips):
            plain = next(c.id for c in clips if not c.is_edit)
            raise ConfigError(f"{source}: methods: {v.label} edits videos (task 'edit') but clip {plain!r} of clip set "
                              f"{clips[0].meta.get('generator') or 'the configured set'} is not an editing case "
                              "(no poses/masks). Use editing cases, e.g. clips.set = \"shapes\" with "
                              "options.preset = \"edit\", or a folder of cases (datasets/folder.py)")
        if task == "t2v-motion" and edits:
            case = next(c.id for c in clips if c.is_edit)
            raise ConfigError(f"{source}: methods: {v.label} clones a reference video's motion (task 't2v-motion') "
                              f"but clip {case!r} is an editing case, scored against its ground-truth edit; "
                              "run it on motion references (clip sets without editing inputs)")


def metric_references(names: list[str], clips: list[Clip]) -> dict[str, str | None]:
    """What each metric compares a cell with, in words (run.json and reports show it)."""
    from motiongrid.bench.registry import metrics as registry

    edit = any(c.is_edit for c in clips)
    out = {}
    for name in names:
        needs = registry.get(name).needs
        if needs & {"reference", "tracks", "target"}:
            out[name] = REFERENCE_GROUND_TRUTH if edit else REFERENCE_SOURCE
        elif "prompt" in needs:
            out[name] = "the target prompt" if edit else "the clip's prompt"
        else:
            out[name] = None
    return out


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
    if frames.device.type == "meta":   # shape-only (motiongrid profile): no pixels, never a result
        raise VideoError(f"{variant.label}: a shape-only video (meta tensors, random weights) cannot be scored or stored")
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


def json_safe(notes) -> dict:
    """A method's cell notes as plain JSON (numbers, strings, lists, dicts); anything else as text."""
    import json

    return json.loads(json.dumps(notes if isinstance(notes, dict) else {"notes": notes}, default=str))


def reference_path(clip: Clip) -> str:
    """Where a clip's reference preview is saved, relative to the run dir: one file per clip id
    and content, so no two clips (ids that differ only in case or in non-ASCII characters
    included) share one, and a clip whose file changed never shows its old pixels."""
    return f"references/{file_stem(clip.id)}.{clip.content_hash[:8]}.mp4"


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
                out[v.label] = {"unavailable": _failure_reason(exc)}
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
            raise RuntimeError(f"prepare failed: {_failure_reason(method)}")
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
        result.status, result.reason = "failed", _failure_reason(exc)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    result.timings = {k: round(t, 4) for k, t in meter.timings.items()}
    result.peak_memory_mb, result.memory_kind = round(meter.peak_memory_mb, 1), meter.memory_kind
    return result


class LocalExecutor:
    """The default: cells one after another in this process, on ``--device``."""
    name = "local"

    def resolve_device(self, name: str) -> torch.device:
        return resolve_device(name)

    def execute(self, runner: Runner, todo: list[Cell], stop: StopOnSignal) -> Iterator[tuple[Cell, CellResult, None]]:
        """(cell, result, None) per cell, the video already written; stops between cells on a signal,
        and after loading a model (which can take minutes) before the cell that needed it starts."""
        for cell in todo:
            if stop.signum is not None:
                break
            runner._load(cell.variant)
            if stop.signum is not None:
                break
            yield cell, runner._run_cell(cell), None

    def info(self) -> dict:
        return {"name": self.name}

    def close(self) -> None:
        pass


def make_executor(name: str, ray_address: str | None = None, workers: int | None = None):
    """``local`` or ``ray`` (Ray is an optional extra, imported only here)."""
    if name == "ray":
        from motiongrid.bench.ray_executor import RayExecutor

        return RayExecutor(address=ray_address, workers=workers)
    if ray_address or workers:
        raise ConfigError("--ray-address and --workers need the ray executor (--executor ray)")
    return LocalExecutor()


@dataclass
class RunSummary:
    total: int
    skipped: int
    ok: int
    failed: int


class Runner:
    def __init__(self, config: RunConfig, source: str, out_dir: Path, limit: int | None = None,
                 device: str | None = None, progress: bool = True, executor: str | None = None,
                 ray_address: str | None = None, workers: int | None = None):
        self.config, self.source, self.out = config, source, Path(out_dir)
        self.executor = make_executor(executor or config.executor, ray_address, workers)
        try:
            # the executor's: on Ray, "auto" means CUDA when the cluster has GPUs
            self.device = self.executor.resolve_device(device or config.device)
        except DeviceError as exc:
            raise ConfigError(str(exc)) from None
        self.progress = progress
        # Everything below validates before any cell runs.
        self.variants = expand_methods(config, source)
        self.clips = load_clips(config, source, limit)
        if not self.clips:
            raise ConfigError(f"{source}: clips: the clip set gave no clips")
        check_tasks(self.variants, self.clips, source)
        self.metrics, self.unavailable = build_run_metrics(config.metrics, config.metric_options, source)
        self.metric_spec = {m: config.metric_options.get(m, {}) for m in sorted(config.metrics)}
        self.references = metric_references(config.metrics, self.clips)
        self.total_cells = len(self.variants) * len(self.clips) * len(config.seeds)
        self.cells: list[Cell] = []          # keyed once the methods are prepared (run)
        self._prepared = False
        self.method_info: dict[str, dict] = {}   # methods loaded in this invocation: load time

    def prepare_methods(self) -> None:
        """Key every cell without loading any model: each method's fingerprint (its weights'
        identity, which goes into every cell key) comes from ``fingerprint`` on an instance
        that is not prepared yet. Models load in ``_load``, for the first cell that needs
        generating, so re-running a finished grid loads none. A method that fails to construct
        fails its cells (with the reason), never the run."""
        self.methods = MethodSet(self.variants, self.device)
        self.fingerprints = self.methods.fingerprints
        self.cells = expand_cells(self.variants, self.clips, self.config.seeds, self.metric_spec, self.fingerprints)

    def prepare(self) -> None:
        """Key the cells (loading no model) and load metrics once, before any cell; what
        fails is recorded (methods: their cells fail; metrics: unavailable), never raised."""
        if self._prepared:
            return
        self.prepare_methods()
        # A Ray driver without a GPU of its own loads metrics (set-level scoring) on its CPU.
        here = self.device if self.device.type != "cuda" or torch.cuda.is_available() else torch.device("cpu")
        self.metrics = prepare_metrics(self.metrics, here, self.unavailable)
        self._prepared = True

    def run(self) -> RunSummary:
        """Run the cells not yet finished. One run per directory at a time (a lock); SIGINT or
        SIGTERM stops after the cells in progress (raises Interrupted); a row that cannot be
        written stops the run cleanly (raises StoreWriteError)."""
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            with RunDirLock(self.out), Store(self.out / "results.sqlite") as store, StopOnSignal() as stop:
                return self._run(store, stop)
        finally:
            self.executor.close()

    def _run(self, store: Store, stop: StopOnSignal) -> RunSummary:
        self.prepare()
        done = store.finished_keys()
        mine = {c.key for c in self.cells}
        # A cell stored ok whose video is gone or does not decode runs again (its row is replaced).
        broken = artifact_problems(self.out, [r for r in store.rows() if r["key"] in done & mine])
        if broken:
            log.warning("%s; running them again", describe_artifact_problems(broken, len(done & mine)))
            done -= set(broken)
        todo = [c for c in self.cells if c.key not in done]
        self._write_provenance(finished=False)
        self._save_references()
        ok = failed = 0
        with self._progress(len(todo)) as advance:
            for cell, result, video in self.executor.execute(self, todo, stop):
                self._commit(store, result, video, stored=ok + failed)
                ok += result.status == "ok"
                failed += result.status == "failed"
                advance(cell, result)
        if stop.signum is not None:
            self._write_provenance(finished=False, store=store)
            raise Interrupted(stop.signum, f"stopped by {signal_name(stop.signum)} after {ok + failed} of "
                                           f"{len(todo)} cells; every finished cell is stored in "
                                           f"{store.path}")
        self._score_sets(store)
        summary = RunSummary(len(self.cells), len(self.cells) - len(todo), ok, failed)
        self._write_provenance(finished=True, store=store)
        return summary

    def _commit(self, store: Store, result: CellResult, video: bytes | None, stored: int) -> None:
        """The one write path: the cell's video (a worker's encoded mp4; a local cell's is
        written already), atomically, then its row. A video that cannot be written fails the
        cell, as in ``run_cell``."""
        if video is not None and result.artifact:
            try:
                with atomic_path(self.out / result.artifact) as tmp:
                    tmp.write_bytes(video)
            except OSError as exc:
                result.status, result.reason = "failed", _failure_reason(exc)
                result.metrics, result.metric_errors, result.artifact = {}, {}, None
        self._store(store, result, stored)

    def _store(self, store: Store, result: CellResult, stored: int) -> None:
        """Commit one row; if that fails (disk full), remove its video and stop the run cleanly."""
        try:
            store.put(result)
        except (OSError, sqlite3.OperationalError) as exc:
            if result.artifact:
                (self.out / result.artifact).unlink(missing_ok=True)
            raise StoreWriteError(
                f"{store.path}: cannot store cell {result.label} {result.clip_id} seed={result.seed} "
                f"({type(exc).__name__}: {exc}); stopped after {stored} cells, nothing half-written. "
                f"Free space (or fix the cause) and run the same command again to resume") from exc

    # -- one cell (local executor) ------------------------------------------------------
    def _load(self, variant: MethodVariant) -> None:
        """Before the first cell of ``variant`` that needs generating (outside cell timings)."""
        self.add_load_time(variant.method, self.methods.load(variant))

    def add_load_time(self, method: str, seconds: float | None) -> None:
        if seconds is not None:
            info = self.method_info.setdefault(method, {"load_s": 0.0})
            info["load_s"] = round(info["load_s"] + seconds, 3)

    def _run_cell(self, cell: Cell) -> CellResult:
        return run_cell(cell, self.methods, self.metrics, self.device,
                        lambda video, artifact: write_video(video, self.out / artifact))

    # -- set-level metrics ---------------------------------------------------------
    def _score_sets(self, store: Store) -> None:
        """Set-level metrics (FID) once per label over all its ok cells' videos against their
        references. Recomputed only when that label's set of cells changed; a failure is
        stored as the value's error, never raised."""
        set_metrics = [m for m in self.metrics if m.set_level]
        if not set_metrics:
            return
        done = {r["key"]: r for r in store.rows() if r["status"] == "ok" and r.get("artifact")}
        by_label: dict[str, list[tuple[Cell, dict]]] = {}
        for cell in self.cells:
            if cell.key in done:
                by_label.setdefault(cell.variant.label, []).append((cell, done[cell.key]))
        current = {(r["label"], r["metric"]): r["cells"] for r in store.set_rows()}
        for metric in set_metrics:
            for label, items in by_label.items():
                digest = cells_digest(c.key for c, _ in items)
                if current.get((label, metric.name)) == digest:
                    continue
                pairs = ((read_video(self.out / row["artifact"]), cell.clip.scoring_reference()) for cell, row in items)
                try:
                    result, error = flatten(metric.name, metric.score_set(pairs)), None
                except Exception as exc:   # one label's set value must not stop the others
                    result, error = {}, _failure_reason(exc)
                store.put_set(label, metric.name, digest, len(items), result, error)

    # -- bookkeeping ---------------------------------------------------------------
    def _save_references(self) -> None:
        """What each clip's cells are scored against, as mp4 beside the results, for report
        previews (an editing case's ground truth; its source when it has none)."""
        for clip in self.clips:
            path = self.out / reference_path(clip)
            if path.exists():
                continue
            shown = clip.scoring_reference() if clip.edit is None or clip.edit.ground_truth is not None else clip
            try:
                write_video(shown.video, path)
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
            reference_videos={c.id: reference_path(c) for c in self.clips},
            cell_keys=[c.key for c in self.cells], fingerprints=self.fingerprints,
            method_info=self.method_info, references=self.references, executor=self.executor.info())

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
