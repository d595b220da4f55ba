"""A clip: the unit every method and metric works on (a motion reference, or an editing case)."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from motiongrid.bench.errors import UserError
from motiongrid.bench.video import Video, VideoError


@dataclass
class Clip:
    """One benchmark case. Frames load lazily (and once) through ``loader``.

    tracks: (T, N, 2) float (x, y) in pixels of the clip's own resolution; visibility (T, N)
    bool. ``flow``, when the clip's maker knows the exact motion (the shapes renderer), returns
    the backward flow (T-1, 2, H, W) from frame t+1 to frame t in pixels and where it holds
    (T-1, H, W) bool (see datasets/shapes.py). ``source_hash`` identifies the pixels without decoding them (a file digest, or the
    generator's parameters); ``content_hash`` adds everything else that changes a result.
    """
    id: str
    prompt: str
    loader: Callable[[], Video]
    source_hash: str
    target_prompt: str | None = None
    tracks: torch.Tensor | None = None
    visibility: torch.Tensor | None = None
    target_video: Callable[[], Video] | None = None
    edit: EditCase | None = None
    meta: dict = field(default_factory=dict)
    flow: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None
    _video: Video | None = field(default=None, init=False, repr=False)
    _scoring: Clip | None = field(default=None, init=False, repr=False)

    @property
    def video(self) -> Video:
        if self._video is None:
            video = self.loader()
            if not isinstance(video, Video):
                raise VideoError(f"clip {self.id!r}: loader returned {type(video).__name__}, expected Video")
            self._video = video
        return self._video

    @property
    def frames(self) -> torch.Tensor:
        return self.video.frames

    def release(self) -> None:
        """Drop decoded frames (they are reloaded on next access)."""
        self._video = None
        if self.edit is not None:
            self.edit.release()

    @property
    def is_edit(self) -> bool:
        return self.edit is not None

    def scoring_reference(self) -> Clip:
        """What reference metrics compare a cell's output with. A motion reference scores
        against itself; an editing case against its ground-truth edit (frames and tracks),
        never its source. An editing case without ground truth gets a reference whose frames
        raise a clear error, so reference metrics fail with that reason and prompt-only
        metrics still score."""
        if self.edit is None:
            return self
        if self._scoring is None:
            self._scoring = self.edit.ground_truth_clip(self)
        return self._scoring

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.source_hash, self.prompt, self.target_prompt or ""):
            h.update(part.encode())
            h.update(b"\0")
        if self.tracks is not None:
            h.update(np.ascontiguousarray(self.tracks.numpy(), dtype=np.float32).tobytes())
        if self.edit is not None:
            h.update(b"edit\0" + self.edit.digest.encode())
        return h.hexdigest()[:16]


# What each kind of reference is called in run.json and reports.
REFERENCE_SOURCE = "the clip itself (motion reference)"
REFERENCE_GROUND_TRUTH = "the ground-truth edited video (not the source)"


class MissingGroundTruth(VideoError):
    """An editing case has no ground-truth edit, so a reference metric is undefined for it."""


@dataclass
class EditCase:
    """The inputs of a motion-editing case besides its source video (``Clip.video``), as the
    released MotionFollower demo cases hold them: per-frame source poses, target poses
    (aligned to the source subject), source masks S (the subject's silhouette) and target
    masks T (the source subject's silhouette in the target pose), plus, when it exists, the
    ground-truth edited video and its tracks.

    Everything loads lazily and once. Poses are RGB videos; masks are (T, H, W) bool.
    ``digest`` identifies all of it (file digests, or the generator's parameters).
    """
    source_poses: Callable[[], Video]
    target_poses: Callable[[], Video]
    source_masks: Callable[[], torch.Tensor]
    target_masks: Callable[[], torch.Tensor]
    digest: str
    ground_truth: Callable[[], Video] | None = None
    ground_truth_tracks: torch.Tensor | None = None
    ground_truth_visibility: torch.Tensor | None = None
    ground_truth_flow: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None
    _loaded: dict = field(default_factory=dict, init=False, repr=False)

    def _get(self, name: str):
        if name not in self._loaded:
            self._loaded[name] = getattr(self, name)()
        return self._loaded[name]

    def release(self) -> None:
        self._loaded.clear()

    def inputs(self, clip: Clip) -> EditInputs:
        """Load and check every input against the source video: same frame count and size,
        the ground truth and its tracks included."""
        out = EditInputs(self._get("source_poses").frames, self._get("target_poses").frames,
                         self._get("source_masks"), self._get("target_masks"))
        for name in ("source_poses", "target_poses", "source_masks", "target_masks"):
            _check_like_source(clip, name, getattr(out, name), channels=name.endswith("poses"))
        if self.ground_truth is not None:
            self.checked_ground_truth(clip)
        else:
            self._check_tracks(clip)
        return out

    def checked_ground_truth(self, clip: Clip) -> Video:
        """The ground-truth edit, refused (naming the case) unless it matches the source video's
        frame count and size, as every other input must."""
        gt = self._get("ground_truth")
        _check_like_source(clip, "ground_truth", gt.frames, channels=True)
        self._check_tracks(clip)
        return gt

    def _check_tracks(self, clip: Clip) -> None:
        tracks = self.ground_truth_tracks
        t = clip.video.num_frames
        if tracks is not None and tracks.shape[0] != t:
            raise VideoError(f"clip {clip.id!r}: ground_truth_tracks cover {tracks.shape[0]} frames, expected {t} "
                             f"(the source video's frame count)")

    def ground_truth_clip(self, clip: Clip) -> Clip:
        """The clip metrics score an edit against (see ``Clip.scoring_reference``)."""
        if self.ground_truth is None:
            def missing() -> Video:
                raise MissingGroundTruth(f"clip {clip.id!r} is an editing case without a ground-truth edit; "
                                         "metrics that compare with a reference are undefined for it")
            loader, digest = missing, "no-ground-truth"
        else:
            loader, digest = (lambda: self.checked_ground_truth(clip)), self.digest
        return Clip(id=clip.id, prompt=clip.target_prompt or clip.prompt, loader=loader,
                    source_hash=f"edit-gt:{digest}", tracks=self.ground_truth_tracks,
                    visibility=self.ground_truth_visibility, meta={**clip.meta, "reference": "ground_truth"},
                    flow=self.ground_truth_flow)


def _check_like_source(clip: Clip, name: str, value: torch.Tensor, channels: bool) -> None:
    t, _, h, w = clip.video.frames.shape
    want = (t, 3, h, w) if channels else (t, h, w)
    if tuple(value.shape) != want:
        raise VideoError(f"clip {clip.id!r}: {name} has shape {tuple(value.shape)}, expected {want} "
                         f"(the source video is {t} frames of {w}x{h})")


@dataclass
class EditInputs:
    """An editing case's inputs as tensors, checked against the source video."""
    source_poses: torch.Tensor   # (T, 3, H, W) in [0, 1]
    target_poses: torch.Tensor   # (T, 3, H, W) in [0, 1]
    source_masks: torch.Tensor   # (T, H, W) bool
    target_masks: torch.Tensor   # (T, H, W) bool


# ---- masks: one rule for every encoding people save ------------------------------------------

MASK_RULE = ("a pixel is inside when it is not black: any channel nonzero (0/1 and 0/255 alike), palette "
             "PNGs by index != 0, fully transparent pixels outside; a mask holds black and one grey level, "
             "or black and at most 16 flat colours")
MAX_MASK_COLOURS = 16   # labelled regions (palette masks number their objects); more means soft edges


class MaskError(VideoError):
    """A mask image the mask rule cannot read unambiguously; the message names the file."""


def read_mask(path) -> np.ndarray:
    """(H, W) bool from one mask image by ``MASK_RULE``; ambiguous masks (soft or anti-aliased
    edges, JPEG noise, partial transparency) are refused naming the file, never thresholded:
    a guess would turn a dark colour or a 0/1 mask into an empty one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("P", "PA"):   # the index, not the colour: index 0 is the background (DAVIS)
                index = np.asarray(im.getchannel(0))
                alpha = np.asarray(im.convert("RGBA"))[..., 3] if "transparency" in im.info or im.mode == "PA" else None
                values = index[..., None]
            else:
                im = im if im.mode in ("1", "L", "LA", "I", "I;16", "RGB", "RGBA") else im.convert("RGB")
                arr = np.asarray(im)
                arr = arr[..., None] if arr.ndim == 2 else arr
                has_alpha = im.mode in ("LA", "RGBA")
                values, alpha = (arr[..., :-1], arr[..., -1]) if has_alpha else (arr, None)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise MaskError(f"{path}: cannot decode mask image ({exc})") from None
    values = values.astype(np.int64)
    if alpha is not None:
        top = 255
        if ((alpha > 0) & (alpha < top)).any():
            raise MaskError(f"{path}: ambiguous mask: partly transparent pixels (soft alpha edges); "
                            f"mask rule: {MASK_RULE}")
        values = np.where((alpha == 0)[..., None], 0, values)
    inside = values.any(axis=-1)
    colours = np.unique(values[inside], axis=0)
    grey = values.shape[-1] == 1 or bool((colours == colours[:, :1]).all())
    if (grey and len(colours) > 1) or len(colours) > MAX_MASK_COLOURS:
        kind = "grey levels" if grey else "colours"
        raise MaskError(f"{path}: ambiguous mask: {len(colours)} non-black {kind} (soft, anti-aliased or "
                        f"JPEG-compressed edges?); save it as a PNG with two levels. Mask rule: {MASK_RULE}")
    return inside


def read_mask_folder(folder) -> torch.Tensor:
    """(T, H, W) bool from a folder of mask frames (``frame_files`` order), by ``MASK_RULE``. A
    folder whose every frame is empty is refused: an editing case's masks mark its subject."""
    from pathlib import Path

    from motiongrid.bench.video import frame_files

    files = frame_files(Path(folder))
    masks = [read_mask(f) for f in files]
    shapes = sorted({m.shape for m in masks})
    if len(shapes) != 1:
        raise MaskError(f"{folder}: mask frames differ in size {shapes}")
    out = torch.from_numpy(np.stack(masks))
    if not out.any():
        raise MaskError(f"{folder}: every mask is empty; an editing case's masks mark the subject. "
                        f"Mask rule: {MASK_RULE}")
    return out


class TracksError(UserError, ValueError):
    """A tracks file that cannot be used; the message names it."""


def load_tracks(path) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth tracks from an .npz: ``tracks`` (T, N, 2) as (x, y) pixels and optional
    ``visibility`` (T, N) — the file ``motiongrid clips make`` writes beside each clip."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single array (.npy), not an .npz archive of named arrays")
        with data:
            if "tracks" not in data:
                raise TracksError(f"{path}: tracks file has no 'tracks' array (has: {', '.join(data.files)})")
            tracks = torch.tensor(data["tracks"], dtype=torch.float32)
            vis = torch.tensor(data["visibility"], dtype=torch.bool) if "visibility" in data \
                else torch.ones(tracks.shape[:2], dtype=torch.bool)
    except TracksError:
        raise
    except Exception as exc:   # zip, pickle, dtype and decompression errors all mean "corrupt"
        raise TracksError(f"{path}: cannot read tracks file ({type(exc).__name__}: {exc}); expected an .npz "
                          f"with 'tracks' (T, N, 2) and optional 'visibility' (T, N)") from None
    if tracks.ndim != 3 or tracks.shape[-1] != 2 or vis.shape != tracks.shape[:2]:
        raise TracksError(f"{path}: expected tracks (T, N, 2) and visibility (T, N), "
                          f"got {tuple(tracks.shape)} and {tuple(vis.shape)}")
    if not torch.isfinite(tracks[vis]).all():
        raise TracksError(f"{path}: tracks hold NaN or inf at visible points")
    return tracks, vis


def file_digest(path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (or of every file in a frame folder, in name order)."""
    from pathlib import Path

    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()[:16]
