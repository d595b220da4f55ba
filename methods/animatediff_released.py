"""The original AnimateDiff motion module (guoyww/AnimateDiff ``motion_module.py``, copied into
MotionClone's and MotionFollower's releases) on diffusers' ``UNetMotionModel``: its checkpoint
keys and its per-frame normalisation (docs/methods.md, "Released motion modules").

Keys. The released module is ``motion_modules.k.temporal_transformer.{norm, proj_in,
transformer_blocks.n.{attention_blocks.i, norms.i, ff, ff_norm}, proj_out}``; diffusers drops
``temporal_transformer``, renames ``attention_blocks.i`` / ``norms.i`` / ``ff_norm`` to
``attn{i+1}`` / ``norm{i+1}`` / ``norm3``. Each released attention block keeps its own
sinusoidal table as a persistent buffer (``attention_blocks.i.pos_encoder.pe``, (1, max_len, C));
diffusers has one per transformer block (``transformer_blocks.n.pos_embed.pe``), computed from
the same formula and added at the same place (after the norm, before q/k/v). diffusers' own
conversion script drops the released tables; here they are first compared with diffusers'
table at every position both hold (a mismatch is an error, never a silent drop).

Normalisation. The released ``TemporalTransformer3DModel`` applies its GroupNorm to
``(b f) c h w``: every frame normalised on its own. diffusers' ``AnimateDiffTransformer3D``
normalises ``b c f h w``: statistics over all frames together. ``set_motion_norm(unet,
"released")`` makes every motion module normalise per frame (same parameters and keys);
``"diffusers"`` restores diffusers' form. The spatial ResNets are per frame in both
(the releases use ``use_inflated_groupnorm: true``; diffusers runs them on ``(b f) c h w``).

torch is imported inside the functions, so the parameter modules can import the names here.
"""
from __future__ import annotations

import re

from motiongrid.bench.errors import UserError

MOTION_NORMS = ("released", "diffusers")

_RULES = (
    (re.compile(r"\.temporal_transformer\."), "."),
    (re.compile(r"\.attention_blocks\.(\d)\."), lambda m: f".attn{int(m.group(1)) + 1}."),
    (re.compile(r"\.norms\.(\d)\."), lambda m: f".norm{int(m.group(1)) + 1}."),
    (re.compile(r"\.ff_norm\."), ".norm3."),
)
_RELEASED_PE = re.compile(r"^(.*\.transformer_blocks\.\d+)\.attn\d\.pos_encoder\.pe$")


class KeyConversionError(UserError, ValueError):
    """A released checkpoint whose keys do not convert and load strictly; names the leftovers."""


def convert_motion_key(key: str) -> str:
    """One released motion-module key -> its diffusers name (other keys unchanged). A released
    positional table maps to its transformer block's ``pos_embed.pe``."""
    if ".motion_modules." not in key:
        return key
    for pattern, repl in _RULES:
        key = pattern.sub(repl, key)
    m = _RELEASED_PE.match(key)
    return f"{m.group(1)}.pos_embed.pe" if m else key


def is_positional_table(key: str) -> bool:
    return key.endswith(".pos_encoder.pe")


def convert_motion_state(state: dict, own: dict, where: str) -> dict:
    """Released motion-module tensors -> diffusers names, without the positional tables, after
    checking each table against diffusers' (``own``: the target model's state dict)."""
    import torch

    out = {}
    for key, value in state.items():
        name = convert_motion_key(key)
        if not is_positional_table(key):
            out[name] = value
            continue
        if name not in own:
            raise KeyConversionError(f"{where}: positional table {key!r} has no counterpart {name!r} in the model")
        ours = own[name]
        n = min(value.shape[1], ours.shape[1])
        if value.shape[-1] != ours.shape[-1]:
            raise KeyConversionError(f"{where}: {key!r} has width {value.shape[-1]}, the model {ours.shape[-1]}")
        # a half-precision file holds the table rounded to fp16
        atol = 2e-3 if value.dtype in (torch.float16, torch.bfloat16) else 1e-5
        if not torch.allclose(value[:, :n].float(), ours[:, :n].float().cpu(), atol=atol, rtol=0):
            diff = float((value[:, :n].float() - ours[:, :n].float().cpu()).abs().max())
            raise KeyConversionError(f"{where}: {key!r} differs from diffusers' sinusoidal table by {diff:.3g}; "
                                     f"the file's temporal position encoding is not the standard one")
    return out


def motion_transformers(unet) -> list:
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    return [m for m in unet.modules() if isinstance(m, AnimateDiffTransformer3D)]


def _frame_group_norm_class():
    import torch
    from torch import nn

    class FrameGroupNorm(nn.GroupNorm):
        """GroupNorm of a (b, c, f, h, w) tensor computed per frame, as ``(b f) c h w``."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.ndim != 5:
                return super().forward(x)
            b, c, f, h, w = x.shape
            y = super().forward(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
            return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)

    return FrameGroupNorm


_FRAME_NORM = None


def set_motion_norm(unet, mode: str) -> None:
    """Every motion module of ``unet`` normalises per frame ("released") or over all frames
    ("diffusers"). Swaps the norm's class only: parameters, keys and devices stay."""
    global _FRAME_NORM
    from torch import nn

    if mode not in MOTION_NORMS:
        raise ValueError(f"motion_norm must be one of {MOTION_NORMS}, got {mode!r}")
    if _FRAME_NORM is None:
        _FRAME_NORM = _frame_group_norm_class()
    for module in motion_transformers(unet):
        module.norm.__class__ = _FRAME_NORM if mode == "released" else nn.GroupNorm


def motion_norm_of(unet) -> str | None:
    """The form in force ("released" / "diffusers"), None for a UNet without motion modules."""
    mods = motion_transformers(unet)
    if not mods:
        return None
    return "released" if type(mods[0].norm) is not _base_group_norm() else "diffusers"


def _base_group_norm():
    from torch import nn

    return nn.GroupNorm
