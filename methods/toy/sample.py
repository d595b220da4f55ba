"""Toy model samples: quality numbers ("one clean object of the prompted colour, moving"),
per-timestep diagnostics, and the PNG strip of ``motiongrid toy sample``."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from motiongrid.bench.toyworld import COLOURS, FLAT_BACKGROUND, random_spec, render_clip
from motiongrid.methods.backbone import Backbone
from motiongrid.methods.toy.model import (
    DEFAULT_CFG,
    DEFAULT_SAMPLING_STEPS,
    TOY_CLIP_OPTIONS,
    sample_unguided,
    toy_prompt,
    toy_shapes_options,
)


def quality(video: torch.Tensor, colour: str, fg_threshold: float = 0.3, margin: int = 2) -> dict:
    """Numbers for "is this a clean toy clip of the prompted colour".

    Foreground: pixels whose colour is farther than ``fg_threshold`` (max over channels) from
    the flat background. Background: everything more than ``margin`` px from any foreground
    pixel (so anti-aliased edges do not count). Returns the mean |background − FLAT_BACKGROUND|
    (over pixels and channels), the foreground share of the frame, and whether the mean
    foreground colour is nearest the prompted one among the toy colours."""
    bg = torch.tensor(FLAT_BACKGROUND, dtype=video.dtype).view(1, 3, 1, 1)
    fg = foreground(video, fg_threshold)[:, None]                       # (F,1,H,W)
    near = torch.nn.functional.max_pool2d(fg.float(), 2 * margin + 1, stride=1, padding=margin) > 0
    background = ~near
    bg_err = ((video - bg).abs() * background).sum() / (background.sum() * 3).clamp(min=1)
    out = {"bg_error": float(bg_err), "fg_fraction": float(fg.float().mean()),
           "colour_ok": False, "fg_colour": None, **_object_track(fg[:, 0])}
    if fg.any():
        mean = (video * fg).sum(dim=(0, 2, 3)) / fg.sum()
        out["fg_colour"] = [round(float(c), 3) for c in mean]
        names = TOY_CLIP_OPTIONS["colours"]
        d = [float(((mean - torch.tensor(COLOURS[c])) ** 2).sum()) for c in names]
        out["colour_ok"] = names[int(np.argmin(d))] == colour
    return out


def foreground(video: torch.Tensor, fg_threshold: float = 0.3) -> torch.Tensor:
    """(F, H, W) bool: pixels farther than ``fg_threshold`` (max over channels) from the flat background."""
    bg = torch.tensor(FLAT_BACKGROUND, dtype=video.dtype).view(1, 3, 1, 1)
    return (video - bg).abs().amax(dim=1) > fg_threshold


def object_centres(fg: torch.Tensor) -> tuple[list[tuple[float, float] | None], list[int]]:
    """Per frame of a (F, H, W) foreground mask: the (y, x) centroid of the largest connected
    component (None when empty), and the number of components."""
    from scipy import ndimage

    counts, centres = [], []
    for mask in fg.numpy():
        labels, n = ndimage.label(mask)
        counts.append(n)
        if n:
            sizes = ndimage.sum(mask, labels, range(1, n + 1))
            centres.append(ndimage.center_of_mass(mask, labels, int(np.argmax(sizes)) + 1))
        else:
            centres.append(None)
    return centres, counts


def _object_track(fg: torch.Tensor) -> dict:
    """The mean number of components and the mean per-frame step of the largest one's
    centroid (px): "one object" and "it moves"."""
    centres, counts = object_centres(fg)
    steps = [float(np.hypot(*np.subtract(b, a))) for a, b in zip(centres, centres[1:]) if a is not None and b is not None]
    return {"components": float(np.mean(counts)), "step_px": float(np.mean(steps)) if steps else float("nan")}


QUALITY_PROMPTS = [("red", "circle"), ("green", "square"), ("blue", "circle"), ("yellow", "square")]


def quality_report(backbone: Backbone, seeds: Sequence[int] = (0,), steps: int = DEFAULT_SAMPLING_STEPS,
                   cfg: float = DEFAULT_CFG) -> dict:
    rows = []
    prompts = [toy_prompt(c, k) for c, k in QUALITY_PROMPTS]
    for seed in seeds:
        videos = sample_unguided(backbone, prompts, seed * 1000, steps, cfg)
        rows += [quality(v, c) for v, (c, _) in zip(videos, QUALITY_PROMPTS)]
    return {"bg_error_mean": float(np.mean([r["bg_error"] for r in rows])),
            "bg_error_max": float(np.max([r["bg_error"] for r in rows])),
            "fg_fraction_mean": float(np.mean([r["fg_fraction"] for r in rows])),
            "colour_ok": float(np.mean([r["colour_ok"] for r in rows])),
            "components": float(np.mean([r["components"] for r in rows])),
            "step_px": float(np.nanmean([r["step_px"] for r in rows])), "n": len(rows)}


@torch.no_grad()
def timestep_errors(backbone: Backbone, timesteps: Sequence[int] = (10, 50, 200, 400, 700, 950),
                    clips: int = 8, seed: int = 4321) -> list[dict]:
    """Per-timestep diagnostics on held-out toy clips (conditional branch): mean |x̂0 − x0| in
    [0, 1] units, and the spread of the implied noise prediction (1 when calibrated) — the
    earlier trial failed at low noise, where ε̂ had spread 0.6."""
    refs = toy_reference_clips(clips, seed=seed, clip_options=getattr(backbone, "config", {}).get("clip_options"))
    x0 = torch.cat([backbone.encode_video(f) for f, _ in refs])
    context = backbone.encode_prompt([p for _, p in refs]).repeat_interleave(backbone.num_frames, dim=0)
    acp = backbone.scheduler.alphas_cumprod
    kind = backbone.scheduler.config.prediction_type
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for t in timesteps:
        a = acp[t].to(x0.dtype)
        noise = torch.randn(x0.shape, generator=gen)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        out = backbone.unet(xt, torch.full((len(refs),), t), encoder_hidden_states=context).sample
        if kind == "v_prediction":
            x0_hat, eps_hat = a.sqrt() * xt - (1 - a).sqrt() * out, (1 - a).sqrt() * xt + a.sqrt() * out
        elif kind == "epsilon":
            eps_hat = out
            x0_hat = (xt - (1 - a).sqrt() * out) / a.sqrt()
        else:
            x0_hat = out
            eps_hat = (xt - a.sqrt() * out) / (1 - a).sqrt()
        rows.append({"t": int(t), "x0_abs_error": float((x0_hat.clamp(-1, 1) - x0).abs().mean() / 2),
                     "eps_std": float(eps_hat.std()), "eps_mse": float((eps_hat - noise).square().mean())})
    return rows


# ---- the PNG strip -----------------------------------------------------------------------------

# A row maker takes (backbone, reference clip frames (F,3,H,W), prompt, seed) and returns a
# video (F,3,H,W) in [0,1]. Guided rows (MotionClone plain/primary) are added by passing more
# row makers to ``sample_strip`` — see ``strip_rows``.
RowMaker = Callable[[Backbone, torch.Tensor, str, int], torch.Tensor]


def _unguided_row(backbone: Backbone, reference: torch.Tensor, prompt: str, seed: int) -> torch.Tensor:
    return sample_unguided(backbone, [prompt], seed)[0]


def _adapter_row(method: str, **params) -> RowMaker:
    """A row from a registered adapter (the same code path as `motiongrid run`)."""
    def row(backbone: Backbone, reference: torch.Tensor, prompt: str, seed: int) -> torch.Tensor:
        from motiongrid.bench.clip import Clip
        from motiongrid.bench.registry import methods
        from motiongrid.bench.video import Video, hash_frames

        adapter = methods.get(method)()
        adapter.prepare(backbone.device)
        adapter.use_backbone(backbone)
        clip = Clip(id="strip", prompt=prompt, loader=lambda: Video(reference, 8.0), source_hash=hash_frames(reference))
        return adapter.generate(clip, adapter.Params(model=backbone.model_id, **params), seed).frames
    return row


def strip_rows() -> dict[str, RowMaker]:
    """The rows of ``motiongrid toy sample`` after the reference row, in order."""
    return {"unguided": _unguided_row,
            "motionclone plain": _adapter_row("motionclone", mask="plain"),
            "motionclone primary k=1": _adapter_row("motionclone", mask="primary", k=1)}


def toy_reference_clips(count: int, seed: int = 1234, clip_options: dict | None = None
                        ) -> list[tuple[torch.Tensor, str]]:
    """``count`` toy clips (frames, prompt). Seeded by (seed, 10**6 + i): training draws step
    k's clips from (train seed, k) with k < 10**6, so these are never training clips."""
    opts = toy_shapes_options(**(clip_options or {}))
    out = []
    for i in range(count):
        spec = random_spec(np.random.default_rng([seed, 10**6 + i]), opts)
        out.append((render_clip(spec, opts)[0], spec.prompt()))
    return out


def sample_strip(backbone: Backbone, out_png: str | os.PathLike, clips: int = 3, seed: int = 0,
                 rows: dict[str, RowMaker] | None = None, scale: int = 4) -> Path:
    """A PNG: for each clip a block of rows (reference, then each row maker), frames left to
    right, upscaled ``scale``× with nearest neighbour, one labelled row per method."""
    rows = rows if rows is not None else strip_rows()
    refs = toy_reference_clips(clips, clip_options=getattr(backbone, "config", {}).get("clip_options"))
    labels, images = [], []
    for ci, (frames, prompt) in enumerate(refs):
        videos = {"reference": frames}
        for name, maker in rows.items():
            videos[name] = maker(backbone, frames, prompt, seed + ci)
        for name, video in videos.items():
            strip = torch.cat(list(video.clamp(0, 1)), dim=2)          # (3, H, F*W)
            images.append(strip.permute(1, 2, 0).numpy())
            labels.append(f"{name}" + (f" — {prompt}" if name == "reference" else ""))
    return save_strip(images, labels, out_png, scale)


def save_strip(rows: list[np.ndarray], labels: list[str], out_png: str | os.PathLike, scale: int = 4) -> Path:
    """One labelled image row per entry (HWC in [0, 1]), upscaled ``scale``× nearest, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(rows[0].shape[1] * scale / 100 + 0.2,
                                                    len(rows) * (rows[0].shape[0] * scale / 100 + 0.3)), dpi=100)
    for ax, img, label in zip(np.atleast_1d(axes), rows, labels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label, fontsize=8, loc="left")
        ax.axis("off")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
