"""`motiongrid compare BASE_RUN NEW_RUN`: direction-aware deltas and a CI gate.

Cells are matched by (label, clip id, seed). Each metric is compared per label over the cells
that have a value in *both* runs, so a subset or a lost value never shifts a mean; means come
from ``aggregate``, the same numbers the report shows.

Gating (exit code 1), by default:
- a cell that was ok in BASE has failed in NEW;
- a cell that was ok in BASE is absent from NEW, or a metric value it had is now missing
  (``--allow-missing`` turns both into notes, for comparing against a subset run);
- a quality metric got worse by more than its tolerance: for higher-is-better metrics a drop,
  for lower-is-better a rise. Tolerance is ``DEFAULT_TOLERANCE`` (1% of |base mean|, at least
  ``ABS_FLOOR``) unless ``--tolerance metric=value`` says otherwise.
Timings and peak memory are shown but never gate unless a tolerance names them
(``--tolerance time.total=50%``): they depend on the machine and its load. Metrics whose
direction run.json does not give are shown and never gate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from motiongrid.reports.aggregate import aggregate
from motiongrid.reports.data import MEMORY_KEY, TIME_PREFIX, RunData, cell_value
from motiongrid.reports.defaults import DEFAULT_TOLERANCE
from motiongrid.reports.formatting import fmt, fmt_signed, template_env

ABS_FLOOR = 1e-6  # a relative tolerance on a base mean of 0 would otherwise be 0


@dataclass(frozen=True)
class Tolerance:
    value: float
    relative: bool

    @classmethod
    def parse(cls, text: str, where: str) -> Tolerance:
        raw = text.strip()
        relative = raw.endswith("%")
        try:
            value = float(raw[:-1] if relative else raw)
        except ValueError:
            raise ValueError(f"{where}: {text!r} is not a number or a percentage (e.g. 0.02 or 2%)") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: tolerance must be a finite number >= 0, got {text!r}")
        return cls(value / 100 if relative else value, relative)

    def allowed(self, base: float) -> float:
        if not self.relative:
            return self.value
        return max(self.value * abs(base), ABS_FLOOR) if math.isfinite(base) else 0.0

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


def parse_tolerances(specs: list[str] | None) -> dict[str, Tolerance]:
    """``["psnr=0.5", "lpips=2%", "default=0.5%"]`` -> {name: Tolerance}."""
    out = {"default": Tolerance.parse(DEFAULT_TOLERANCE, "default tolerance")}
    for spec in specs or []:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--tolerance {spec!r}: expected METRIC=VALUE, e.g. psnr=0.5 or lpips=2%")
        out[name.strip()] = Tolerance.parse(value, f"--tolerance {spec!r}")
    return out


def is_resource(key: str) -> bool:
    return key == MEMORY_KEY or key.startswith(TIME_PREFIX)


@dataclass
class Delta:
    label: str
    metric: str
    n: int
    base: float
    new: float
    arrow: str
    tolerance: str
    allowed: float
    status: str  # regressed | improved | within | not gated | not comparable

    @property
    def diff(self) -> float:
        if self.base == self.new:  # also inf == inf
            return 0.0
        return self.new - self.base

    @property
    def nonfinite(self) -> bool:
        return not (math.isfinite(self.base) and math.isfinite(self.new))

    @property
    def pct(self) -> float:
        if self.base == 0 or not (math.isfinite(self.base) and math.isfinite(self.new)):
            return math.nan
        return 100 * (self.new - self.base) / abs(self.base)


@dataclass
class Comparison:
    base: RunData
    new: RunData
    tolerances: dict[str, Tolerance]
    allow_missing: bool
    matched: int = 0
    deltas: list[Delta] = field(default_factory=list)
    failed_now: list[dict] = field(default_factory=list)   # ok in base, failed in new
    missing: list[dict] = field(default_factory=list)      # ok in base, absent from new
    lost_values: list[dict] = field(default_factory=list)  # metric value in base, none in new
    fixed: list[dict] = field(default_factory=list)        # failed in base, ok in new
    added: int = 0          # cells only in new
    only_base: int = 0      # cells only in base (ok or not)
    notes: list[str] = field(default_factory=list)
    ignore_settings: bool = False
    incomparable: dict[str, str] = field(default_factory=dict)  # metric -> its settings that differ
    changed_clips: list[dict] = field(default_factory=list)     # cells whose clip content differs

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in self.deltas if d.status == "regressed"]

    @property
    def nothing_compared(self) -> bool:
        """No cell is ok in both runs: a gate that compared nothing must not pass (an empty base,
        or runs of different grids that share no label + clip + seed)."""
        return self.matched == 0

    @property
    def failing(self) -> bool:
        gated_missing = not self.allow_missing and (self.missing or self.lost_values)
        measured_otherwise = not self.ignore_settings and (self.incomparable or self.changed_clips)
        return bool(self.regressions or self.failed_now or gated_missing or measured_otherwise
                    or self.nothing_compared)

    @property
    def overlap(self) -> str:
        """How far the runs' cells overlap, in counts (shown whenever it is not complete)."""
        base, new = len(self.base.rows), len(self.new.rows)
        both = base - self.only_base
        return (f"{both} of {base} base cells are in new ({self.matched} ok in both); "
                f"{self.only_base} only in base, {self.added} only in new (of {new})")


def _tolerance_for(key: str, tolerances: dict[str, Tolerance]) -> Tolerance | None:
    """Exact column, then the dict metric it came from, then the default (never for resources)."""
    for name in (key, key.split(".", 1)[0]):
        if name in tolerances:
            return tolerances[name]
    return None if is_resource(key) else tolerances["default"]


def _status(hib: bool | None, base: float, new: float, tol: Tolerance | None) -> tuple[str, float]:
    if tol is None or hib is None:
        return "not gated", math.nan
    allowed = tol.allowed(base)
    if base == new:
        return "within", allowed
    if not (math.isfinite(base) and math.isfinite(new)):
        # e.g. PSNR inf -> 40 dB: identical frames no longer identical. Any such change counts.
        worse = math.inf if (new < base) == hib else -math.inf
    else:
        worse = (base - new) if hib else (new - base)
    if worse > allowed:
        return "regressed", allowed
    return ("improved" if worse < -allowed else "within"), allowed


def settings_differences(base: RunData, new: RunData) -> dict[str, str]:
    """Metrics whose recorded preprocessing differs between the runs (tracker, border, range...),
    with what differs. Only keys both run.json files record are compared: a key one version of
    motiongrid adds or drops describes the code, not the measurement."""
    out = {}
    for name in [n for n in base.info if n in new.info]:
        b, n = base.info[name].preprocessing, new.info[name].preprocessing
        diffs = [f"{k} {b[k]!r} → {n[k]!r}" for k in b if k in n and b[k] != n[k]]
        if diffs:
            out[name] = "; ".join(diffs)
    return out


def compare_runs(base: RunData, new: RunData, tolerances: dict[str, Tolerance],
                 allow_missing: bool = False, ignore_settings: bool = False) -> Comparison:
    known = set(base.metric_keys) | set(new.metric_keys) | set(base.resource_keys()) | set(new.resource_keys())
    known |= {k.split(".", 1)[0] for k in known}
    unknown = sorted(set(tolerances) - known - {"default"})
    if unknown:
        raise ValueError(f"--tolerance names metrics in neither run: {', '.join(unknown)} "
                         f"(have: {', '.join(sorted(known))})")

    comp = Comparison(base, new, tolerances, allow_missing, ignore_settings=ignore_settings,
                      incomparable=settings_differences(base, new))
    if ignore_settings:
        comp.notes += [f"{m}: settings differ ({d}); compared anyway (--ignore-settings)"
                       for m, d in comp.incomparable.items()]
    key = lambda r: (r["label"], r["clip_id"], r["seed"])  # noqa: E731
    b = {key(r): r for r in base.rows}
    n = {key(r): r for r in new.rows}
    paired = []
    for k, br in b.items():
        nr = n.get(k)
        cell = {"label": k[0], "clip": k[1], "seed": k[2]}
        if nr is None:
            if br["status"] == "ok":
                comp.missing.append(cell)
            continue
        if br["clip_hash"] != nr["clip_hash"]:
            comp.notes.append(f"clip {k[1]!r} changed content between runs (hash {br['clip_hash']} → {nr['clip_hash']})")
            if not ignore_settings:  # another input: its numbers measure something else
                comp.changed_clips.append(cell)
                continue
        if br["status"] == "ok" and nr["status"] != "ok":
            comp.failed_now.append({**cell, "reason": nr.get("reason") or ""})
        elif br["status"] != "ok" and nr["status"] == "ok":
            comp.fixed.append(cell)
        elif br["status"] == "ok":
            paired.append((br, nr))
    comp.added = sum(1 for k in n if k not in b)
    comp.only_base = sum(1 for k in b if k not in n)
    comp.matched = len(paired)
    comp.notes = list(dict.fromkeys(comp.notes))

    keys = [k for k in base.metric_keys if k in new.metric_keys]
    keys += [k for k in base.resource_keys() if k in new.resource_keys()]
    labels = [lb for lb in base.labels if lb in new.labels]
    for k in keys:
        both = [(br, nr) for br, nr in paired if cell_value(br, k) is not None and cell_value(nr, k) is not None]
        for br, nr in paired:
            if cell_value(br, k) is not None and cell_value(nr, k) is None:
                comp.lost_values.append({"label": br["label"], "clip": br["clip_id"], "seed": br["seed"],
                                         "metric": k, "reason": (nr.get("metric_errors") or {}).get(k.split(".", 1)[0], "")})
        if not both:
            continue
        agg_b = aggregate([br for br, _ in both], [k]).set_index("label")
        agg_n = aggregate([nr for _, nr in both], [k]).set_index("label")
        hib = base.metric_info(k).higher_is_better
        if new.metric_info(k).higher_is_better != hib:
            comp.notes.append(f"{k}: direction differs between the runs' run.json; using BASE's")
        tol = _tolerance_for(k, tolerances)
        for lb in labels:
            if lb not in agg_b.index:
                continue
            mb, mn = float(agg_b.at[lb, "mean"]), float(agg_n.at[lb, "mean"])
            if math.isnan(mb) or math.isnan(mn):
                continue
            status, allowed = _status(hib, mb, mn, tol)
            if k.split(".", 1)[0] in comp.incomparable and not ignore_settings:
                status, allowed = "not comparable", math.nan
            comp.deltas.append(Delta(lb, k, int(agg_b.at[lb, "n"]), mb, mn, base.metric_info(k).arrow,
                                     str(tol) if tol and hib is not None else "—", allowed, status))
    return comp


STATUS_ICON = {"regressed": "🔴 regressed", "improved": "🟢 improved", "within": "⚪ within", "not gated": "· not gated",
               "not comparable": "🟠 not comparable"}


def render_markdown(comp: Comparison) -> str:
    deltas = sorted(comp.deltas, key=lambda d: (comp.base.labels.index(d.label) if d.label in comp.base.labels else 0,
                                                is_resource(d.metric)))
    overrides = {k: str(v) for k, v in comp.tolerances.items() if k != "default"}
    ctx = {
        "failing": comp.failing,
        "verdict": "nothing compared" if comp.nothing_compared else "regression" if comp.regressions
        or comp.failed_now or (comp.missing or comp.lost_values) and not comp.allow_missing else "not comparable",
        "nothing_compared": comp.nothing_compared,
        "overlap": comp.overlap if comp.only_base or comp.added or comp.nothing_compared else "",
        "base": comp.base, "new": comp.new,
        "base_git": (comp.base.run.get("git_sha") or "")[:10], "new_git": (comp.new.run.get("git_sha") or "")[:10],
        "matched": comp.matched, "added": comp.added,
        "regressions": comp.regressions, "failed_now": comp.failed_now, "missing": comp.missing,
        "lost_values": comp.lost_values, "fixed": comp.fixed, "allow_missing": comp.allow_missing,
        "incomparable": {} if comp.ignore_settings else comp.incomparable,
        "changed_clips": [] if comp.ignore_settings else comp.changed_clips,
        "default_tolerance": str(comp.tolerances["default"]), "overrides": overrides,
        "deltas": [{"d": d, "base": fmt(d.base), "new": fmt(d.new), "diff": fmt_signed(d.diff),
                    "pct": "" if math.isnan(d.pct) else f"{d.pct:+.2f}%", "status": STATUS_ICON[d.status],
                    "allowed": fmt(d.allowed) if not math.isnan(d.allowed) else "—"} for d in deltas],
        "notes": comp.notes + [f"base: {w}" for w in comp.base.warnings] + [f"new: {w}" for w in comp.new.warnings],
    }
    return template_env(markdown=True).get_template("compare.md.j2").render(**ctx)


# ---- CLI ----------------------------------------------------------------------------------
