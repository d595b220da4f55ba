"""Load a run directory for reporting: the store's rows plus run.json.

This is the only place reports touch a run directory's files; everything downstream works on
``RunData``. Reports never import methods or metrics: which way a metric is better, whether it
was available and why not all come from run.json.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from motiongrid.bench.errors import UserError
from motiongrid.bench.store import Store, cells_digest

# Resource columns aggregated next to the metrics. They are lower-is-better and, being noisy,
# never gate `compare` unless a tolerance names them.
MEMORY_KEY = "peak_memory_mb"
# Keys of dict-valued metrics that describe the computation rather than score it (sample
# counts, the FID "unstable" flag). Used when run.json does not list a metric's score_keys.
DIAGNOSTIC_SUBKEY = re.compile(r"^(n|count|unstable)$|^(n|num)_|_(count|flag)$")
TIME_PREFIX = "time."
TIME_TOTAL = "time.total"


class RunDirError(UserError, ValueError):
    """A run directory that cannot be read; the message names the path and what is wrong."""


@dataclass
class MetricInfo:
    name: str
    higher_is_better: bool | None  # None: run.json does not say
    available: bool = True
    reason: str | None = None
    description: str = ""
    preprocessing: dict = field(default_factory=dict)
    score_keys: list[str] | None = None  # for dict metrics, when run.json names them
    reference: str | None = None         # what it compared with (the clip, or an edit's ground truth)
    set_level: bool = False              # also computed once per label over all its cells
    headline: str | None = None          # a dict metric's lead key (run.json), e.g. "paired"
    directions: dict = field(default_factory=dict)        # {key: higher_is_better} where it differs
    key_descriptions: dict = field(default_factory=dict)  # {key: what it measures, one line}

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: ""}[self.higher_is_better]


@dataclass
class RunData:
    path: Path
    run: dict                   # run.json ({} when absent)
    rows: list[dict]            # Store.rows(), plus "time.total" folded into timings
    labels: list[str]           # stable display order
    metric_keys: list[str]      # score columns present in rows (flattened names)
    info: dict[str, MetricInfo]  # per metric name in run.json (unflattened)
    diagnostic_keys: list[str] = field(default_factory=list)  # e.g. fid.unstable, *.n_generated
    notes: list[str] = field(default_factory=list)  # observations on the data (report only)
    warnings: list[str] = field(default_factory=list)
    set_rows: list[dict] = field(default_factory=list)  # Store.set_rows() of the current grid

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def metric_info(self, key: str) -> MetricInfo:
        """Info for a stored column: exact name first, then the dict metric it was flattened from
        ("motion_fidelity.symmetric" -> "motion_fidelity")."""
        if key in self.info:
            return self.info[key]
        base, _, sub = key.partition(".")
        if base in self.info:
            info = self.info[base]
            if sub in info.directions:   # e.g. an error inside a higher-is-better metric
                return replace(info, name=key, higher_is_better=info.directions[sub])
            return info
        if key == MEMORY_KEY or key.startswith(TIME_PREFIX):
            return MetricInfo(key, higher_is_better=False)
        return MetricInfo(key, higher_is_better=None)

    def resource_keys(self) -> list[str]:
        stages: list[str] = []
        for r in self.rows:
            for s in r["timings"]:
                k = TIME_PREFIX + s
                if k not in stages and k != TIME_TOTAL:
                    stages.append(k)
        keys = [MEMORY_KEY] if any(r.get("peak_memory_mb") is not None for r in self.rows) else []
        if stages:
            keys += stages + [TIME_TOTAL]
        return keys

    def unavailable(self) -> dict[str, str]:
        """Metrics run.json marks unavailable, with their reason (the fix command is in it)."""
        return {n: (i.reason or "unavailable") for n, i in self.info.items() if not i.available}

    def methods_by_label(self) -> dict[str, dict]:
        return self.run.get("methods") or {}

    def clip_prompts(self) -> dict[str, str]:
        clips = (self.run.get("clip_set") or {}).get("clips") or []
        return {c["id"]: c.get("prompt") or "" for c in clips if isinstance(c, dict) and "id" in c}

    def reference_video(self, clip_id: str) -> Path | None:
        rel = (self.run.get("reference_videos") or {}).get(clip_id)
        return self._inside(rel) if rel else None

    def artifact(self, row: dict) -> Path | None:
        return self._inside(row["artifact"]) if row.get("artifact") else None

    def _inside(self, rel: str) -> Path | None:
        # Paths come from files a run wrote; never let one point outside the run dir.
        root = self.path.resolve()
        p = (root / rel).resolve()
        return p if p.is_relative_to(root) else None


def cell_value(row: dict, key: str) -> float | None:
    """One cell's value for a metric or resource column; None when absent or errored."""
    if key == MEMORY_KEY:
        v = row.get("peak_memory_mb")
    elif key == TIME_TOTAL:
        v = sum(row["timings"].values()) if row["timings"] else None
    elif key.startswith(TIME_PREFIX):
        v = row["timings"].get(key[len(TIME_PREFIX):])
    else:
        v = row["metrics"].get(key)
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _is_diagnostic(key: str, info: dict[str, MetricInfo]) -> bool:
    if "." not in key or key in info:
        return False
    base, sub = key.split(".", 1)
    declared = info[base].score_keys if base in info else None
    return sub not in declared if declared is not None else bool(DIAGNOSTIC_SUBKEY.search(sub))


def open_store(run_dir: str | Path) -> Store:
    """The run's store, read-only, with errors that name the directory."""
    path = Path(run_dir)
    if not path.exists():
        raise RunDirError(f"{path}: run directory not found")
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory (expected a motiongrid run directory)")
    try:
        return Store.open_existing(path)
    except FileNotFoundError as exc:
        raise RunDirError(str(exc)) from None


def load_run(run_dir: str | Path) -> RunData:
    path = Path(run_dir)
    with open_store(path) as store:
        rows = store.rows()
        set_rows = store.set_rows()

    warnings: list[str] = []
    run: dict = {}
    run_json = path / "run.json"
    if run_json.exists():
        try:
            run = json.loads(run_json.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{run_json}: not valid JSON ({exc})") from None
        if not isinstance(run, dict):
            raise RunDirError(f"{run_json}: expected a JSON object, got {type(run).__name__}")
    else:
        warnings.append(f"{run_json} is missing: no provenance, and metric directions are unknown")

    # A run dir re-used with another config keeps the old cells; report the latest grid only.
    keys = run.get("cell_keys")
    if isinstance(keys, list):
        current = set(keys)
        stale = sum(r["key"] not in current for r in rows)
        if stale:
            warnings.append(f"{stale} stored cells belong to an earlier config of this run dir and are left out")
            rows = [r for r in rows if r["key"] in current]

    info = {}
    for name, m in (run.get("metrics") or {}).items():
        m = m if isinstance(m, dict) else {}
        hib = m.get("higher_is_better")
        info[name] = MetricInfo(
            name=name,
            higher_is_better=hib if isinstance(hib, bool) else None,
            available=m.get("available", True) is not False,
            reason=m.get("reason"),
            description=m.get("description") or "",
            preprocessing=m.get("preprocessing") or {},
            score_keys=m.get("score_keys") if isinstance(m.get("score_keys"), list) else None,
            reference=m.get("reference") if isinstance(m.get("reference"), str) else None,
            set_level=m.get("set_level") is True,
            headline=m.get("headline") if isinstance(m.get("headline"), str) else None,
            directions={k: v for k, v in (m.get("directions") or {}).items() if isinstance(v, bool)},
            key_descriptions={k: str(v) for k, v in (m.get("key_descriptions") or {}).items()},
        )

    # Label order: as configured (run.json), then any others in store order.
    labels = [lb for lb in (run.get("methods") or {}) if any(r["label"] == lb for r in rows)]
    for r in rows:
        if r["label"] not in labels:
            labels.append(r["label"])

    # Metric columns in run.json order (flattened dict metrics follow their parent).
    seen = []
    for r in rows:
        for k in r["metrics"]:
            if k not in seen:
                seen.append(k)
    order = {n: i for i, n in enumerate(info)}
    seen = sorted(seen, key=lambda k: (order.get(k, order.get(k.split(".", 1)[0], math.inf)), seen.index(k)))
    diagnostic = [k for k in seen if _is_diagnostic(k, info)]
    metric_keys = [k for k in seen if k not in diagnostic]

    # Set-level values are current when they cover exactly the label's ok cells of this grid.
    ok_keys: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] == "ok" and r.get("artifact"):
            ok_keys.setdefault(r["label"], []).append(r["key"])
    set_rows = [s for s in set_rows if s["label"] in labels and s["cells"] == cells_digest(ok_keys.get(s["label"], []))]
    data = RunData(path=path, run=run, rows=rows, labels=labels, metric_keys=metric_keys,
                   info=info, warnings=warnings, diagnostic_keys=diagnostic, set_rows=set_rows)
    for k in diagnostic:
        if k.rsplit(".", 1)[-1] == "unstable":
            flagged = sum(1 for r in rows if r["status"] == "ok" and (cell_value(r, k) or 0) > 0)
            if flagged:
                data.notes.append(f"{k.split('.', 1)[0]} is flagged unstable in {flagged} of "
                                f"{sum(r['status'] == 'ok' for r in rows)} cells (too few samples for a stable estimate)")
    ok_cells = sum(r["status"] == "ok" for r in rows)
    if not (path / "videos").is_dir() and ok_cells:
        warnings.append(f"no videos/ folder: a store-only copy; the {ok_cells} ok cells' numbers cannot be "
                        "re-checked or previewed")
    elif problems := _artifact_problems(path, rows):
        from motiongrid.bench.video import describe_artifact_problems  # torch: only when a run is read
        warnings.append(describe_artifact_problems(problems, ok_cells))
    unknown = [k for k in metric_keys if data.metric_info(k).higher_is_better is None]
    if unknown and run:
        warnings.append("direction unknown (not in run.json) for: " + ", ".join(unknown))
    return data


def _artifact_problems(path, rows):
    # bench.video imports torch: only when a run directory is actually read, never at CLI start-up
    from motiongrid.bench.video import artifact_problems

    return artifact_problems(path, rows)
