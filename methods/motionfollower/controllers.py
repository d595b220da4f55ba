"""MotionFollower's two controllers, as the released model builds them, and the explicit
conversion of released checkpoint keys to the names used here (docs/methods.md).

- Pose controller (PoCtr): conv_in 3x3 -> SiLU -> per stage [3x3 conv, SiLU, 3x3 conv (stride 2
  on the real model), SiLU] -> zero-initialised 3x3 conv_out to the UNet's first block width.
  Its output is ADDED to ``conv_in``'s output. Released: block_out_channels (16, 32, 96, 256),
  3 stride-2 stages from 512 px to the 64-px latent grid, 320 out. The released file stores
  the same attribute names (its InflatedConv3d is an nn.Conv2d applied per frame), so its keys
  map one to one.
- Reference controller (ReCtr): the T2I-Adapter "full" adapter — PixelUnshuffle(8) of the source
  frame in [-1, 1], conv_in, then 2 residual blocks per level at 320/640/1280/1280 channels
  (3x3 conv, ReLU, 1x1 conv, identity skip; AvgPool + 1x1 in_conv where a level downsamples).
  That is exactly diffusers' ``T2IAdapter(adapter_type="full_adapter")``, used here as is. One
  feature per down block, added after that block's last spatial layer (``methods/
  motionfollower/hooks.py``). Released keys (``appearance_adapter.body.{2i+j}...``) are renamed
  to diffusers' (``adapter.body.{i}.resnets.{j}...``) by ``convert_reference_controller``.

The toy versions keep the architecture and shrink it to the toy UNet's grid: no stride-2
stages and no unshuffle (the toy has no VAE), widths matching the toy UNet's down blocks.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from motiongrid.methods.animatediff_released import KeyConversionError

RELEASED_POSE_CHANNELS = (16, 32, 96, 256)
RELEASED_REFERENCE_CHANNELS = (320, 640, 1280, 1280)


class PoseController(nn.Module):
    """PoCtr: pose images (N, 3, H, W) in [0, 1] -> (N, out_channels, H/s, W/s), s = 8 on the
    real model (3 stride-2 stages) and 1 on the toy (``downsample=False``)."""

    def __init__(self, out_channels: int, block_out_channels: Sequence[int] = RELEASED_POSE_CHANNELS,
                 in_channels: int = 3, downsample: bool = True):
        super().__init__()
        chans = list(block_out_channels)
        self.conv_in = nn.Conv2d(in_channels, chans[0], 3, padding=1)
        blocks = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            blocks.append(nn.Conv2d(c_in, c_in, 3, padding=1))
            blocks.append(nn.Conv2d(c_in, c_out, 3, padding=1, stride=2 if downsample else 1))
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = nn.Conv2d(chans[-1], out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)   # starts as "no pose": the base UNet unchanged
        nn.init.zeros_(self.conv_out.bias)
        self.config = {"out_channels": out_channels, "block_out_channels": chans, "in_channels": in_channels,
                       "downsample": downsample}

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.conv_in(poses))
        for block in self.blocks:
            x = F.silu(block(x))
        return self.conv_out(x)


def reference_controller(channels: Sequence[int] = RELEASED_REFERENCE_CHANNELS, num_res_blocks: int = 2,
                         downscale_factor: int = 8) -> nn.Module:
    """ReCtr: diffusers' full T2I-Adapter; ``(N, 3, H, W)`` in [-1, 1] -> one feature per level."""
    from diffusers import T2IAdapter

    return T2IAdapter(in_channels=3, channels=list(channels), num_res_blocks=num_res_blocks,
                      downscale_factor=downscale_factor, adapter_type="full_adapter")


# ---- released checkpoint keys -> ours ---------------------------------------------------------

def convert_reference_controller(released: dict[str, torch.Tensor], num_res_blocks: int = 2,
                                 prefix: str = "appearance_adapter.") -> dict[str, torch.Tensor]:
    """``appearance_adapter.conv_in.*`` -> ``adapter.conv_in.*``;
    ``appearance_adapter.body.{i*R+j}.{block1,block2}.*`` -> ``adapter.body.{i}.resnets.{j}.*``;
    ``appearance_adapter.body.{i*R}.in_conv.*`` -> ``adapter.body.{i}.in_conv.*`` (R = blocks per level).
    The released down path is AvgPool (no weights), as in diffusers."""
    out = {}
    pattern = re.compile(r"body\.(\d+)\.(block1|block2|in_conv)\.(weight|bias)$")
    for key, value in released.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if rest.startswith("conv_in."):
            out["adapter." + rest] = value
            continue
        m = pattern.fullmatch(rest)
        if m is None:
            raise KeyConversionError(f"reference controller: unexpected released key {key!r}")
        flat, part, kind = int(m.group(1)), m.group(2), m.group(3)
        level, block = divmod(flat, num_res_blocks)
        if part == "in_conv":
            if block != 0:
                raise KeyConversionError(f"reference controller: in_conv on block {block} of level {level} ({key!r})")
            out[f"adapter.body.{level}.in_conv.{kind}"] = value
        else:
            out[f"adapter.body.{level}.resnets.{block}.{part}.{kind}"] = value
    return out


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists missing and leftover keys
    (the released code loads non-strictly, which hides a wrong conversion)."""
    own = set(module.state_dict())
    missing, leftover = sorted(own - set(state)), sorted(set(state) - own)
    if missing or leftover:
        raise KeyConversionError(f"{what}: {len(missing)} missing keys {missing[:6]}{' ...' if len(missing) > 6 else ''}, "
                                 f"{len(leftover)} leftover keys {leftover[:6]}{' ...' if len(leftover) > 6 else ''}")
    shapes = [k for k, v in module.state_dict().items() if tuple(v.shape) != tuple(state[k].shape)]
    if shapes:
        k = shapes[0]
        raise KeyConversionError(f"{what}: {len(shapes)} tensors of the wrong shape, e.g. {k}: "
                                 f"file {tuple(state[k].shape)}, model {tuple(module.state_dict()[k].shape)}")
    module.load_state_dict(state, strict=True)
