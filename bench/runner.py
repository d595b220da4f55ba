"""Run a grid: clips × method variants × seeds, each cell generated, scored and stored.

Crash safety: a cell's video is written (atomically) before its row, and the row is one
transaction; finished cells are skipped on resume, so ``kill -9`` at any moment loses at most
the cell in progress and never duplicates one. A failing cell is stored as failed with its
reason and the run goes on.
"""
from __future__ import annotations

import argparse
import re
import time
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from motiongrid.api import Method, Metric
from motiongrid.config import ConfigError, RunConfig, load_config
from motiongrid.datasets.clip import Clip
from motiongrid.datasets.video import Video, VideoError, write_video
from motiongrid.grid import Cell, MethodVariant, expand_cells, expand_methods
from motiongrid.metrics.resources import ResourceMeter
from motiongrid.provenance import write_run_json
from motiongrid.registry import UnknownName, datasets, methods as method_registry, metrics as metric_registry
from motiongrid.scoring import build_metrics, score_video
from motiongrid.store import CellResult, Store

EXIT_OK, EXIT_CELLS_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA device (use --device cpu or auto)")
    return torch.device(name)


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

    @property
    def exit_code(self) -> int:
        return EXIT_CELLS_FAILED if self.failed else EXIT_OK


class Runner:
    def __init__(self, config: RunConfig, source: str, out_dir: Path, limit: int | None = None,
                 device: str | None = None, progress: bool = True):
        self.config, self.source, self.out = config, source, Path(out_dir)
        self.device = resolve_device(device or config.device)
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
        self.prepared: dict[str, Method | BaseException] = {}
        self.method_info: dict[str, dict] = {}

    def prepare_methods(self) -> None:
        """Load each method once; its weights' fingerprint goes into every cell key. A method
        that fails to load fails its cells (with the reason), never the run."""
        for name in dict.fromkeys(v.method for v in self.variants):
            cls = next(v.method_cls for v in self.variants if v.method == name)
            start = time.perf_counter()
            try:
                method = cls()
                method.prepare(self.device, None)
                self.prepared[name] = method
            except Exception as exc:
                self.prepared[name] = exc
            self.method_info[name] = {"load_s": round(time.perf_counter() - start, 3)}
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

    def run(self) -> RunSummary:
        self.out.mkdir(parents=True, exist_ok=True)
        store = Store(self.out / "results.sqlite")
        try:
            self.prepare_methods()
            done = store.finished_keys()
            todo = [c for c in self.cells if c.key not in done]
            self._write_provenance(finished=False)
            self._save_references()
            for metric in self.metrics:
                metric.prepare(self.device)
            ok = failed = 0
            with self._progress(len(todo)) as advance:
                for cell in todo:
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
                    print(f"warning: reference preview for {clip.id!r} not written: {exc}", file=sys.stderr)

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
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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


# ---- CLI ------------------------------------------------------------------------------

def _cmd_run(args) -> int:
    try:
        config, source = load_config(args.config)
        out = Path(args.out or config.out or Path("runs") / config.name)
        runner = Runner(config, source, out, limit=args.limit, device=args.device, progress=not args.quiet)
    except (ConfigError, VideoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"motiongrid run: {runner.total_cells} cells ({len(runner.variants)} method variants × "
          f"{len(runner.clips)} clips × {len(config.seeds)} seeds) -> {out}")
    for name, reason in runner.unavailable.items():
        print(f"  metric {name}: {reason}")
    summary = runner.run()
    print(f"done: {summary.ok} ok, {summary.failed} failed, {summary.skipped} already finished "
          f"(results in {out / 'results.sqlite'})")
    if summary.failed:
        print(f"{summary.failed} cells failed; their reasons are stored (motiongrid report {out})", file=sys.stderr)
    return summary.exit_code


def _cmd_clips(args) -> int:
    if args.clips_command == "list":
        from rich.console import Console
        from rich.table import Table

        table = Table("clip set", "description")
        for name, cls in datasets.items():
            table.add_row(name, cls.description)
        Console().print(table)
        return 0
    # make
    try:
        options = dict(kv.split("=", 1) for kv in args.option)
    except ValueError:
        print("error: --option takes KEY=VALUE", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = {k: _parse_value(v) for k, v in options.items()}
    try:
        clips = datasets.get(args.name)(**options).load()
    except (UnknownName, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from motiongrid.datasets.export import export_clips

    manifest = export_clips(clips, Path(args.out))
    print(f"wrote {len(clips)} clips and {manifest}")
    return 0


def _parse_value(text: str):
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _cmd_list(registry, title: str):
    def handler(args) -> int:
        from rich.console import Console
        from rich.table import Table

        table = Table(title, "details", "description")
        for name, cls in registry.items():
            if registry is metric_registry:
                details = ("higher" if cls.higher_is_better else "lower") + " is better; needs " + \
                    ", ".join(sorted(cls.needs))
            else:
                fields = cls.Params.model_fields
                details = f"task {cls.task}; " + (", ".join(f"{n}={f.default!r}" for n, f in fields.items()) or "no params")
            table.add_row(name, details, cls.description)
        Console().print(table)
        return 0
    return handler


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a grid (the embedded default when no CONFIG is given)",
                       description="Run every (method variant, clip, seed) cell of a grid config; "
                                   "finished cells in --out are skipped, so re-running resumes.")
    p.add_argument("config", nargs="?", help="TOML grid config (default: the embedded default grid)")
    p.add_argument("--out", help="run directory (default: config's `out`, else runs/<name>)")
    p.add_argument("--limit", type=int, help="keep only the first N clips")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the config's device")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)

    c = sub.add_parser("clips", help="list clip sets or write one to disk")
    csub = c.add_subparsers(dest="clips_command", required=True, metavar="{list,make}")
    csub.add_parser("list", help="registered clip sets").set_defaults(func=_cmd_clips)
    mk = csub.add_parser("make", help="write a clip set as mp4 files + manifest.yaml (+ tracks .npz)")
    mk.add_argument("name", help="clip set name, e.g. shapes")
    mk.add_argument("--out", required=True, help="output folder")
    mk.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                    help="clip set option, e.g. -o count=4 -o size=32 (TOML values)")
    mk.set_defaults(func=_cmd_clips)

    sub.add_parser("methods", help="registered method adapters and their parameters").set_defaults(
        func=_cmd_list(method_registry, "method"))
    sub.add_parser("metrics", help="registered metrics").set_defaults(func=_cmd_list(metric_registry, "metric"))
