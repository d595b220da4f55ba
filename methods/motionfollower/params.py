"""``motionfollower``'s parameters and the identity of its weights, without importing torch
(listings, config checks and cell keys need both; loading the model does not happen here)."""
from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, field_validator

from motiongrid.bench import weights
from motiongrid.bench.params import LateParams
from motiongrid.methods.animatediff_released import MOTION_NORMS

MODELS = ("motionfollower", "toy-motionfollower")
RELEASED_ENERGY_SCALE = 4.0       # × 1000 inside, as released (energy_scale=4.0 -> 4e3)
# The released README runs cases 1-5 with --cfg 7.0 and the camera cases 6-7 with the script's
# default 3.5 (no --cfg).
RELEASED_CFG = {"edit": 7.0, "camera": 3.5}
ESTIMATOR_SEED = 0                # default seed of the estimator's random ReCtr (see estimator_seed)
MEMORY_MODES = ("released", "lean", "cache")
IMAGE_VARIATION_WEIGHTS = "sd-image-variations"
VAE_WEIGHTS = "sd-vae-ft-mse"
RELEASED_FILES = {
    "motionfollower-denoising-unet": ("denoising_unet.pth", "MotionFollower denoising UNet + reference controller (ReCtr)"),
    "motionfollower-poctr": ("poctr.pth", "MotionFollower pose controller (PoCtr)"),
    "motionfollower-motion-module": ("motion_module.pth", "MotionFollower motion modules (AnimateDiff-v2 style)"),
}


class MotionFollowerParams(LateParams):
    added_later = ("motion_norm", "estimator_seed", "memory")
    model: str = Field("motionfollower", description="'motionfollower' (released weights) or 'toy-motionfollower'")
    energy_scale: float = Field(RELEASED_ENERGY_SCALE, ge=0,
                                description="score-guidance scale (released 4.0; 0 = no guidance, no replays)")
    guided_steps: list[int] | None = Field(None, description="step indices to guide; None = the released set")
    cfg: float | None = Field(None, ge=0, description="v_u + cfg·(v_c − v_u); None = the backbone's default for the "
                                                    "mode (released: 7.0, camera mode 3.5, as the released README runs them)")
    steps: int | None = Field(None, ge=2, description="DDIM steps; None = the backbone's default (released 50)")
    frames: int | None = Field(None, ge=1, description="edit the first N frames; None = all (the model's length)")
    estimator: Literal["released", "shared"] = Field(
        "released", description="guidance features from the base UNet as released, or the denoiser's weights")
    mask_roles: Literal["released", "dragon"] = Field(
        "released", description="content/contrast mask roles: as released, or DragonDiffusion's")
    camera: bool = Field(False, description="camera mode: up-block self-attention also reads the reconstruction's "
                                            "K/V outside the subject from released step 20 (released flag)")

    motion_norm: Literal[MOTION_NORMS] | None = Field(
        None, description="motion-module GroupNorm: 'released' per frame (original AnimateDiff), 'diffusers' over all "
                          "frames; None = the model's own (motionfollower: released, toy: diffusers, as trained)")
    estimator_seed: int | None = Field(
        None, ge=0, description="seed of the released estimator's untrained ReCtr (random in the release); "
                                "None = 0. A grid over it shows the spread it causes")
    memory: Literal[MEMORY_MODES] | None = Field(
        None, description="'released' (default): camera K/V parked on the CPU, reconstruction features recomputed "
                          "per guidance call, estimator parameters not frozen, as released; 'lean': the same but "
                          "frozen; 'cache': K/V on the device, features kept per step, frozen (fastest)")

    @field_validator("model")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown MotionFollower model {value!r}; known: {list(MODELS)}")
        return value


def released_fingerprint() -> dict:
    """Which files the released model would load; WeightsMissing naming every missing one
    (with its fix) when any is absent — so those cells fail before any model code runs."""
    names = [*RELEASED_FILES, IMAGE_VARIATION_WEIGHTS, VAE_WEIGHTS]
    missing = [weights.available(n) for n in names if weights.available(n)]
    if missing:
        raise weights.WeightsMissing("MotionFollower needs weights that are not here:\n  " + "\n  ".join(missing))
    return {"model": "motionfollower", **{n: str(weights.locate(n)) for n in names}}


def toy_fingerprint(path=None) -> dict:
    """The toy checkpoint's sha256 (cached by size and mtime) and the base toy model's."""
    from pathlib import Path

    from motiongrid.bench.fingerprint import file_sha256

    file = Path(path) if path is not None else Path(weights.require("toy-motionfollower"))
    config = json.loads(file.with_suffix(".json").read_text())
    return {"model": "toy-motionfollower", "sha256": file_sha256(file), "base_sha256": config["base_sha256"]}


def native_motion_norm(model: str) -> str:
    """The norm a model was trained with: the toy is diffusers' UNetMotionModel as trained here."""
    return "diffusers" if model == "toy-motionfollower" else "released"


def fingerprint(model: str) -> dict:
    return toy_fingerprint() if model == "toy-motionfollower" else released_fingerprint()


def settings_fingerprint(params: MotionFollowerParams) -> dict:
    """What the parameters resolve to beyond the params themselves, for cell keys. Only what
    differs from the keys made before these settings existed (toy cells keep their keys):
    the released model records its resolved cfg, norm and estimator seed."""
    out = {}
    norm = params.motion_norm or native_motion_norm(params.model)
    if norm != "diffusers":
        out["motion_norm"] = norm
    if params.model != "toy-motionfollower":
        out["estimator_seed"] = ESTIMATOR_SEED if params.estimator_seed is None else params.estimator_seed
        out["cfg"] = params.cfg if params.cfg is not None else RELEASED_CFG["camera" if params.camera else "edit"]
    return out
