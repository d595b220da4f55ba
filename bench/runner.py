"""Run a grid: clips × method variants × seeds, each cell generated, scored and stored.

Crash safety: a cell's video is written (atomically) before its row, and the row is one
transaction; finished cells are skipped on resume, so ``kill -9`` at any moment loses at most
the cell in progress and never duplicates one. A failing cell is stored as failed with its
reason and the run goes on.

The runner validates, keys the cells and writes; it does not run a cell. It hands a
:class:`~motiongrid.bench.cell.RunPlan` to an executor (``bench/executors.py``: local, the
default, or Ray), which runs the one cell function ``bench.cell.run_cell`` and yields each
finished cell back; every cell is committed through the runner's one write path
(``Runner._commit``: video, then row), so the same run directory resumes under either.
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import torch

from motiongrid.bench.api import Metric
from motiongrid.bench.atomic import atomic_path
from motiongrid.bench.cell import MethodSet, RunPlan, failure_reason
from motiongrid.bench.clip import REFERENCE_GROUND_TRUTH, REFERENCE_SOURCE, Clip
from motiongrid.bench.config import ConfigError, RunConfig
from motiongrid.bench.errors import Interrupted, StoreWriteError, signal_name
from motiongrid.bench.executors import make_executor
from motiongrid.bench.files import file_stem
from motiongrid.bench.grid import Cell, MethodVariant, expand_cells, expand_methods
from motiongrid.bench.provenance import write_run_json
from motiongrid.bench.registry import UnknownName, datasets
from motiongrid.bench.rundir import RunDirLock
from motiongrid.bench.scoring import DeviceError, build_metrics, flatten, prepare_metrics
from motiongrid.bench.signals import StopOnSignal
from motiongrid.bench.store import CellResult, Store, cells_digest
from motiongrid.bench.video import VideoError, artifact_problems, describe_artifact_problems, read_video, write_video

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


def reference_path(clip: Clip) -> str:
    """Where a clip's reference preview is saved, relative to the run dir: one file per clip id
    and content, so no two clips (ids that differ only in case or in non-ASCII characters
    included) share one, and a clip whose file changed never shows its old pixels."""
    return f"references/{file_stem(clip.id)}.{clip.content_hash[:8]}.mp4"


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
        that is not prepared yet. Models load through the plan's ``load`` hook, for the first cell that needs
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
            for cell, result, video, load_s in self.executor.execute(self.plan(), todo, stop):
                self._add_load_time(cell.variant.method, load_s)
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
                result.status, result.reason = "failed", failure_reason(exc)
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

    # -- the plan executors run -------------------------------------------------------
    def plan(self) -> RunPlan:
        """What executors need, from this prepared runner (they never see the runner)."""
        return RunPlan(device=self.device, fingerprints=self.fingerprints,
                       metric_specs={m.name: self.config.metric_options.get(m.name, {}) for m in self.metrics},
                       metrics=self.metrics, methods=self.methods,
                       save_video=lambda video, artifact: write_video(video, self.out / artifact))

    def _add_load_time(self, method: str, seconds: float | None) -> None:
        if seconds is not None:
            info = self.method_info.setdefault(method, {"load_s": 0.0})
            info["load_s"] = round(info["load_s"] + seconds, 3)

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
                    result, error = {}, failure_reason(exc)
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
