"""The ``motionclone`` and ``unguided`` parameters: pydantic only (no torch), so the registry
lists them without importing the adapters."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from motiongrid.bench.params import LateParams
from motiongrid.methods.animatediff_released import MOTION_NORMS
from motiongrid.methods.backbone import check_model_id


class SamplerParams(LateParams):
    added_later = ("motion_norm",)
    model: str = Field("animatediff", description="backbone id: 'animatediff', 'animatediff:released' (the release's "
                                                 "own checkpoint), 'toy' or 'animatediff:<folder>'")
    steps: int | None = Field(None, ge=1, description="DDIM steps; None = the backbone's default")
    cfg: float | None = Field(None, ge=0, description="ε_c + cfg·(ε_c − ε_u); None = the backbone's default")
    negative_prompt: str | None = Field(None, description="unconditional prompt; None = the backbone's default")
    preset: Literal["camera", "object"] | None = Field(
        None, description="a released t2v configuration (steps, guided steps, threshold); None = the backbone's "
                          "default (AnimateDiff: camera)")
    schedule: Literal["released", "uniform"] | None = Field(
        None, description="timestep list: 'released' (guided steps packed above threshold) or 'uniform' "
                          "(diffusers' spacing); None = released when a preset applies, else uniform")
    guided_steps: int | None = Field(None, ge=1, description="guided steps; None = the preset's, else guided_fraction·steps")
    threshold: int | None = Field(None, ge=1, le=999, description="released list: guided steps lie at t ≥ threshold; "
                                                                  "None = the preset's, else 700")
    motion_norm: Literal[MOTION_NORMS] | None = Field(
        None, description="motion-module GroupNorm: 'released' per frame (original AnimateDiff), 'diffusers' over all "
                          "frames; None = the backbone's own (AnimateDiff: released; toy: diffusers, as trained)")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return check_model_id(value)

    @model_validator(mode="after")
    def _guided_within_steps(self):
        # caught with the config, not as N failed cells
        if self.steps is not None and self.guided_steps is not None and self.guided_steps > self.steps:
            raise ValueError(f"guided_steps={self.guided_steps} exceeds steps={self.steps}")
        return self


class MotionCloneParams(SamplerParams):
    mask: Literal["primary", "plain"] = "primary"
    k: int = Field(1, ge=1, description="top-k key frames kept per row (primary control)")
    guidance_weight: float | None = Field(None, ge=0, description="λ; None = the default for the model and update")
    update: Literal["released", "eps"] = Field("released", description="how the correction enters the DDIM step")
    guided_fraction: float = Field(0.5, ge=0, le=1, description="first fraction of the DDIM steps guided "
                                                                 "(when no preset or guided_steps says)")
    ramp_steps: int | None = Field(None, ge=1, description="warm-up/cool-down length; None = min(10, guided/5)")
    t_alpha: int = Field(400, ge=0, description="timestep of the reference's single UNet pass")
    blocks: str = Field("up_blocks.1", description="comma-separated module prefixes whose temporal attention is guided")
