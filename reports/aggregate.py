"""Per-group aggregates of a run's cells: the one place means and CIs are computed.

The Markdown report, the HTML report, the plots and `compare` all read these frames, so a
number shown anywhere is the same number everywhere.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd

from motiongrid.reports.data import RunData, cell_value
from motiongrid.reports.stats import bootstrap_mean

AGG_COLUMNS = ["metric", "n", "n_missing", "mean", "lo", "hi"]
PAIRED_COLUMNS = ["label", "metric", "n", "mean", "lo", "hi"]


def aggregate(rows: Iterable[dict], keys: Sequence[str], by: Sequence[str] = ("label",)) -> pd.DataFrame:
    """Long frame: one row per group and metric key, over the group's *ok* cells.

    ``n`` counts cells with a value; ``n_missing`` counts ok cells whose value is absent,
    errored (None) or NaN. Failed cells are counted by ``cell_counts``, not here.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault(tuple(r[b] for b in by), []).append(r)
    records = []
    for group, members in groups.items():
        for key in keys:
            est = bootstrap_mean(cell_value(r, key) for r in members)
            records.append({**dict(zip(by, group)), "metric": key, "n": est.n,
                            "n_missing": len(members) - est.n, "mean": est.mean, "lo": est.lo, "hi": est.hi})
    return pd.DataFrame.from_records(records, columns=[*by, *AGG_COLUMNS])


def paired_differences(rows: Iterable[dict], key: str, baseline_label: str) -> pd.DataFrame:
    """label − baseline for one metric, paired by (clip_id, seed) over both labels' *ok* cells.

    Pairing cancels the clip-to-clip and seed-to-seed spread that per-label CIs carry, so it can
    show a difference that overlapping per-label CIs cannot. ``n`` counts pairs; a pair is kept
    only when both values are finite (PSNR=inf has no difference). Labels with no pair are left out.
    """
    values: dict[str, dict[tuple, float]] = {}
    for r in rows:
        v = cell_value(r, key) if r["status"] == "ok" else None
        if v is not None and math.isfinite(v):
            values.setdefault(r["label"], {})[(r["clip_id"], r["seed"])] = v
    base = values.get(baseline_label, {})
    records = []
    for label, vals in values.items():
        if label == baseline_label:
            continue
        diffs = [v - base[pair] for pair, v in vals.items() if pair in base]
        if not diffs:
            continue
        est = bootstrap_mean(diffs)
        records.append({"label": label, "metric": key, "n": est.n, "mean": est.mean, "lo": est.lo, "hi": est.hi})
    return pd.DataFrame.from_records(records, columns=PAIRED_COLUMNS)


def cell_counts(rows: Iterable[dict], by: Sequence[str] = ("label",)) -> pd.DataFrame:
    """Cells per group: total, ok, failed."""
    frame = pd.DataFrame.from_records([{**{b: r[b] for b in by}, "status": r["status"]} for r in rows],
                                      columns=[*by, "status"])
    out = frame.groupby(list(by), sort=False)["status"].agg(
        total="size", ok=lambda s: int((s == "ok").sum()), failed=lambda s: int((s == "failed").sum()))
    return out.reset_index()


def keys_with_values(data: RunData, keys: Sequence[str]) -> list[str]:
    return [k for k in keys if any(r["status"] == "ok" and cell_value(r, k) is not None for r in data.rows)]


def pick_headline(data: RunData) -> str | None:
    """The metric a reader looks at first: the headline key a metric recorded in run.json
    (motion fidelity's location-aware "paired"), else symmetric motion fidelity (the paper's
    form of DMT's score; runs before the paired variant), then any motion fidelity, then PSNR,
    then the first metric."""
    keys = keys_with_values(data, data.metric_keys)
    tests = [
        lambda k: k in {f"{i.name}.{i.headline}" for i in data.info.values() if i.headline},
        lambda k: "fidelity" in k and "sym" in k,
        lambda k: "motion_fidelity" in k,
        lambda k: "fidelity" in k,
        lambda k: k == "psnr",
        lambda k: True,
    ]
    for test in tests:
        for k in keys:
            if test(k):
                return k
    return None


def pick_text_alignment(data: RunData) -> str | None:
    """A CLIP text-alignment column with values (named e.g. clip_text, text_alignment, clip_score)."""
    keys = keys_with_values(data, data.metric_keys)
    for test in (lambda k: "text" in k, lambda k: "clip_score" in k or "clipscore" in k):
        for k in keys:
            if test(k):
                return k
    return None


def text_alignment_candidates(data: RunData) -> list[str]:
    """Text-alignment metric names the run knows of, with or without values (for the skip note)."""
    return [n for n in data.info if "text" in n or "clip_score" in n]
