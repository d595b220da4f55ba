"""Where MotionFollower's controllers enter a diffusers ``UNetMotionModel``, as forward hooks.

- PoCtr: added to ``conv_in``'s output (the released UNet3D adds ``pose_cond_fea`` right after
  ``conv_in``).
- ReCtr: feature i is added to the output of down block i's LAST spatial layer (its last
  attention, or its last resnet in a block without attention) — i.e. before that layer's
  motion module. diffusers' own adapter path (``down_intrablock_additional_residuals`` /
  ``down_block_additional_residuals``) adds after the motion module or to the skip
  connections, which is not the released model.
- Early-stopped estimator: the outputs of ``up_blocks[1]`` and ``up_blocks[2]``, the forward
  stopped right after the last of them (the released estimator returns there too), so the
  features equal a full forward's at those blocks.

Hidden states inside ``UNetMotionModel`` are (B·F, C, H, W); features are passed in that layout.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import nn


def last_spatial_layer(down_block: nn.Module) -> nn.Module:
    attentions = getattr(down_block, "attentions", None)
    return attentions[-1] if attentions is not None and len(attentions) else down_block.resnets[-1]


def _adding(feature: torch.Tensor):
    def hook(module, args, output):
        if isinstance(output, tuple):
            return (output[0] + feature,) + tuple(output[1:])
        if hasattr(output, "sample"):
            output.sample = output.sample + feature
            return output
        return output + feature
    return hook


@contextmanager
def controlled(unet: nn.Module, pose: torch.Tensor | None = None,
               reference: Sequence[torch.Tensor] | None = None):
    """Inside the block, ``unet`` forwards add ``pose`` after conv_in and ``reference[i]``
    after down block i's last spatial layer."""
    handles = []
    try:
        if pose is not None:
            handles.append(unet.conv_in.register_forward_hook(_adding(pose)))
        if reference is not None:
            if len(reference) != len(unet.down_blocks):
                raise ValueError(f"reference controller gave {len(reference)} features for {len(unet.down_blocks)} down blocks")
            for block, feature in zip(unet.down_blocks, reference):
                handles.append(last_spatial_layer(block).register_forward_hook(_adding(feature)))
        yield
    finally:
        for h in handles:
            h.remove()


class _Stop(Exception):
    """Raised by the last capture hook: the rest of the UNet is not needed."""


def up_block_features(unet: nn.Module, sample: torch.Tensor, timestep, context: torch.Tensor,
                      pose: torch.Tensor | None, reference: Sequence[torch.Tensor] | None,
                      indices: Sequence[int] = (1, 2), stop: bool = True) -> list[torch.Tensor]:
    """Outputs of ``unet.up_blocks[i]`` for ``i in indices`` (the estimator's features)."""
    captured: dict[int, torch.Tensor] = {}
    last = max(indices)

    def grab(i):
        def hook(module, args, output):
            captured[i] = output
            if stop and i == last:
                raise _Stop
        return hook

    handles = [unet.up_blocks[i].register_forward_hook(grab(i)) for i in indices]
    try:
        with controlled(unet, pose, reference):
            unet(sample, timestep, encoder_hidden_states=context)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return [captured[i] for i in indices]


@contextmanager
def capturing_up_blocks(unet: nn.Module, indices: Sequence[int], into: dict):
    """Record ``up_blocks[i]`` outputs of every forward inside the block into ``into[i]``
    (lets the reconstruction pass double as the "shared" estimator's R features)."""
    def grab(i):
        def hook(module, args, output):
            into[i] = output.detach()
        return hook
    handles = [unet.up_blocks[i].register_forward_hook(grab(i)) for i in indices]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
