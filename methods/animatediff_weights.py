"""The AnimateDiff backbone's weight files (methods/animatediff.py loads them). Kept apart from
the backbone so the weights manager lists them without importing torch; the methods package
imports this module."""
from __future__ import annotations

import json
from pathlib import Path

from motiongrid.bench import weights
from motiongrid.bench.hashing import sha256_file

ADAPTER_WEIGHTS = "animatediff-motion-adapter-v3"
BASE_WEIGHTS = "realistic-vision-v6"
VAE_WEIGHTS = "sd-vae-ft-mse"
RELEASED_BASE_WEIGHTS = "realistic-vision-v6-released"
SD15_CONFIGS = "sd15-configs"
RELEASED_BASE_FILE = "realisticVisionV60B1_v51VAE.safetensors"
SOURCE_RECORD = "source.json"   # written by the conversion: which file the folder came from

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
    description="base of model `animatediff`: Realistic Vision v6.0 B1 noVAE, diffusers format (the author's repo). "
                "MotionClone's release loads realisticVisionV60B1_v51VAE.safetensors instead (model "
                "`animatediff:released`); assumed the same UNet and text encoder, not verified",
    repo_id="SG161222/Realistic_Vision_V6.0_B1_noVAE", kind="hf_repo",
    allow_patterns=("model_index.json", "unet/*", "text_encoder/*", "tokenizer/*", "scheduler/*"),
    required=("unet/config.json", "text_encoder/config.json", "tokenizer"),
    target=lambda: weights.weights_home() / "Realistic_Vision_V6.0_B1_noVAE",
    used_by=("methods.motionclone",),
    note="base of model `animatediff` (with sd-vae-ft-mse); NOT the file MotionClone's release loads, assumed to hold "
         "the same weights (not verified). Model `animatediff:released` runs the release's own "
         "realisticVisionV60B1_v51VAE.safetensors (entry realistic-vision-v6-released)",
))
weights.register(weights.WeightFile(
    name=VAE_WEIGHTS,
    description="VAE of model `animatediff`: SD VAE ft-MSE (stands in for the VAE baked into "
                "realisticVisionV60B1_v51VAE; assumed identical, not verified)",
    repo_id="stabilityai/sd-vae-ft-mse", kind="hf_repo",
    allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
    required=("config.json", "diffusion_pytorch_model.safetensors"),
    target=lambda: weights.weights_home() / "sd-vae-ft-mse",
    used_by=("methods.motionclone",),
))
weights.register(weights.WeightFile(
    # What MotionClone's release reads besides the single checkpoint: the SD1.5 folder's configs
    # and tokenizer (its UNet/VAE/text-encoder weights are all replaced by the checkpoint's).
    name=SD15_CONFIGS,
    description="SD1.5 configs and CLIP tokenizer (no weights), which the released checkpoint is converted with",
    repo_id="stable-diffusion-v1-5/stable-diffusion-v1-5", kind="hf_repo",
    allow_patterns=("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                    "tokenizer/*", "scheduler/scheduler_config.json"),
    required=("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer"),
    target=lambda: weights.weights_home() / "stable-diffusion-v1-5-configs",
    used_by=("methods.motionclone",),
))
weights.register(weights.WeightFile(
    name=RELEASED_BASE_WEIGHTS,
    description="base of model `animatediff:released`: MotionClone's own realisticVisionV60B1_v51VAE.safetensors "
                "(UNet, VAE and text encoder in one original-format file), converted on import by diffusers' "
                "single-file loading with the sd15-configs",
    import_only="civitai.com/models/4201?modelVersionId=130072 (the link in MotionClone's README; "
                "needs a civitai login)",
    convert_from=RELEASED_BASE_FILE,
    converter="motiongrid.methods.animatediff_weights:convert_released_checkpoint",
    kind="dir",
    required=("unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer", SOURCE_RECORD),
    target=lambda: weights.weights_home() / "realisticVisionV60B1_v51VAE",
    used_by=("methods.motionclone",),
    note="base of model `animatediff:released`: the release's own file; put realisticVisionV60B1_v51VAE.safetensors "
         "(and the sd15-configs) in DIR and `motiongrid weights import DIR` converts it",
))


def _file_dtype(path: Path) -> str:
    """The floating-point dtype most tensors of a safetensors file hold, read from its header
    (conversion keeps the file's precision instead of doubling it to fp32 on disk)."""
    header = weights.safetensors_header(path) or {}   # import checked it parses
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name != "__metadata__" and info["dtype"] in ("F16", "BF16", "F32"):
            counts[info["dtype"]] = counts.get(info["dtype"], 0) + 1
    return {"F16": "float16", "BF16": "bfloat16"}.get(max(counts, key=counts.get, default="F32"), "float32")


def convert_released_checkpoint(src: Path, dst: Path) -> None:
    """The released single file -> a diffusers SD1.5 folder at ``dst``, as the release combines
    them: the checkpoint's UNet, VAE and text encoder over the SD1.5 folder's configs and
    tokenizer. diffusers' own single-file loader does the key conversion (offline, configs from
    the local sd15-configs entry); ``source.json`` records the file's name, size and sha256."""
    import diffusers
    import torch
    from diffusers import StableDiffusionPipeline

    configs = weights.require(SD15_CONFIGS)
    dtype = _file_dtype(src)
    pipe = StableDiffusionPipeline.from_single_file(
        str(src), config=str(configs), local_files_only=True, torch_dtype=getattr(torch, dtype),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(dst)
    (dst / SOURCE_RECORD).write_text(json.dumps({
        "file": src.name, "bytes": src.stat().st_size, "sha256": sha256_file(src), "dtype": dtype,
        "configs": weights.get(SD15_CONFIGS).source, "converted_by": f"diffusers {diffusers.__version__} from_single_file",
    }, indent=1) + "\n")
