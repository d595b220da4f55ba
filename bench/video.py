"""The in-memory video contract, its conversions and its file I/O.

A ``Video`` is a float tensor (T, 3, H, W) in [0, 1] plus fps. Every other convention a
model or metric needs (uint8, [-1, 1], 0..255) is produced by one named function here, so no
code converts ad hoc.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motiongrid.bench.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".mkv", ".avi", ".mov")


class VideoError(UserError, ValueError):
    """A video file or tensor that cannot be used; the message names it."""


@dataclass
class Video:
    frames: torch.Tensor  # (T, 3, H, W) float32 in [0, 1]
    fps: float = 8.0

    def __post_init__(self):
        check_frames(self.frames, "video")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    def content_hash(self) -> str:
        return hash_frames(self.frames)


def check_frames(frames: torch.Tensor, name: str) -> None:
    if not isinstance(frames, torch.Tensor):
        raise VideoError(f"{name}: expected a torch.Tensor (T, 3, H, W), got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise VideoError(f"{name}: expected shape (T, 3, H, W), got {tuple(frames.shape)}")
    if not frames.is_floating_point():
        raise VideoError(f"{name}: expected float frames in [0, 1], got dtype {frames.dtype}")
    if frames.shape[0] == 0:
        raise VideoError(f"{name}: has no frames")


def hash_frames(frames: torch.Tensor) -> str:
    """Content hash of the uint8-quantised frames (stable across float noise below 1/255)."""
    data = to_uint8(frames).numpy()
    h = hashlib.sha256()
    h.update(str(data.shape).encode())
    h.update(data.tobytes())
    return h.hexdigest()[:16]


# ---- conventions: the only places frames change range or dtype -------------------------

def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """[0,1] float (T,3,H,W) -> uint8 (T,3,H,W), rounding to nearest."""
    return (frames.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()


def from_uint8(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (T,3,H,W) -> float32 [0,1]."""
    t = torch.as_tensor(frames)
    return t.float() / 255.0


def to_minus_one_one(frames: torch.Tensor) -> torch.Tensor:
    """[0,1] -> [-1,1] (LPIPS, VAEs, pixel-space diffusion)."""
    return frames * 2.0 - 1.0


def from_minus_one_one(frames: torch.Tensor) -> torch.Tensor:
    """[-1,1] -> [0,1], clamped."""
    return ((frames + 1.0) / 2.0).clamp(0, 1)


def to_0_255(frames: torch.Tensor) -> torch.Tensor:
    """[0,1] -> float 0..255 (CoTracker input)."""
    return frames.float() * 255.0


def to_uint8_hwc(frames: torch.Tensor) -> np.ndarray:
    """[0,1] float (T,3,H,W) -> uint8 numpy (T,H,W,3) (OpenCV, PIL and clean-fid take images so)."""
    return np.ascontiguousarray(to_uint8(frames).permute(0, 2, 3, 1).numpy())


def resize_frames(frames: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize (T,3,H,W) to (h, w) with antialiasing when shrinking."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    kwargs = {"antialias": True} if mode in ("bilinear", "bicubic") else {}
    out = torch.nn.functional.interpolate(frames, size=tuple(size), mode=mode, **kwargs)
    return out.clamp(0, 1)


def resample_frames(frames: torch.Tensor, count: int) -> torch.Tensor:
    """Temporal resampling to ``count`` frames by nearest index, spread uniformly
    (``sample_frame_indices``); no frame blending, so every output frame is a real frame."""
    if frames.shape[0] == count:
        return frames
    return frames[sample_frame_indices(int(frames.shape[0]), count)]


def sample_frame_indices(total: int, count: int) -> list[int]:
    """``count`` indices spread uniformly over ``total`` frames, rounded to the nearest frame
    (metrics' resampling; MotionClone's reference uses the release's floor instead)."""
    if total <= 0:
        raise VideoError("cannot sample frames from an empty video")
    return np.linspace(0, total - 1, count).round().astype(int).tolist()


# ---- file I/O ---------------------------------------------------------------------------

def write_video(video: Video, path: str | os.PathLike, lossless: bool = True) -> Path:
    """Write an mp4 with PyAV. Lossless RGB H.264 by default so scores can be recomputed
    exactly from artifacts. Written to a temporary name and renamed, so a kill never leaves
    a truncated file under the final name."""
    import av

    from motiongrid.bench.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        _encode_mp4(av, video, tmp, lossless)
    return path


def encode_video(video: Video, lossless: bool = True) -> bytes:
    """The mp4 file ``write_video`` writes, as bytes (a Ray worker returns them to the driver,
    which writes them)."""
    import tempfile

    import av

    with tempfile.TemporaryDirectory(prefix="motiongrid-video-") as folder:
        path = Path(folder) / "video.mp4"
        _encode_mp4(av, video, path, lossless)
        return path.read_bytes()


def _encode_mp4(av, video: Video, tmp: Path, lossless: bool) -> None:
    frames = to_uint8(video.frames).permute(0, 2, 3, 1).numpy()  # T,H,W,3
    t, h, w, _ = frames.shape
    fps = max(1, int(round(video.fps)))
    with av.open(str(tmp), mode="w", format="mp4") as container:
        if lossless:
            stream = container.add_stream("libx264rgb", rate=fps)
            stream.pix_fmt = "rgb24"
            stream.options = {"crf": "0", "preset": "veryfast"}
        else:
            stream = container.add_stream("libx264", rate=fps)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            frames = frames[:, : h - h % 2, : w - w % 2]
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_video(path: str | os.PathLike, alpha_background: tuple[int, int, int] | None = None) -> Video:
    """Read a video file (any container PyAV decodes) or a folder of image frames. Frames with
    transparent pixels are composited over ``alpha_background`` (RGB 0..255), or refused when
    it is None; an alpha channel that is fully opaque is simply dropped."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    if path.is_dir():
        return _read_frame_folder(path, alpha_background=alpha_background)
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 8.0
            fmt = stream.codec_context.format
            has_alpha = fmt is not None and (fmt.has_palette or any(c.is_alpha for c in fmt.components))
            arrays = [f.to_ndarray(format="rgba" if has_alpha else "rgb24") for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError) as exc:
        raise VideoError(f"{path}: cannot decode as a video ({exc.__class__.__name__}: {exc})") from exc
    if not arrays:
        raise VideoError(f"{path}: contains no decodable frames")
    frames = from_uint8(composite_alpha(np.stack(arrays), alpha_background, path)).permute(0, 3, 1, 2).contiguous()
    return Video(frames, fps)


def probe_video(path: str | os.PathLike) -> str | None:
    """None when ``path`` is a video whose first frame decodes; else what is wrong, in words.
    Cheap (one frame), for checking that stored artifacts are still there and readable."""
    import av

    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        with av.open(str(path)) as container:
            if next(container.decode(container.streams.video[0]), None) is None:
                return "unreadable (no decodable frame)"
    except (av.error.FFmpegError, IndexError) as exc:
        return f"unreadable ({exc.__class__.__name__}: {exc})"
    return None


def artifact_problems(run_dir: str | os.PathLike, rows: list[dict]) -> dict[str, str]:
    """{cell key: what is wrong} for the rows stored ok whose video is missing or does not
    decode: the store says more than the directory holds (a file deleted, copied half, or a
    store-only copy such as ``ci/baseline``)."""
    out = {}
    for row in rows:
        if row["status"] == "ok" and row.get("artifact"):
            problem = probe_video(Path(run_dir) / row["artifact"])
            if problem:
                out[row["key"]] = f"{row['artifact']} {problem}"
    return out


def describe_artifact_problems(problems: dict[str, str], ok_cells: int) -> str:
    """One line for run, report and compare."""
    first = next(iter(problems.values()))
    return (f"{len(problems)} of {ok_cells} cells stored ok have no readable video (e.g. {first}); "
            f"their stored numbers cannot be re-checked or previewed")


NAMED_BACKGROUNDS = {"black": (0, 0, 0), "white": (255, 255, 255)}


def alpha_background(value, where: str) -> tuple[int, int, int] | None:
    """A declared compositing background: None, "black", "white" or [r, g, b] in 0..255."""
    if value is None:
        return None
    if isinstance(value, str) and value in NAMED_BACKGROUNDS:
        return NAMED_BACKGROUNDS[value]
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
        return tuple(value)
    raise VideoError(f"{where}: alpha_background must be \"black\", \"white\" or [r, g, b] with integers "
                     f"0..255, got {value!r}")


def composite_alpha(frames: np.ndarray, background: tuple[int, int, int] | None, name) -> np.ndarray:
    """uint8 (..., H, W, 3 or 4) -> (..., H, W, 3): "over" compositing on ``background``."""
    if frames.shape[-1] == 3 or (frames[..., 3] == 255).all():
        return np.ascontiguousarray(frames[..., :3])
    if background is None:
        raise VideoError(f"{name}: has transparent pixels (an alpha channel) and no background to composite "
                         f"them on; set the clip set option alpha_background = \"black\", \"white\" or [r, g, b]")
    alpha = frames[..., 3:4].astype(np.float32) / 255.0
    out = frames[..., :3] * alpha + np.asarray(background, np.float32) * (1.0 - alpha)
    return np.round(out).astype(np.uint8)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def frame_files(folder: Path) -> list[Path]:
    """A frame folder's image files in frame order. Names number the frames: one pattern
    ``<prefix><number><suffix>.<ext>`` (frame_0.png, 00000.jpg, img_001_mask.png), numbers with
    or without zero padding, consecutive or at one fixed step. A file that does not fit (a
    "frame_3 copy.png", a duplicate number, a gap) is an error naming it, never sorted in
    somewhere: it would shift every later frame against the other inputs of its case."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise VideoError(f"{folder}: folder has no image frames ({', '.join(IMAGE_SUFFIXES)})")
    if len(files) == 1:
        return files
    parsed = []
    for f in files:
        m = re.fullmatch(r"(.*?)(\d+)(\D*)", f.stem)
        parsed.append(((m[1], m[3]) if m else None, int(m[2]) if m else -1, f))
    patterns = Counter(p for p, _, _ in parsed if p is not None)
    if not patterns:
        raise VideoError(f"{folder}: frame names carry no frame number (e.g. {files[0].name}); name them "
                         f"<prefix><number>.<ext>, e.g. frame_0.png, frame_1.png, ...")
    (prefix, suffix), _ = patterns.most_common(1)[0]
    example = f"{prefix}<number>{suffix}"
    for pattern, _, f in parsed:
        if pattern != (prefix, suffix):
            raise VideoError(f"{f}: frame name does not fit the numbering of its folder ({example}.<ext>); "
                             f"rename or remove it")
    parsed.sort(key=lambda t: t[1])
    step = parsed[1][1] - parsed[0][1]
    for (_, a, fa), (_, b, fb) in zip(parsed, parsed[1:]):
        if a == b:
            raise VideoError(f"{fb}: frame number {b} is also {fa.name}; remove one of them")
        if b - a != step:
            raise VideoError(f"{fb}: frame numbers in {folder} go from {a} to {b} after stepping by {step}; "
                             f"a frame is missing or misnamed before {fb.name}")
    return [f for _, _, f in parsed]


def _read_frame_folder(folder: Path, fps: float = 8.0, alpha_background=None) -> Video:
    import cv2

    files = frame_files(folder)
    arrays = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)   # keeps an alpha channel, if any
        if img is None:
            raise VideoError(f"{f}: cannot decode image frame")
        if img.dtype != np.uint8:  # 16-bit PNG
            img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        elif img.shape[2] == 4:
            img = composite_alpha(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA), alpha_background, f)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        arrays.append(img)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise VideoError(f"{folder}: frames differ in size {sorted(shapes)}")
    frames = from_uint8(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return Video(frames, fps)
