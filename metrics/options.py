"""The built-in metrics' typed options (pydantic only: `motiongrid metrics` lists them and
`motiongrid score` builds its parser from them without importing torch). Each metric class
sets ``Options`` to its class here; its package ``__init__`` declares the same class.

Every built-in metric takes ``BuiltinOptions`` (alignment, batching, the feature cache); the
others are one class per metric, grouped by family file."""
from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator

from motiongrid.bench.params import MetricOptions

Resample = Literal["reference-to-generated", "generated-to-reference"]
Tracker = Literal["auto", "cotracker", "lk", "gt"]
RESAMPLE_CHOICES = get_args(Resample)
TRACKERS = get_args(Tracker)
CAPPED_PSNR = 100.0       # what a frame identical to its reference scores under identical="cap"
FEATURE_DIM = 2048        # InceptionV3 pool3: FID needs at least this many frames per side to be stable


class BuiltinOptions(MetricOptions):
    """Options every built-in metric takes; `run` and `score` pass them to each metric."""
    resample: Resample | None = Field(
        None, description="align differing frame counts/sizes by changing this side (None: an error)")
    batch_size: int = Field(16, ge=1, description="frames per forward pass")
    cache: bool = Field(True, description="read and write reference-side features in the feature cache")
    cache_dir: str | None = Field(None, description="feature cache folder (default $MOTIONGRID_CACHE/features)")

    @field_validator("resample", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return None if v == "none" else v     # the CLI's spelling of "no resampling"


# ---- fidelity.py -------------------------------------------------------------------------------

class PSNROptions(BuiltinOptions):
    identical: Literal["cap", "inf"] = Field(
        "cap", description=f"identical frames: 'cap' scores {CAPPED_PSNR:g} dB, 'inf' keeps +inf")


class SSIMOptions(BuiltinOptions):
    border: Literal["valid", "reflect-padded"] = Field(
        "valid", description="'valid': SSIM map averaged over the valid region (scikit-image); "
                             "'reflect-padded': torchmetrics' whole-frame average")


# ---- fid.py ------------------------------------------------------------------------------------

class FIDOptions(BuiltinOptions):
    min_samples: int = Field(FEATURE_DIM, ge=2, description="frames per side below which a value is flagged "
                                                             "unstable (default: the feature dimension)")


# ---- clip.py -----------------------------------------------------------------------------------

class ClipOptions(BuiltinOptions):
    model: str = Field("ViT-B-32", min_length=1, description="open_clip model name")
    pretrained: str = Field("openai", min_length=1, description="open_clip pretrained tag (or a weights file)")
    weights: str | None = Field(None, description="a weights entry name or a file (overrides the tag's entry)")
    quick_gelu: bool | None = Field(None, description="force QuickGELU on or off (None: as the tag was trained)")


# ---- motion.py ---------------------------------------------------------------------------------

class MotionFidelityOptions(BuiltinOptions):
    tracker: Tracker = Field(
        "auto", description="point tracker: auto (cotracker if its weights are here, else lk), cotracker, lk, "
                            "or gt (the clip's ground-truth tracks on the reference side)")
    grid_size: int = Field(30, ge=2, description="query points per side of the frame-0 grid (lk, cotracker)")
    static_px: float = Field(0.5, ge=0, description="a frame step shorter than this (px) counts as static")
    points: Literal["all", "moving"] = Field(
        "all", description="'moving': score only reference tracks that move (mean step >= static_px)")
    lk_win: int = Field(15, ge=3, description="lk: search window side (px)")
    lk_levels: int = Field(3, ge=0, description="lk: pyramid levels")
    lk_fb_px: float = Field(1.0, gt=0, description="lk: forward-backward error (px) beyond which a point is lost")


# ---- flow.py -----------------------------------------------------------------------------------

class WarpErrorOptions(BuiltinOptions):
    flow: Literal["raft", "farneback", "gt"] = Field(
        "raft", description="where the reference's flow comes from: torchvision RAFT, OpenCV Farneback, "
                            "or the clip's exact flow (shapes clips)")


class DynamicDegreeOptions(BuiltinOptions):
    flow: Literal["raft", "farneback", "gt"] = Field(
        "raft", description="flow of the generated video: torchvision RAFT (VBench) or OpenCV Farneback; "
                            "gt: Farneback for the generated video plus the reference's exact values")


# ---- fvd.py ------------------------------------------------------------------------------------

class FVDOptions(BuiltinOptions):
    clip_length: int | None = Field(None, ge=1, description="frames fed to I3D (the first N); None: all frames")
    min_samples: int = Field(400, ge=2, description="videos per side below which the set value is flagged "
                                                    "unstable (default: the feature dimension)")


class FIDVIDOptions(BuiltinOptions):
    clip_length: int = Field(16, ge=1, description="frames per segment (DisCo's sample_duration)")
    min_samples: int = Field(2048, ge=2, description="videos per side below which the set value is flagged "
                                                     "unstable (default: the feature dimension)")
