"""Checkpoints laid out as the released code saves them, written from the released module
definitions (original AnimateDiff ``motion_module.py``, MotionFollower's ``appearance_net.py``
and ``pose_guider.py``), never from motiongrid's key conversion — so a wrong conversion fails
the tests that load them. Random values; shapes from the module definitions."""
from __future__ import annotations

import math

import torch


def released_positional_table(max_len: int, width: int) -> torch.Tensor:
    """The released ``PositionalEncoding.pe`` buffer, (1, max_len, width)."""
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
    pe = torch.zeros(1, max_len, width)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


def motion_module_prefixes(block_out_channels, layers_per_block: int = 2, mid: bool = True) -> list[tuple[str, int]]:
    """(prefix, channels) of every released motion module: one per resnet of each down block
    (layers_per_block), of each up block (layers_per_block + 1), and one in the mid block."""
    out = [(f"down_blocks.{i}.motion_modules.{j}", c) for i, c in enumerate(block_out_channels)
           for j in range(layers_per_block)]
    if mid:
        out.append(("mid_block.motion_modules.0", block_out_channels[-1]))
    out += [(f"up_blocks.{i}.motion_modules.{j}", c) for i, c in enumerate(reversed(block_out_channels))
            for j in range(layers_per_block + 1)]
    return out


def released_motion_module(prefix: str, c: int, max_len: int = 32, blocks: int = 1, g=None) -> dict[str, torch.Tensor]:
    """``VanillaTemporalModule`` (Temporal_Self ×2, temporal position encoding, ff mult 4, GEGLU)."""
    def r(*shape):
        return torch.randn(*shape, generator=g)

    p = f"{prefix}.temporal_transformer"
    state = {f"{p}.norm.weight": r(c), f"{p}.norm.bias": r(c), f"{p}.proj_in.weight": r(c, c),
             f"{p}.proj_in.bias": r(c), f"{p}.proj_out.weight": r(c, c), f"{p}.proj_out.bias": r(c)}
    for n in range(blocks):
        b = f"{p}.transformer_blocks.{n}"
        for i in range(2):
            a = f"{b}.attention_blocks.{i}"
            state.update({f"{a}.to_q.weight": r(c, c), f"{a}.to_k.weight": r(c, c), f"{a}.to_v.weight": r(c, c),
                          f"{a}.to_out.0.weight": r(c, c), f"{a}.to_out.0.bias": r(c),
                          f"{a}.pos_encoder.pe": released_positional_table(max_len, c),
                          f"{b}.norms.{i}.weight": r(c), f"{b}.norms.{i}.bias": r(c)})
        state.update({f"{b}.ff.net.0.proj.weight": r(8 * c, c), f"{b}.ff.net.0.proj.bias": r(8 * c),
                      f"{b}.ff.net.2.weight": r(c, 4 * c), f"{b}.ff.net.2.bias": r(c),
                      f"{b}.ff_norm.weight": r(c), f"{b}.ff_norm.bias": r(c)})
    return state


def released_motion_modules(block_out_channels, layers_per_block: int = 2, mid: bool = True, max_len: int = 32,
                            seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, c in motion_module_prefixes(block_out_channels, layers_per_block, mid):
        state.update(released_motion_module(prefix, c, max_len, g=g))
    return state


def released_appearance_adapter(channels, nums_rb: int = 2, cin: int = 192, seed: int = 0) -> dict[str, torch.Tensor]:
    """MotionFollower's ``Appearance_Adapter(cin=192, channels, nums_rb=2, ksize=1, sk=True,
    use_conv=False)`` under ``appearance_adapter.``: conv_in 3×3; per body block block1 3×3 and
    block2 1×1; in_conv 1×1 only where the width changes; AvgPool downsampling (no weights)."""
    g = torch.Generator().manual_seed(seed)

    def conv(name, c_out, c_in, k):
        return {f"{name}.weight": torch.randn(c_out, c_in, k, k, generator=g), f"{name}.bias": torch.randn(c_out, generator=g)}

    state = conv("appearance_adapter.conv_in", channels[0], cin, 3)
    for i, c in enumerate(channels):
        for j in range(nums_rb):
            idx = i * nums_rb + j
            c_in = channels[i - 1] if i and j == 0 else c
            if c_in != c:
                state.update(conv(f"appearance_adapter.body.{idx}.in_conv", c, c_in, 1))
            state.update(conv(f"appearance_adapter.body.{idx}.block1", c, c, 3))
            state.update(conv(f"appearance_adapter.body.{idx}.block2", c, c, 1))
    return state


def signatures(state: dict[str, torch.Tensor]) -> list[tuple]:
    """Order-free identity of a set of tensors (shape and float64 sum), to check that every
    released tensor arrived somewhere without restating the key mapping."""
    return sorted((tuple(v.shape), round(float(v.double().sum()), 4)) for v in state.values())
