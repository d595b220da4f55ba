"""The AnimateDiff backbone: SD1.5 (Realistic Vision v6) + AnimateDiff v3 motion adapter + the
sd-vae-ft-mse VAE, as MotionClone's released code combines them, loaded offline through the
weights manager (model id ``animatediff``) or from a local diffusers SD1.5 folder or cached hub
id (``animatediff:<folder or hub id>``). See docs/methods.md (MotionClone, "Models")."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from motiongrid.bench import weights
from motiongrid.bench.registry import backbones
from motiongrid.bench.video import from_minus_one_one, to_minus_one_one
from motiongrid.methods.animatediff_released import set_motion_norm
from motiongrid.methods.animatediff_weights import (  # registered without torch
    ADAPTER_WEIGHTS,
    BASE_WEIGHTS,
    RELEASED_BASE_WEIGHTS,
    VAE_WEIGHTS,
)
from motiongrid.methods.backbone import Backbone, BackboneFamily, BackboneSpec

ANIMATEDIFF_FRAMES = 16
RELEASED_MODEL_ID = "animatediff:released"   # MotionClone's realisticVisionV60B1_v51VAE, imported
# Sampler defaults: MotionClone's released t2v settings (100 DDIM steps, ε_c + 7.5·(ε_c − ε_u)).
RELEASED_STEPS = 100
RELEASED_CFG = 7.5
RELEASED_NEGATIVE_PROMPT = ("bad anatomy, extra limbs, ugly, deformed, noisy, blurry, distorted, out of "
                            "focus,  poorly drawn face, poorly drawn hands, missing fingers")
# AnimateDiff's inference scheduler (the motion module was trained with this "linear" schedule).
ANIMATEDIFF_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                             beta_schedule="linear", steps_offset=1, clip_sample=False)

# ---- AnimateDiff backbone ---------------------------------------------------------------


@dataclass
class AnimateDiffBackbone(Backbone):
    vae: torch.nn.Module = None
    text_encoder: torch.nn.Module = None
    tokenizer: object = None
    default_preset: str = "camera"           # the released camera config: 100 steps, 50 guided at t ≥ 700
    default_steps: int = RELEASED_STEPS
    default_cfg: float = RELEASED_CFG
    default_negative_prompt: str = RELEASED_NEGATIVE_PROMPT
    default_motion_norm: str = "released"    # MotionClone's release: the original AnimateDiff module, per frame

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        length = min(self.tokenizer.model_max_length, self.text_encoder.config.max_position_embeddings)
        ids = self.tokenizer(list(prompts), padding="max_length", max_length=length, truncation=True,
                             return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0]

    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        pixels = to_minus_one_one(frames).to(self.device, self.dtype)
        # distribution mean, not a sample: the representation must not depend on VAE noise
        latents = torch.cat([self.vae.encode(chunk).latent_dist.mode() for chunk in pixels.split(8)])
        latents = latents.float() * self.vae.config.scaling_factor
        return latents.permute(1, 0, 2, 3).unsqueeze(0)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        z = (latents[0].permute(1, 0, 2, 3) / self.vae.config.scaling_factor).to(self.dtype)
        pixels = torch.cat([self.vae.decode(chunk).sample for chunk in z.split(8)])
        return from_minus_one_one(pixels.float()).cpu()

    def latent_shape(self) -> tuple[int, int, int, int]:
        s = self.vae_scale
        return (self.unet.config.in_channels, self.num_frames, self.height // s, self.width // s)


def _dir_digest(path: Path) -> str:
    """Cheap identity of a model folder: file names and sizes, plus the JSON configs' text."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        h.update(f"{rel}:{f.stat().st_size}\n".encode())
        if f.suffix == ".json":
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _from_hf_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id: the caller explains
        return None


def _resolve_animatediff(model_id: str) -> dict[str, Path]:
    """Folders for base / adapter / vae, or WeightsMissing with the fix command. Never calls
    diffusers, so a missing file is reported here rather than deep inside from_pretrained.
    ``animatediff`` is the registered combination (diffusers noVAE base + sd-vae-ft-mse),
    ``animatediff:released`` the release's single checkpoint as imported, ``animatediff:<folder
    or hub id>`` a local diffusers SD1.5 folder (or a hub id already in the Hugging Face cache)."""
    if model_id == "animatediff":
        return {"base": weights.require(BASE_WEIGHTS), "adapter": weights.require(ADAPTER_WEIGHTS),
                "vae": weights.require(VAE_WEIGHTS)}
    if model_id == RELEASED_MODEL_ID:   # the release's own checkpoint, converted on import
        base = weights.require(RELEASED_BASE_WEIGHTS)
        return {"base": base, "adapter": weights.require(ADAPTER_WEIGHTS), "vae": base / "vae"}
    where = model_id.split(":", 1)[1]
    base = Path(where).expanduser()
    if not base.is_dir():
        base = _from_hf_cache(where)
        if base is None:
            raise weights.WeightsMissing(
                f"model {model_id!r}: {where!r} is not a local directory and not in the Hugging Face "
                f"cache. Fix: pass a local diffusers SD1.5 folder, or download it on a connected "
                f"machine (`huggingface-cli download {where}`)")
    missing = [p for p in ("unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer")
               if not (base / p).exists()]
    if missing:
        raise weights.WeightsMissing(
            f"model folder {base} lacks {', '.join(missing)}; expected a diffusers SD1.5 layout "
            f"(unet/, vae/, text_encoder/, tokenizer/, optional motion_adapter/)")
    adapter = base / "motion_adapter"
    return {"base": base, "adapter": adapter if adapter.is_dir() else weights.require(ADAPTER_WEIGHTS),
            "vae": base / "vae"}


def load_animatediff(model_id: str, device, num_frames: int = ANIMATEDIFF_FRAMES, **_) -> AnimateDiffBackbone:
    """AnimateDiff: SD1.5 UNet + MotionAdapter -> UNetMotionModel, VAE, CLIP text encoder,
    DDIM with AnimateDiff's schedule. fp16 on CUDA, fp32 elsewhere."""
    device = torch.device(device)
    dtype = _dtype(device)
    paths = _resolve_animatediff(model_id)

    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    base = paths["base"]
    unet2d = UNet2DConditionModel.from_pretrained(base, subfolder="unet", torch_dtype=dtype)
    adapter = MotionAdapter.from_pretrained(paths["adapter"], torch_dtype=dtype)
    unet = UNetMotionModel.from_unet2d(unet2d, adapter).to(device, dtype).eval()
    set_motion_norm(unet, AnimateDiffBackbone.default_motion_norm)
    del unet2d, adapter
    vae = AutoencoderKL.from_pretrained(paths["vae"], torch_dtype=dtype).to(device).eval()
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", torch_dtype=dtype).to(device).eval()
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)  # guidance differentiates w.r.t. the latent only
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    size = unet.config.sample_size * scale
    return AnimateDiffBackbone(
        model_id=model_id, unet=unet, scheduler=DDIMScheduler(**ANIMATEDIFF_SCHEDULER),
        num_frames=num_frames, height=size, width=size, device=device, dtype=dtype,
        fingerprint=_fingerprint(model_id, dtype, num_frames, paths), vae=vae, text_encoder=text_encoder,
        tokenizer=tokenizer)


def _dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.float32


def _fingerprint(model_id: str, dtype: torch.dtype, num_frames: int, paths: dict[str, Path]) -> dict:
    fingerprint = {"model": model_id, "dtype": str(dtype).removeprefix("torch."), "num_frames": num_frames,
                   **{k: _dir_digest(p) for k, p in paths.items()}}
    if model_id == "animatediff":
        fingerprint["sources"] = [weights.get(n).source for n in (BASE_WEIGHTS, ADAPTER_WEIGHTS, VAE_WEIGHTS)]
    elif model_id == RELEASED_MODEL_ID:
        fingerprint["sources"] = [weights.get(n).source for n in (RELEASED_BASE_WEIGHTS, ADAPTER_WEIGHTS)]
    return fingerprint


def _make_scheduler(config: dict):
    from diffusers import DDIMScheduler

    return DDIMScheduler(**config)


def animatediff_spec(model_id: str, device, num_frames: int = ANIMATEDIFF_FRAMES, **_) -> BackboneSpec:
    """The AnimateDiff backbone's identity and sampler defaults, without loading its weights."""
    dtype = _dtype(torch.device(device))
    return BackboneSpec(
        model_id=model_id, fingerprint=_fingerprint(model_id, dtype, num_frames, _resolve_animatediff(model_id)),
        scheduler_config=ANIMATEDIFF_SCHEDULER, make_scheduler=_make_scheduler,
        default_steps=AnimateDiffBackbone.default_steps, default_cfg=AnimateDiffBackbone.default_cfg,
        default_negative_prompt=AnimateDiffBackbone.default_negative_prompt,
        default_preset=AnimateDiffBackbone.default_preset, default_motion_norm=AnimateDiffBackbone.default_motion_norm)




# ---- real size, random weights (motiongrid profile; shape-only) ------------------------------
class ShapeOnlyTokenizer:
    """Token ids of the right shape for a shape-only run (no vocabulary files needed)."""
    model_max_length = 77

    def __call__(self, prompts, max_length: int = 77, **_):
        from types import SimpleNamespace

        return SimpleNamespace(input_ids=torch.zeros(len(prompts), max_length, dtype=torch.long))


def shape_only_backbone(model_id: str, frames: int, height: int, width: int, dtype: torch.dtype,
                        device: torch.device) -> AnimateDiffBackbone:
    """The AnimateDiff backbone at its released size with random weights, on the current default
    device (``meta`` when estimating). Never loads or produces a result (motiongrid profile)."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    from motiongrid.methods.realsize import CLIP_L14_TEXT, VAE_FT_MSE, build_real_size, in_dtype

    unet = build_real_size("motionclone", dtype, torch.get_default_device())["unet"]
    with in_dtype(dtype):   # built in the run's dtype: no fp32 copy ever exists
        vae = AutoencoderKL(**VAE_FT_MSE).eval().requires_grad_(False)
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L14_TEXT)).eval().requires_grad_(False)
    with torch.device("cpu"):   # the schedule holds numbers the sampler reads, never meta
        scheduler = DDIMScheduler(**ANIMATEDIFF_SCHEDULER)
    return AnimateDiffBackbone(
        model_id=model_id, unet=unet, scheduler=scheduler, num_frames=frames,
        height=height, width=width, device=device, dtype=dtype, fingerprint={"shape_only": True},
        vae=vae, text_encoder=text_encoder, tokenizer=ShapeOnlyTokenizer())


@backbones.register("animatediff")
class AnimateDiffFamily(BackboneFamily):
    load = staticmethod(load_animatediff)
    spec = staticmethod(animatediff_spec)
