"""The released MotionFollower model on diffusers: the image-variation SD UNet inflated with
motion modules (``UNetMotionModel.from_unet2d`` + a v2-style ``MotionAdapter``), the released
denoising UNet / ReCtr / PoCtr / motion-module weights through explicit key conversion and
strict loading, CLIP ViT-L/14 image conditioning per frame, sd-vae-ft-mse for decoding.

Released checkpoint keys (Moore-AnimateAnyone's UNet3DConditionModel) -> diffusers':
- spatial layers keep their names (resnets, attentions.*.transformer_blocks.*.attn1/attn2/ff,
  norms, conv_in/out, time_embedding, down/upsamplers);
- motion modules: the original AnimateDiff names (``methods/animatediff_released.py``); their
  positional tables are checked against diffusers' and then left to diffusers (as its own
  AnimateDiff conversion script does);
- ``appearance_adapter.*`` (ReCtr) -> the T2I-Adapter (``controllers.convert_reference_controller``).
Every conversion ends in a strict load that lists missing and leftover keys.

Nothing here has run with the real weights (they cannot be downloaded on the build machine);
tests build tiny released-format checkpoints and load them through this path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from motiongrid.bench import weights
from motiongrid.methods.animatediff_released import convert_motion_key, convert_motion_state, set_motion_norm
from motiongrid.methods.motionfollower.controllers import (
    RELEASED_POSE_CHANNELS,
    RELEASED_REFERENCE_CHANNELS,
    KeyConversionError,
    PoseController,
    convert_reference_controller,
    load_strict,
    reference_controller,
)
from motiongrid.methods.motionfollower.model import EditBackbone

# configs/inference/inference_v2.yaml of the release
SCHEDULER_CONFIG = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear",
                    "clip_sample": False, "steps_offset": 1, "prediction_type": "v_prediction",
                    "rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
MOTION_ADAPTER_CONFIG = {"motion_layers_per_block": 2, "motion_mid_block_layers_per_block": 1,
                         "motion_num_attention_heads": 8, "motion_norm_num_groups": 32,
                         "motion_max_seq_length": 32, "use_motion_mid_block": True}
VAE_SCALE = 0.18215
RELEASED_STEPS, RELEASED_SIZE, RELEASED_FRAMES = 50, 512, 24

def convert_unet_key(key: str) -> str:
    """One released UNet3D key -> its diffusers UNetMotionModel name (module doc)."""
    return convert_motion_key(key)


def convert_denoising_unet(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                           where: str = "denoising_unet.pth") -> tuple[dict, dict]:
    """Released ``denoising_unet.pth`` -> (UNet state, ReCtr state); motion-module tensors, if
    the file holds any, converted as ``motion_module.pth``'s (positional tables checked)."""
    unet = {k: v for k, v in state.items() if not k.startswith("appearance_adapter.") and ".motion_modules." not in k}
    motion = convert_motion_state({k: v for k, v in state.items() if ".motion_modules." in k}, own, where)
    return {**unet, **motion}, convert_reference_controller(state)


def _torch_load(path) -> dict[str, torch.Tensor]:
    # mmap: the real-size files are read page by page, not copied whole into memory
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def build_unet(unet2d, adapter_config: dict | None = None) -> nn.Module:
    from diffusers import MotionAdapter, UNetMotionModel

    cfg = {**MOTION_ADAPTER_CONFIG, **(adapter_config or {})}
    adapter = MotionAdapter(block_out_channels=tuple(unet2d.config.block_out_channels), **cfg)
    return UNetMotionModel.from_unet2d(unet2d, adapter)


def load_released_unets(base_dir, denoising_path, motion_path, dtype=torch.float32, adapter_config: dict | None = None):
    """(denoising UNet, base UNet for the estimator, ReCtr) from the released files."""
    from diffusers import UNet2DConditionModel

    unet2d = UNet2DConditionModel.from_pretrained(base_dir, subfolder="unet")
    base = build_unet(unet2d, adapter_config)
    own = base.state_dict()
    motion = convert_motion_state(_torch_load(motion_path), own, str(motion_path))
    # the base: image-variation spatial weights + the released motion modules (all of them)
    unknown = sorted(k for k in motion if k not in own)
    if unknown:
        raise KeyConversionError(f"{motion_path}: {len(unknown)} motion-module keys do not convert: {unknown[:6]}")
    # diffusers' positional tables are computed, not loaded (checked equal above)
    missing_mm = sorted(k for k in own if ".motion_modules." in k and k not in motion and not k.endswith(".pos_embed.pe"))
    if missing_mm:
        raise KeyConversionError(f"{motion_path}: {len(missing_mm)} motion-module keys missing: {missing_mm[:6]}")
    base.load_state_dict({**own, **motion}, strict=True)
    unet_state, ref_state = convert_denoising_unet(_torch_load(denoising_path), own, str(denoising_path))
    denoiser = build_unet(unet2d, adapter_config)
    channels = tuple(unet2d.config.block_out_channels)
    del unet2d                                # real size: free the 2D UNet before the next copy
    tables = {k: v for k, v in own.items() if k.endswith(".pos_embed.pe")}
    # denoising_unet.pth may leave the motion modules to motion_module.pth (as released)
    load_strict(denoiser, {**tables, **motion, **unet_state}, f"{denoising_path} [UNet]")
    # one ReCtr level per down block, at that block's width (320/640/1280/1280 on SD1.x)
    ref = reference_controller(channels)
    load_strict(ref, ref_state, f"{denoising_path} [ReCtr]")
    return denoiser.to(dtype), base.to(dtype), ref.to(dtype)


@dataclass
class ReleasedEditBackbone(EditBackbone):
    vae: nn.Module = field(default=None)
    image_encoder: nn.Module = field(default=None)
    image_processor: object = None

    def context(self, frames: torch.Tensor, prompt: str) -> torch.Tensor:
        """CLIP image embedding of each source frame (F, 1, 768); the prompt is unused."""
        pixels = self.image_processor(images=[f.permute(1, 2, 0).numpy() for f in frames.float().cpu()],
                                      return_tensors="pt", do_rescale=False).pixel_values
        with torch.no_grad():
            emb = self.image_encoder(pixels.to(self.device, self.dtype)).image_embeds
        return emb[:, None]

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        frames = latents[0].permute(1, 0, 2, 3) / VAE_SCALE
        with torch.no_grad():
            out = torch.cat([self.vae.decode(frames[i:i + 1]).sample for i in range(frames.shape[0])])
        return ((out.float() + 1) / 2).clamp(0, 1).cpu()

    def latent_shape(self) -> tuple[int, int, int, int]:
        return (4, self.num_frames, self.height // 8, self.width // 8)

    def reference_config(self) -> dict:
        return {"channels": RELEASED_REFERENCE_CHANNELS, "num_res_blocks": 2, "downscale_factor": 8}


def load_motionfollower_backbone(model_id: str = "motionfollower", device: torch.device | str = "cpu",
                                 dtype: torch.dtype | None = None, frames: int = RELEASED_FRAMES) -> ReleasedEditBackbone:
    """The released model from the weights manager's files (fp16 on CUDA, as released)."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from motiongrid.methods.motionfollower.params import (
        IMAGE_VARIATION_WEIGHTS,
        RELEASED_CFG,
        VAE_WEIGHTS,
        released_fingerprint,
    )

    fingerprint = released_fingerprint()      # raises, naming every missing file and its fix
    device = torch.device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    base_dir = weights.require(IMAGE_VARIATION_WEIGHTS)
    denoiser, base, ref = load_released_unets(base_dir, weights.require("motionfollower-denoising-unet"),
                                              weights.require("motionfollower-motion-module"), dtype)
    pose = PoseController(320, RELEASED_POSE_CHANNELS)
    load_strict(pose, _torch_load(weights.require("motionfollower-poctr")), "poctr.pth")
    encoder = CLIPVisionModelWithProjection.from_pretrained(base_dir, subfolder="image_encoder")
    processor = CLIPImageProcessor.from_pretrained(base_dir, subfolder="feature_extractor") \
        if (base_dir / "feature_extractor").is_dir() else CLIPImageProcessor()
    vae = AutoencoderKL.from_pretrained(weights.require(VAE_WEIGHTS))
    for m in (denoiser, base, ref, pose, encoder, vae):
        m.eval().requires_grad_(False).to(device, dtype)
    for m in (denoiser, base):
        set_motion_norm(m, "released")
    return ReleasedEditBackbone(
        model_id=model_id, unet=denoiser, pose_controller=pose, reference_controller=ref, base_unet=base,
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG), num_frames=frames, height=RELEASED_SIZE, width=RELEASED_SIZE,
        device=device, dtype=dtype, default_steps=RELEASED_STEPS,
        default_cfg=RELEASED_CFG["edit"], default_camera_cfg=RELEASED_CFG["camera"], default_motion_norm="released",
        max_frames=MOTION_ADAPTER_CONFIG["motion_max_seq_length"],
        fingerprint=fingerprint,
        vae=vae, image_encoder=encoder, image_processor=processor)
