"""The released architectures at their real size with RANDOM weights (shape-only: for memory
and time profiles and shape checks, never for a metric value). Configs are written here as
data, from the released config files and the diffusers configs of the weights they load:

- MotionClone: SD1.5 UNet (``unet/config.json`` of SD1.5 / Realistic Vision V6.0 B1) + the
  AnimateDiff v3 motion adapter (``guoyww/animatediff-motion-adapter-v1-5-3``: 2 motion
  modules per block, 8 heads, 32 groups, length 32, no mid-block module); the released
  ``model_config.yaml`` says the same (``motion_module_mid_block: false``).
- MotionFollower: the image-variation SD UNet (``lambdalabs/sd-image-variations-diffusers``,
  an SD1.x UNet with 768-wide cross-attention) + motion modules as the released
  ``inference_v2.yaml`` (mid-block module on), PoCtr (16/32/96/256 -> 320), ReCtr (full
  T2I-Adapter 320/640/1280/1280).
"""
from __future__ import annotations

SD15_UNET = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768, "attention_head_dim": 8, "norm_num_groups": 32, "norm_eps": 1e-5,
    "act_fn": "silu", "center_input_sample": False, "downsample_padding": 1, "flip_sin_to_cos": True,
    "freq_shift": 0, "mid_block_scale_factor": 1,
}
IMAGE_VARIATION_UNET = dict(SD15_UNET)     # SD1.x UNet conditioned on the 768-d CLIP image embedding
ANIMATEDIFF_V3_ADAPTER = {"block_out_channels": (320, 640, 1280, 1280), "motion_layers_per_block": 2,
                          "motion_mid_block_layers_per_block": 1, "motion_num_attention_heads": 8,
                          "motion_norm_num_groups": 32, "motion_max_seq_length": 32, "use_motion_mid_block": False}
FAMILIES = ("motionclone", "motionfollower")


def build_real_size(family: str, dtype=None, device="cpu", seed: int = 0, base_unet: bool = True) -> dict:
    """{"unet": ...} for MotionClone; {"unet", "base_unet", "pose_controller",
    "reference_controller"} for MotionFollower; random weights drawn from ``seed``, eval mode,
    frozen, motion modules normalising per frame as released. ``base_unet=False``: the
    estimator's UNet is the denoiser itself (same architecture, half the memory)."""
    import torch
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from motiongrid.methods.animatediff_released import set_motion_norm

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    dtype = dtype or torch.float32
    torch.manual_seed(seed)
    if family == "motionclone":
        unet = UNetMotionModel.from_unet2d(UNet2DConditionModel(**SD15_UNET), MotionAdapter(**ANIMATEDIFF_V3_ADAPTER))
        models = {"unet": unet}
    else:
        from motiongrid.methods.motionfollower.controllers import RELEASED_POSE_CHANNELS, PoseController, reference_controller
        from motiongrid.methods.motionfollower.real import build_unet

        unet2d = UNet2DConditionModel(**IMAGE_VARIATION_UNET)
        unet = build_unet(unet2d)
        models = {"unet": unet, "base_unet": build_unet(unet2d) if base_unet else unet,
                  "pose_controller": PoseController(320, RELEASED_POSE_CHANNELS),
                  "reference_controller": reference_controller()}
        del unet2d
    for name, m in models.items():
        m.eval().requires_grad_(False).to(device, dtype)
        if "unet" in name:
            set_motion_norm(m, "released")
    return models
