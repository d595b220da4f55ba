"""The AnimateDiff backbone's weight files (methods/animatediff.py loads them). Kept apart from
the backbone so the weights manager lists them without importing torch; the methods package
imports this module."""
from __future__ import annotations

from motiongrid.bench import weights

ADAPTER_WEIGHTS = "animatediff-motion-adapter-v3"
BASE_WEIGHTS = "realistic-vision-v6"
VAE_WEIGHTS = "sd-vae-ft-mse"

weights.register(weights.WeightFile(
    name=ADAPTER_WEIGHTS,
    description="AnimateDiff v3 motion module (v3_sd15_mm) in diffusers MotionAdapter format",
    repo_id="guoyww/animatediff-motion-adapter-v1-5-3", kind="hf_repo",
    allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
    required=("config.json", "diffusion_pytorch_model.safetensors"),
    target=lambda: weights.weights_home() / "animatediff-motion-adapter-v1-5-3",
    used_by=("methods.motionclone",),
))
weights.register(weights.WeightFile(
    # MotionClone's realisticVisionV60B1_v51VAE, as the author's diffusers-format repo; its VAE
    # is not included ("noVAE"), the baked-in v51VAE is sd-vae-ft-mse (next entry).
    name=BASE_WEIGHTS,
    description="Realistic Vision v6.0 B1 noVAE, diffusers format (the author's repo). MotionClone's release loads "
                "realisticVisionV60B1_v51VAE.safetensors instead; assumed the same UNet and text encoder, not verified",
    repo_id="SG161222/Realistic_Vision_V6.0_B1_noVAE", kind="hf_repo",
    allow_patterns=("model_index.json", "unet/*", "text_encoder/*", "tokenizer/*", "scheduler/*"),
    required=("unet/config.json", "text_encoder/config.json", "tokenizer"),
    target=lambda: weights.weights_home() / "Realistic_Vision_V6.0_B1_noVAE",
    used_by=("methods.motionclone",),
))
weights.register(weights.WeightFile(
    name=VAE_WEIGHTS,
    description="SD VAE ft-MSE (stands in for the VAE baked into realisticVisionV60B1_v51VAE; assumed identical, "
                "not verified)",
    repo_id="stabilityai/sd-vae-ft-mse", kind="hf_repo",
    allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
    required=("config.json", "diffusion_pytorch_model.safetensors"),
    target=lambda: weights.weights_home() / "sd-vae-ft-mse",
    used_by=("methods.motionclone",),
))
