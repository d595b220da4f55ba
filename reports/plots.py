"""Report figures as PNG bytes: parameter sweeps, the fidelity/text-alignment trade-off, and
the per-clip heatmap.

Uses matplotlib's object API with the Agg canvas directly (no pyplot), so building a report
never touches global backend state. Every number plotted comes from ``aggregate``.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from motiongrid.reports.data import RunData

DPI = 110
PALETTE = ["#3b6fb6", "#d9742b", "#3f9a5a", "#b8433b", "#7b5aa6", "#8c6d3f", "#c95fa4", "#6b7280",
           "#a8a335", "#2fa3b5"]


def plain(text: str) -> str:
    """User text (labels, clip ids) for matplotlib: a '$' would otherwise start mathtext."""
    return str(text).replace("$", r"\$")


def short(text: str, n: int = 42) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _style(ax) -> None:
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def _stat(summary: pd.DataFrame, label: str, key: str) -> tuple[float, float, float]:
    hit = summary[(summary["label"] == label) & (summary["metric"] == key)]
    if hit.empty:
        return math.nan, math.nan, math.nan
    r = hit.iloc[0]
    return float(r["mean"]), float(r["lo"]), float(r["hi"])


def _yerr(means, los, his):
    """Asymmetric error bars; zero where the CI is unknown (n=1)."""
    m, lo, hi = (np.asarray(a, dtype=float) for a in (means, los, his))
    down = np.where(np.isfinite(lo), m - lo, 0.0)
    up = np.where(np.isfinite(hi), hi - m, 0.0)
    return np.clip(np.vstack([down, up]), 0, None)


def metric_title(data: RunData, key: str) -> str:
    arrow = data.metric_info(key).arrow
    return f"{key} {arrow}".strip()


# ---- parameter sweeps ---------------------------------------------------------------------

@dataclass
class Sweep:
    method: str
    param: str
    # series name ("" when only this param varies) -> [(x, label)] sorted by x
    series: dict[str, list[tuple[float, str]]] = field(default_factory=dict)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def find_sweeps(data: RunData) -> list[Sweep]:
    """Numeric params that take two or more values among one method's labels."""
    params_by_label: dict[str, tuple[str, dict]] = {}
    for r in data.rows:
        params_by_label.setdefault(r["label"], (r["method"], r["params"] or {}))
    methods: dict[str, list[str]] = {}
    for label in data.labels:
        if label in params_by_label:
            methods.setdefault(params_by_label[label][0], []).append(label)

    sweeps = []
    for method, labels in methods.items():
        plist = {lb: params_by_label[lb][1] for lb in labels}
        names = sorted({k for p in plist.values() for k in p})
        varying = [k for k in names if len({repr(p.get(k)) for p in plist.values()}) > 1]
        for param in varying:
            if not all(_is_number(p.get(param)) for p in plist.values()):
                continue
            others = [k for k in varying if k != param]
            sweep = Sweep(method, param)
            for lb, p in plist.items():
                name = ", ".join(f"{k}={p.get(k)}" for k in others)
                sweep.series.setdefault(name, []).append((float(p[param]), lb))
            for pts in sweep.series.values():
                pts.sort()
            sweeps.append(sweep)
    return sweeps


def sweep_plot(data: RunData, sweep: Sweep, summary: pd.DataFrame, keys: list[str]) -> bytes:
    ncols = min(3, len(keys))
    nrows = -(-len(keys) // ncols)
    fig = Figure(figsize=(3.6 * ncols, 2.8 * nrows), layout="constrained")
    xs_all = [x for pts in sweep.series.values() for x, _ in pts]
    logx = min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 20
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        _style(ax)
        for j, (name, pts) in enumerate(sweep.series.items()):
            stats = [_stat(summary, lb, key) for _, lb in pts]
            xs = [x for x, _ in pts]
            means = [s[0] for s in stats]
            ax.errorbar(xs, means, yerr=_yerr(*zip(*stats)), marker="o", markersize=4, capsize=3,
                        linewidth=1.5, color=PALETTE[j % len(PALETTE)], label=plain(name) or None)
        if logx:
            ax.set_xscale("log")
        ticks = sorted(set(xs_all))
        if len(ticks) <= 8:  # label the values actually run, not interpolated ones
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
        ax.set_title(plain(metric_title(data, key)), fontsize=10)
        ax.set_xlabel(plain(sweep.param), fontsize=9)
    if len(sweep.series) > 1:
        fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center",
                   ncols=min(4, len(sweep.series)), fontsize=8, frameon=False)
    fig.suptitle(plain(f"{sweep.method}: metrics vs {sweep.param} (mean, 95% CI)"), fontsize=11)
    return _png(fig)


# ---- trade-off scatter --------------------------------------------------------------------

MARKERS = "osD^vP*Xph"


def tradeoff_plot(data: RunData, summary: pd.DataFrame, x_key: str, y_key: str) -> bytes:
    """One point per label with CI bars both ways; a legend, not annotations, names the points
    (labels of a sweep sit close together and their text would overlap)."""
    method_of = {r["label"]: r["method"] for r in data.rows}
    methods = list(dict.fromkeys(method_of[lb] for lb in data.labels if lb in method_of))
    points = []
    for label in data.labels:
        x, y = _stat(summary, label, x_key), _stat(summary, label, y_key)
        if math.isfinite(x[0]) and math.isfinite(y[0]):
            points.append((label, x, y))
    fig = Figure(figsize=(8.6, max(4.4, 1.2 + 0.22 * len(points))), layout="constrained")
    ax = fig.add_subplot()
    _style(ax)
    for i, (label, x, y) in enumerate(points):
        marker = MARKERS[methods.index(method_of[label]) % len(MARKERS)]
        ax.errorbar([x[0]], [y[0]], xerr=_yerr(*[[v] for v in x]), yerr=_yerr(*[[v] for v in y]),
                    fmt=marker, markersize=6, capsize=3, color=PALETTE[i % len(PALETTE)], alpha=0.9,
                    label=plain(short(label, 48)))
    if points:
        fig.legend(loc="outside right upper", fontsize=7.5, frameon=False, title="label (marker: method)",
                   title_fontsize=8)
    ax.set_xlabel(plain(metric_title(data, x_key)), fontsize=9)
    ax.set_ylabel(plain(metric_title(data, y_key)), fontsize=9)
    ax.set_title("Motion fidelity vs text alignment (per label, 95% CI)", fontsize=10)
    return _png(fig)


# ---- per-clip heatmap ---------------------------------------------------------------------

def heatmap_plot(data: RunData, per_clip: pd.DataFrame, key: str, clips: list[str]) -> bytes:
    """Label × clip, mean over seeds; brighter is better whatever the metric's direction."""
    labels = data.labels
    grid = np.full((len(labels), len(clips)), np.nan)
    sub = per_clip[per_clip["metric"] == key]
    li = {lb: i for i, lb in enumerate(labels)}
    ci = {c: j for j, c in enumerate(clips)}
    for r in sub.itertuples():
        if r.label in li and r.clip_id in ci:
            grid[li[r.label], ci[r.clip_id]] = r.mean
    failed = np.zeros_like(grid, dtype=bool)
    for r in data.rows:
        if r["status"] == "failed" and r["label"] in li and r["clip_id"] in ci:
            failed[li[r["label"]], ci[r["clip_id"]]] = True

    finite = grid[np.isfinite(grid)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    shown = np.where(np.isposinf(grid), vmax, np.where(np.isneginf(grid), vmin, grid))
    lower_better = data.metric_info(key).higher_is_better is False

    w = max(5.0, 2.6 + 0.62 * len(clips))
    h = max(2.2, 1.2 + 0.34 * len(labels))
    fig = Figure(figsize=(w, h), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis_r" if lower_better else "viridis"].with_extremes(bad="#e5e7eb")
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(clips)), [plain(short(c, 24)) for c in clips], rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), [plain(short(lb, 44)) for lb in labels], fontsize=8)
    if grid.size <= 400:
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                v = grid[i, j]
                if math.isnan(v):
                    text, color = ("failed" if failed[i, j] else "—"), "#b91c1c"
                else:
                    text = "∞" if math.isinf(v) else f"{v:.3g}"
                    frac = (shown[i, j] - vmin) / (vmax - vmin)
                    bright = (1 - frac) if lower_better else frac
                    color = "black" if bright > 0.6 else "white"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.set_label("brighter is better", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    ax.set_title(plain(f"{key} per clip (mean over seeds)"), fontsize=10)
    return _png(fig)
