"""Side-by-side animated previews: reference | each label, for one clip, as a GIF.

Frames come from the saved mp4 artifacts through ``motiongrid.bench.video.read_video``
(the one video I/O module); nothing is regenerated.
"""
from __future__ import annotations

import io
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from motiongrid.bench.video import VideoError, read_video, to_uint8

TILE_H = 128
MIN_TILE_W = 144
MAX_COLS = 6
MAX_FRAMES = 32
CAPTION_LINES = 3
PAD = 4
BG = (255, 255, 255)
PLACEHOLDER = (226, 228, 232)


@dataclass
class Tile:
    caption: str
    video: Path | None  # None: nothing to show (failed or missing), ``note`` says why
    note: str = ""
    accent: tuple[int, int, int] = (60, 64, 72)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _load_frames(path: Path | None) -> tuple[np.ndarray | None, float, str]:
    """(T,H,W,3) uint8, fps, error note."""
    if path is None:
        return None, 0.0, "missing"
    try:
        video = read_video(path)
    except VideoError as exc:
        return None, 0.0, f"unreadable: {exc}"
    return to_uint8(video.frames).permute(0, 2, 3, 1).numpy(), video.fps, ""


def wrap_caption(text: str, width: int) -> list[str]:
    """Greedy wrap that also breaks after ',' and '(' (labels like "m(k=2,guidance_weight=1000)"
    have no spaces), and hard-breaks only tokens longer than a line."""
    tokens = [t for t in re.split(r"(?<=[, ])|(?<=\w\()", text) if t]
    lines = [""]
    for tok in tokens:
        if len(lines[-1]) + len(tok) > width and lines[-1]:
            lines.append("")
        while len(tok) > width:
            lines[-1], tok = tok[:width], tok[width:]
            lines.append("")
        lines[-1] += tok
    return [ln.strip() for ln in lines if ln.strip()] or [""]


def preview_gif(tiles: list[Tile], tile_h: int = TILE_H, max_cols: int = MAX_COLS) -> bytes:
    """One animated GIF laying ``tiles`` out in a grid, each captioned above its video."""
    loaded, rates = [], []
    for t in tiles:
        frames, fps, err = _load_frames(t.video) if t.video is not None else (None, 0.0, t.note or "missing")
        loaded.append((t, frames, err or t.note))
        if frames is not None:
            rates.append(fps)
    fps = rates[0] if rates and rates[0] > 0 else 8.0  # the reference's rate when it has one

    shapes = [fr.shape for _, fr, _ in loaded if fr is not None]
    aspect = shapes[0][2] / shapes[0][1] if shapes else 1.0
    tile_w = max(MIN_TILE_W, int(round(tile_h * aspect)))
    n_frames = min(MAX_FRAMES, max((s[0] for s in shapes), default=1))

    font = _font(10)
    line_h = 12
    wrap = max(8, int(tile_w / 6.0))  # ~5.8 px per character at 10 px
    cap_h = CAPTION_LINES * line_h + 3
    cols = min(max_cols, len(tiles))
    rows = -(-len(tiles) // cols)
    cell_w, cell_h = tile_w + PAD, tile_h + cap_h + PAD
    size = (cols * cell_w + PAD, rows * cell_h + PAD)

    # Static layer: captions and placeholders, drawn once.
    base = Image.new("RGB", size, BG)
    draw = ImageDraw.Draw(base)
    boxes = []
    for i, (t, frames, note) in enumerate(loaded):
        x0 = PAD + (i % cols) * cell_w
        y0 = PAD + (i // cols) * cell_h
        lines = wrap_caption(t.caption, wrap)
        if len(lines) > CAPTION_LINES:
            lines = lines[:CAPTION_LINES]
            lines[-1] = lines[-1][: wrap - 1] + "…"
        for j, line in enumerate(lines):
            draw.text((x0, y0 + j * line_h), line, fill=t.accent, font=font)
        box = (x0, y0 + cap_h, x0 + tile_w, y0 + cap_h + tile_h)
        boxes.append(box)
        if frames is None:
            draw.rectangle(box, fill=PLACEHOLDER)
            for j, line in enumerate(textwrap.wrap(note or "missing", wrap)[:6]):
                draw.text((box[0] + 4, box[1] + 4 + j * line_h), line, fill=(150, 30, 30), font=font)

    # Videos: resize each once, then paste frame t of each (looping shorter ones).
    resized = []
    for (_, frames, _), box in zip(loaded, boxes):
        if frames is None:
            resized.append(None)
            continue
        h, w = frames.shape[1:3]
        scale = min(tile_w / w, tile_h / h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        off = (box[0] + (tile_w - new[0]) // 2, box[1] + (tile_h - new[1]) // 2)
        resample = Image.NEAREST if scale >= 2 else Image.LANCZOS  # keep tiny clips crisp
        resized.append((off, [Image.fromarray(f).resize(new, resample) for f in frames[:MAX_FRAMES]]))

    canvases = []
    for k in range(n_frames):
        canvas = base.copy()
        for item in resized:
            if item is not None:
                off, frs = item
                canvas.paste(frs[k % len(frs)], off)
        canvases.append(canvas)

    # One palette for all frames: no colour flicker between frames.
    sample = canvases[:: max(1, len(canvases) // 4)]
    strip = Image.new("RGB", (size[0], size[1] * len(sample)))
    for i, c in enumerate(sample):
        strip.paste(c, (0, i * size[1]))
    palette = strip.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    frames_p = [c.quantize(palette=palette, dither=Image.Dither.NONE) for c in canvases]

    buf = io.BytesIO()
    frames_p[0].save(buf, format="GIF", save_all=True, append_images=frames_p[1:],
                     duration=int(round(1000 / max(fps, 1))), loop=0, optimize=False, disposal=1)
    return buf.getvalue()

