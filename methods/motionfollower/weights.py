"""MotionFollower's weight files, registered with the weights manager (torch-free; imported
when weights are listed or looked up: ``registry.weights``' built-in modules)."""
from __future__ import annotations

from pathlib import Path

from motiongrid.bench import weights
from motiongrid.methods.motionfollower.params import IMAGE_VARIATION_WEIGHTS, RELEASED_FILES

# The released checkpoints live in a Google Drive folder: no URL a weights manager can fetch,
# and no published sizes or hashes.
DRIVE_FOLDER = "the MotionFollower Google Drive folder (id 1yWRNmd4-vbJfV1Ji_zhpNSwNpuJVat7o, linked from its README)"


def _home(*parts: str):
    return lambda: weights.weights_home().joinpath("motionfollower", *parts)


for _name, (_file, _what) in RELEASED_FILES.items():
    weights.register(weights.WeightFile(name=_name, description=_what, target=_home(_file),
                                        import_only=DRIVE_FOLDER, used_by=("methods.motionfollower",)))

weights.register(weights.WeightFile(
    name=IMAGE_VARIATION_WEIGHTS,
    description="SD image-variations UNet + CLIP ViT-L/14 image encoder (MotionFollower's base)",
    repo_id="lambdalabs/sd-image-variations-diffusers", kind="hf_repo",
    allow_patterns=("unet/*", "image_encoder/*", "feature_extractor/*", "scheduler/*", "model_index.json"),
    required=("unet/config.json", "image_encoder/config.json"),
    target=lambda: weights.weights_home() / "sd-image-variations-diffusers",
    used_by=("methods.motionfollower",),
))


def toy_edit_checkpoint_file() -> Path:
    return Path(__file__).resolve().parent / "checkpoint" / "toy-motionfollower.safetensors"


weights.register(weights.WeightFile(
    name="toy-motionfollower",
    description="toy MotionFollower: the toy UNet fine-tuned with toy PoCtr/ReCtr (ships with motiongrid)",
    target=toy_edit_checkpoint_file,
    url=toy_edit_checkpoint_file().as_uri(),   # ships inside the package; no download
    used_by=("methods.motionfollower",),
))
