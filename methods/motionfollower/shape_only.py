"""The released MotionFollower at real size with random weights, for ``motiongrid profile``
(shape-only: its outputs are never scored or stored)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from motiongrid.methods.motionfollower.params import RELEASED_CFG
from motiongrid.methods.motionfollower.real import (
    MOTION_ADAPTER_CONFIG,
    RELEASED_STEPS,
    SCHEDULER_CONFIG,
    ReleasedEditBackbone,
)
from motiongrid.methods.realsize import CLIP_L14_VISION, VAE_FT_MSE, build_real_size, in_dtype


@dataclass
class ShapeOnlyEditBackbone(ReleasedEditBackbone):
    """The released model's architecture with random weights (motiongrid profile): the CLIP
    image encoder sees zeros of its input size instead of preprocessed frames (no pixels exist
    on the meta device); everything else runs as released."""

    def context(self, frames: torch.Tensor, prompt: str) -> torch.Tensor:
        size = self.image_encoder.config.image_size
        pixels = torch.zeros(frames.shape[0], 3, size, size, device=self.device, dtype=self.dtype)
        with torch.no_grad():
            return self.image_encoder(pixels).image_embeds[:, None]


def shape_only_motionfollower_backbone(frames: int, height: int, width: int, dtype: torch.dtype,
                                       device: torch.device) -> ShapeOnlyEditBackbone:
    """The released MotionFollower at real size with random weights, on ``device`` (``meta``
    when estimating): denoiser + estimator UNets (image-variation SD UNet + motion modules),
    PoCtr, ReCtr, sd-vae-ft-mse, CLIP ViT-L/14 image encoder. Shape-only: never a result."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    models = build_real_size("motionfollower", dtype, device)
    with torch.device("cpu"):   # the schedule holds numbers the sampler reads, never meta
        scheduler = DDIMScheduler(**SCHEDULER_CONFIG)
    with in_dtype(dtype):
        vae = AutoencoderKL(**VAE_FT_MSE).eval().requires_grad_(False)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_L14_VISION)).eval().requires_grad_(False)
    return ShapeOnlyEditBackbone(
        model_id="motionfollower", unet=models["unet"], pose_controller=models["pose_controller"],
        reference_controller=models["reference_controller"], base_unet=models["base_unet"],
        scheduler=scheduler, num_frames=frames, height=height, width=width,
        device=device, dtype=dtype, default_steps=RELEASED_STEPS, default_cfg=RELEASED_CFG["edit"],
        default_camera_cfg=RELEASED_CFG["camera"], default_motion_norm="released",
        max_frames=MOTION_ADAPTER_CONFIG["motion_max_seq_length"], fingerprint={"shape_only": True},
        vae=vae, image_encoder=encoder, image_processor=None)
