"""`motiongrid report RUN_DIR`: report.md + a self-contained report.html from a run directory.

Both files render the same context (built once here from ``aggregate``); the HTML embeds its
figures as data URIs, the Markdown links the same files written under ``figures/``. User text
(prompts, clip ids, labels, failure reasons) is escaped in both: Jinja autoescape for HTML, a
``finalize`` hook for Markdown, so a template cannot forget it.
"""
from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

from motiongrid.reports import cells as cell_browser
from motiongrid.reports import plots
from motiongrid.reports.aggregate import (
    aggregate,
    cell_counts,
    keys_with_values,
    paired_differences,
    pick_headline,
    pick_text_alignment,
    text_alignment_candidates,
)
from motiongrid.reports.data import MEMORY_KEY, TIME_TOTAL, RunData, RunDirError, load_run
from motiongrid.reports.defaults import BASELINE_METHOD, DEFAULT_PREVIEWS
from motiongrid.reports.formatting import fmt, fmt_ci, fmt_signed, md_code_block, template_env
from motiongrid.reports.previews import Tile, preview_gif
from motiongrid.reports.stats import LEVEL, N_BOOT

MAX_SWEEP_METRICS = 6


# ---- assets -------------------------------------------------------------------------------

@dataclass
class Asset:
    """A figure or preview: written under figures/ for the Markdown, inlined in the HTML."""
    filename: str
    mime: str
    data: bytes
    title: str
    alt: str
    caption: str = ""
    prompt: str = ""

    @property
    def uri(self) -> str:
        return f"data:{self.mime};base64," + base64.b64encode(self.data).decode("ascii")

    @property
    def rel(self) -> Markup:
        return Markup("figures/" + self.filename)  # our own safe name, not user text


def _slug(text: str) -> str:
    # readable only: asset names start with their index, which keeps look-alike names apart
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60] or "x"


# ---- context ------------------------------------------------------------------------------

@dataclass
class Column:
    key: str
    title: str
    arrow: str
    direction: str  # tooltip text
    resource: bool = False
    meaning: str = ""  # one line: what this key of a dict metric measures (run.json)


@dataclass
class Cell:
    text: str
    ci: str = ""
    best: bool = False
    note: str = ""


@dataclass
class SummaryRow:
    label: str
    method: str
    ok: int
    total: int
    failed: int
    cells: list[Cell] = field(default_factory=list)
    oracle: bool = False


def _columns(data: RunData, keys: list[str]) -> list[Column]:
    cols = []
    for k in keys:
        hib = data.metric_info(k).higher_is_better
        title = {MEMORY_KEY: "peak memory (MB)", TIME_TOTAL: "time / cell (s)"}.get(k, k)
        if k.startswith("time.") and k != TIME_TOTAL:
            title = k[len("time."):] + " (s)"
        direction = {True: "higher is better", False: "lower is better", None: "direction unknown"}[hib]
        cols.append(Column(k, title, data.metric_info(k).arrow, direction,
                           resource=k == MEMORY_KEY or k.startswith("time."),
                           meaning=data.metric_info(k).key_descriptions.get(k.partition(".")[2], "")))
    return cols


def _summary_rows(data: RunData, summary, counts, columns: list[Column]) -> list[SummaryRow]:
    stat = {(r.label, r.metric): r for r in summary.itertuples()}
    oracles = _oracles(data)
    best: dict[str, float] = {}
    for col in columns:
        hib = data.metric_info(col.key).higher_is_better
        # an oracle (a copy of the reference) is a ceiling, never the best method
        means = [stat[(lb, col.key)].mean for lb in data.labels if (lb, col.key) in stat and lb not in oracles]
        means = [m for m in means if not math.isnan(m)]
        if hib is not None and not col.resource and len(means) > 1 and len(set(means)) > 1:
            best[col.key] = max(means) if hib else min(means)
    count = {r.label: r for r in counts.itertuples()}
    method_of = _method_of(data)
    rows = []
    for lb in data.labels:
        c = count[lb]
        row = SummaryRow(lb, method_of[lb], int(c.ok), int(c.total), int(c.failed), oracle=lb in oracles)
        for col in columns:
            s = stat.get((lb, col.key))
            if s is None or s.n == 0:
                row.cells.append(Cell("—", note="no value" if s is None else f"{s.n_missing} missing"))
                continue
            note = f"n={s.n}" + (f", {s.n_missing} missing" if s.n_missing else "")
            row.cells.append(Cell(fmt(s.mean), fmt_ci(s.lo, s.hi), best=not row.oracle and best.get(col.key) == s.mean,
                                  note=note))
        rows.append(row)
    return rows


def _set_level(data: RunData) -> dict:
    """Set-level metrics (FID over all of a label's cells), beside the per-cell means: one row
    per label, one column per stored value; a value that could not be computed shows why."""
    names = [n for n, i in data.info.items() if i.set_level]
    keys: list[str] = []
    for r in data.set_rows:
        for k in r["result"]:
            if k not in keys and not _is_set_diagnostic(k):
                keys.append(k)
    columns = _columns(data, keys)
    by = {(r["label"], r["metric"]): r for r in data.set_rows}
    oracles = _oracles(data)
    rows = []
    for lb in data.labels:
        cells, counts = [], []
        for col in columns:
            r = by.get((lb, col.key.split(".", 1)[0]))
            if r is None:
                cells.append(Cell("—", note="not computed"))
            elif r["error"]:
                cells.append(Cell("error", note=r["error"]))
            else:
                cells.append(Cell(fmt(r["result"].get(col.key)), note=f"{r['n_cells']} cells"))
        for name in names:
            r = by.get((lb, name))
            if r is not None:
                n_frames = r["result"].get(f"{name}.n_generated")
                counts.append(f"{r['n_cells']} cells" + (f", {int(n_frames)} frames" if n_frames else ""))
        if any(c.text != "—" for c in cells):
            rows.append({"label": lb, "oracle": lb in oracles, "cells": cells, "counts": "; ".join(counts)})
    unavailable = [(n, data.info[n].reason or "unavailable") for n in names if not data.info[n].available]
    return {"metrics": names, "columns": columns, "rows": rows, "unavailable": unavailable}


def _is_set_diagnostic(key: str) -> bool:
    sub = key.split(".", 1)[1] if "." in key else ""
    return sub in ("unstable",) or sub.startswith("n_")


def _references(data: RunData) -> list[tuple[str, str]]:
    """("psnr, ssim", what they compared with), grouped, as run.json records it."""
    groups: dict[str, list[str]] = {}
    for name, info in data.info.items():
        if info.reference:
            groups.setdefault(info.reference, []).append(name)
    return [(", ".join(names), ref) for ref, names in groups.items()]


def _oracles(data: RunData) -> set[str]:
    """Labels whose method copies the reference (run.json ``oracle``): ceilings, never ranked."""
    return {lb for lb, m in data.methods_by_label().items() if m.get("oracle")}


def _method_of(data: RunData) -> dict[str, str]:
    return {r["label"]: r["method"] for r in data.rows}


def _pick_baseline(data: RunData, baseline: str | None) -> str | None:
    """--baseline when given (it must be a label), else the first unguided label, else none."""
    if baseline is not None:
        if baseline not in data.labels:
            raise ValueError(f"--baseline {baseline!r}: not a label of this run (have: {', '.join(data.labels)})")
        return baseline
    method_of = _method_of(data)
    return next((lb for lb in data.labels if method_of[lb] == BASELINE_METHOD), None)


def _paired_rows(data: RunData, baseline: str, columns: list[Column]) -> list[dict]:
    """label − baseline per metric, for labels with at least one pair. ``best`` here marks a CI
    wholly on the metric's better side of 0: a difference the pairing resolves."""
    stat = {(r.label, col.key): r for col in columns
            for r in paired_differences(data.rows, col.key, baseline).itertuples()}
    oracles = _oracles(data)
    rows = []
    for lb in data.labels:
        if not any((lb, col.key) in stat for col in columns):
            continue
        cells = []
        for col in columns:
            s = stat.get((lb, col.key))
            if s is None:
                cells.append(Cell("—", note="no pairs"))
                continue
            hib = data.metric_info(col.key).higher_is_better
            clear = (hib is True and s.lo > 0) or (hib is False and s.hi < 0)  # NaN bounds: False
            cells.append(Cell(fmt_signed(s.mean), fmt_ci(s.lo, s.hi), best=clear and lb not in oracles,
                              note=f"n={s.n} pairs"))
        rows.append({"label": lb, "cells": cells, "oracle": lb in oracles})
    return rows


def _metric_errors(data: RunData) -> list[dict]:
    """Per-cell metric errors, grouped by reason; those that only repeat a metric's
    'unavailable' reason are already listed once and left out."""
    unavailable = data.unavailable()
    counts: Counter = Counter()
    labels: dict[tuple, set] = {}
    for r in data.rows:
        for metric, reason in (r.get("metric_errors") or {}).items():
            if unavailable.get(metric.split(".", 1)[0]) == reason or unavailable.get(metric) == reason:
                continue
            counts[(metric, str(reason))] += 1
            labels.setdefault((metric, str(reason)), set()).add(r["label"])
    return [{"metric": m, "reason": reason, "cells": n,
             "labels": ", ".join(sorted(labels[(m, reason)])) if len(labels[(m, reason)]) <= 4
             else f"{len(labels[(m, reason)])} labels"}
            for (m, reason), n in counts.most_common()]


def _clip_order(data: RunData) -> list[str]:
    clips = list(data.clip_prompts())
    for r in data.rows:
        if r["clip_id"] not in clips:
            clips.append(r["clip_id"])
    return [c for c in clips if any(r["clip_id"] == c for r in data.rows)]


def _previews(data: RunData, clips: list[str], n: int) -> list[Asset]:
    prompts = data.clip_prompts()
    assets = []
    for i, clip in enumerate(clips[:n]):
        ref = data.reference_video(clip)
        tiles = [Tile("reference clip", ref if ref and ref.exists() else None,
                      note="no reference video saved", accent=(29, 78, 216))]
        for lb in data.labels:
            cells = sorted((r for r in data.rows if r["label"] == lb and r["clip_id"] == clip),
                           key=lambda r: (r["status"] != "ok", r["seed"]))
            if not cells:
                tiles.append(Tile(lb, None, note="not run"))
                continue
            c = cells[0]
            if c["status"] != "ok":
                tiles.append(Tile(f"{lb} (seed {c['seed']})", None, note="failed: " + str(c.get("reason") or "")))
                continue
            path = data.artifact(c)
            tiles.append(Tile(f"{lb} (seed {c['seed']})", path if path and path.exists() else None,
                              note="video missing"))
        assets.append(Asset(f"preview-{i:02d}-{_slug(clip)}.gif", "image/gif", preview_gif(tiles),
                            title=clip, alt=f"Animated preview for clip {clip}: reference and each label",
                            prompt=prompts.get(clip, "")))
    return assets


def _provenance(data: RunData) -> dict:
    run = data.run
    git = run.get("git_sha") or "unknown"
    if run.get("git_dirty"):
        git += " (dirty working tree)"
    clip_set = run.get("clip_set") or {}
    facts = [
        ("motiongrid", run.get("motiongrid_version")),
        ("git", git),
        ("started", run.get("started_at")),
        ("finished", run.get("finished_at")),
        ("device", " · ".join(str(x) for x in (run.get("device"), run.get("gpu"),
                                               run.get("cuda") and f"CUDA {run['cuda']}") if x) or None),
        ("threads", run.get("torch_threads")),
        ("invocations", len(run["invocations"]) if len(run.get("invocations") or []) > 1 else None),
        ("python", run.get("python")),
        ("platform", run.get("platform")),
        ("config", run.get("config_path")),
        ("seeds", ", ".join(map(str, run.get("seeds") or [])) or None),
        ("clip set", clip_set.get("name")),
        ("clip set options", json.dumps(clip_set.get("options"), sort_keys=True) if clip_set.get("options") else None),
    ]
    versions = run.get("versions") or ({"torch": run["torch"]} if run.get("torch") else {})
    methods = [{"label": lb, "method": m.get("method", ""), "task": m.get("task", ""),
                "params": json.dumps(m.get("params", {}), sort_keys=True),
                "fingerprint": json.dumps(m.get("fingerprint", {}), sort_keys=True) if m.get("fingerprint") else ""}
               for lb, m in data.methods_by_label().items() if isinstance(m, dict)]
    metrics = [{"name": i.name, "arrow": i.arrow, "available": i.available, "description": i.description,
                "reference": i.reference or "", "set_level": i.set_level,
                "preprocessing": json.dumps(i.preprocessing, sort_keys=True) if i.preprocessing else ""}
               for i in data.info.values()]
    config = json.dumps(run.get("config"), indent=2, sort_keys=True, default=str) if run.get("config") else ""
    return {
        "facts": [(k, str(v)) for k, v in facts if v not in (None, "")],
        "versions": sorted((str(k), str(v)) for k, v in versions.items()),
        "methods": methods,
        "metrics": metrics,
        "config": config,
        "config_md": md_code_block(config, "json") if config else "",
    }


def build_context(data: RunData, headline: str | None = None, previews: int = DEFAULT_PREVIEWS,
                  baseline: str | None = None, out_dir: Path | None = None,
                  embed_mb: float = cell_browser.DEFAULT_EMBED_MB) -> dict:
    quality = [k for k in data.metric_keys
               if data.metric_info(k).available or keys_with_values(data, [k])]
    if headline is not None and headline not in quality:
        raise ValueError(f"--metric {headline!r}: not a metric of this run (have: {', '.join(quality) or 'none'})")
    baseline = _pick_baseline(data, baseline)
    headline = headline or pick_headline(data)
    if headline in quality:  # headline column first
        quality = [headline] + [k for k in quality if k != headline]
    resources = data.resource_keys()
    summary = aggregate(data.rows, quality + resources)
    counts = cell_counts(data.rows)
    main_cols = _columns(data, quality + [k for k in (MEMORY_KEY, TIME_TOTAL) if k in resources])
    res_cols = _columns(data, resources)
    with_values = keys_with_values(data, quality)
    # the summary's metrics with values (headline first); resources are too noisy to pair
    paired_cols = _columns(data, with_values) if baseline else []

    notes: dict[str, str] = {}

    sweep_keys = ([headline] if headline in with_values else []) + [k for k in with_values if k != headline]
    sweep_keys = sweep_keys[:MAX_SWEEP_METRICS]
    sweeps = plots.find_sweeps(data) if sweep_keys else []
    sweep_assets = [Asset(f"sweep-{i:02d}-{_slug(s.method)}-{_slug(s.param)}.png", "image/png",
                          plots.sweep_plot(data, s, summary, sweep_keys),
                          title=f"{s.method}: vs {s.param}",
                          alt=f"Metrics of {s.method} against parameter {s.param}",
                          caption="Each point is one label's mean over clips and seeds; bars are the 95% bootstrap CI."
                          + (" One line per value of the other varying parameters." if len(s.series) > 1 else ""))
                    for i, s in enumerate(sweeps)]
    if not sweeps:
        notes["sweeps"] = ("No numeric parameter takes two or more values within one method, "
                           "so there is no sweep to plot.")

    text_key = pick_text_alignment(data)
    # the fidelity axis follows --metric when that is a fidelity, else the automatic choice
    auto = pick_headline(data)
    fidelity_key = next((k for k in (headline, auto) if k and "fidelity" in k), None)
    tradeoff = None
    if fidelity_key and text_key:
        tradeoff = Asset("tradeoff.png", "image/png", plots.tradeoff_plot(data, summary, text_key, fidelity_key),
                         title=f"{fidelity_key} vs {text_key}", alt=f"Scatter of {fidelity_key} against {text_key} per label",
                         caption="Up and to the right is better when both metrics are higher-is-better.")
    else:
        why = []
        if not fidelity_key:
            why.append("no motion-fidelity metric has values in this run")
        if not text_key:
            cands = text_alignment_candidates(data)
            reasons = [f"{c}: {data.info[c].reason}" for c in cands if data.info[c].reason]
            if reasons:
                why.append("text alignment is unavailable (" + "; ".join(reasons) + ")")
            elif cands:
                why.append(f"{', '.join(cands)} has no values")
            else:
                why.append("no text-alignment metric (clip_text) is in this run's config")
        notes["tradeoff"] = "Skipped: " + "; ".join(why) + "."

    clips = _clip_order(data)
    heatmap = None
    if headline in with_values:
        per_clip = aggregate(data.rows, [headline], by=("label", "clip_id"))
        heatmap = Asset("heatmap.png", "image/png", plots.heatmap_plot(data, per_clip, headline, clips),
                        title=f"{headline} per clip", alt=f"Heatmap of {headline} per label and clip",
                        caption="Mean over seeds. Grey: no value; 'failed': every seed failed.")
    else:
        notes["heatmap"] = "Skipped: no metric has values."
    preview_assets = _previews(data, clips, previews) if previews > 0 else []

    figures = sweep_assets + ([tradeoff] if tradeoff else []) + ([heatmap] if heatmap else []) + preview_assets
    prompts = data.clip_prompts()
    failed = [{"label": r["label"], "clip": r["clip_id"], "seed": r["seed"], "reason": r.get("reason") or ""}
              for r in data.rows if r["status"] == "failed"]
    run = data.run
    planned = (run.get("cells") or {}).get("total")
    total = len(data.rows)
    n_ok = sum(r["status"] == "ok" for r in data.rows)
    memory_kinds = sorted({r["memory_kind"] for r in data.rows if r.get("memory_kind")})
    level = f"{int(LEVEL * 100)}%"
    return {
        "title": f"motiongrid report — {data.name}",
        "run_name": data.name,
        "clip_set": (run.get("clip_set") or {}).get("name") or "",
        "n_clips": len(clips),
        "n_labels": len(data.labels),
        "seeds": sorted({r["seed"] for r in data.rows}),
        "cells": {"total": total, "ok": n_ok, "failed": total - n_ok,
                  "planned": planned},
        "device": run.get("device") or "",
        "git": (run.get("git_sha") or "")[:10] + (" (dirty)" if run.get("git_dirty") else ""),
        "headline": headline,
        "headline_arrow": data.metric_info(headline).arrow if headline else "",
        "ci": f"{level} percentile bootstrap over cells ({N_BOOT} resamples, seed 0)",
        "ci_level": level,
        "paired_ci": f"{level} percentile bootstrap over pairs ({N_BOOT} resamples, seed 0)",
        "columns": main_cols,
        "rows": _summary_rows(data, summary, counts, main_cols),
        "baseline": baseline,
        "paired_columns": paired_cols,
        "paired_rows": _paired_rows(data, baseline, paired_cols) if baseline else [],
        "res_columns": res_cols,
        "res_rows": _summary_rows(data, summary, counts, res_cols) if res_cols else [],
        "memory_kind": ", ".join(memory_kinds),
        "unavailable": sorted(data.unavailable().items()),
        "metric_errors": _metric_errors(data),
        "set_level": _set_level(data),
        "references": _references(data),
        "warnings": data.warnings + data.notes,
        "sweeps": sweep_assets,
        "tradeoff": tradeoff,
        "heatmap": heatmap,
        "previews": preview_assets,
        "figures": figures,
        "notes": notes,
        "clips": [{"id": c, "prompt": prompts.get(c, "")} for c in clips],
        "failed": failed,
        "provenance": _provenance(data),
        "browser": _browser(data, out_dir, main_cols, baseline, embed_mb),
    }


def _browser(data: RunData, out_dir: Path | None, columns: list[Column], baseline: str | None, embed_mb: float) -> dict:
    js, digest = cell_browser.script()
    ctx = cell_browser.browser_data(data, out_dir or data.path / "report", columns, baseline, embed_mb)
    return {**ctx, "script": js, "script_hash": digest}


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, headline: str | None = None,
                 previews: int = DEFAULT_PREVIEWS, baseline: str | None = None,
                 embed_mb: float = cell_browser.DEFAULT_EMBED_MB) -> tuple[Path, Path]:
    data = load_run(run_dir)
    if not data.rows:
        raise RunDirError(f"{run_dir}: results.sqlite has no cells yet (nothing to report)")
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    ctx = build_context(data, headline=headline, previews=previews, baseline=baseline, out_dir=out, embed_mb=embed_mb)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for a in ctx["figures"]:
        (fig_dir / a.filename).write_bytes(a.data)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(template_env(markdown=True).get_template("report.md.j2").render(**ctx), encoding="utf-8")
    html_path.write_text(template_env(markdown=False).get_template("report.html.j2").render(**ctx), encoding="utf-8")
    return md_path, html_path



