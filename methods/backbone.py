"""The video-diffusion backbone interface that guided samplers (MotionClone) drive.

A backbone bundles a diffusers ``UNetMotionModel`` (temporal attention in ``motion_modules``),
a scheduler, a prompt encoder and the map between pixels and the UNet's input space. The
AnimateDiff backbone (SD1.5 + motion adapter, latent space) and the toy backbone (pixel space)
both implement it, so there is exactly one implementation of each guidance algorithm.

Backbones are looked up by model id: ``load_backbone("toy", device)``; loaders register with
``@register_backbone(prefix)``. Ids that are not registered fall through to the AnimateDiff
loader, which treats them as a local directory or hub id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class Backbone:
    model_id: str
    unet: torch.nn.Module            # diffusers UNetMotionModel (or compatible)
    scheduler: object                # diffusers scheduler (DDIM); configured for sampling
    num_frames: int
    height: int                      # pixel size of generated videos
    width: int
    device: torch.device
    dtype: torch.dtype
    fingerprint: dict                # what identifies the weights (for cell keys / run.json)

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """(B, seq, dim) encoder hidden states; "" is the unconditional prompt."""
        raise NotImplementedError

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, 3, H, W) in [0, 1] at (height, width) -> UNet input (1, C, F, h, w)."""
        raise NotImplementedError

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(1, C, F, h, w) -> (F, 3, H, W) in [0, 1]."""
        raise NotImplementedError

    def latent_shape(self) -> tuple[int, int, int, int]:
        """(C, F, h, w) of the UNet input for one video."""
        raise NotImplementedError


_LOADERS: dict[str, Callable[..., Backbone]] = {}


def register_backbone(prefix: str):
    def decorator(fn):
        _LOADERS[prefix] = fn
        return fn
    return decorator


def load_backbone(model_id: str, device: torch.device, **kwargs) -> Backbone:
    """Load by id: an exact registered id (e.g. "toy") or anything else -> "animatediff"."""
    import importlib
    import pkgutil

    import motiongrid.methods as pkg

    for info in pkgutil.iter_modules(pkg.__path__):  # make sure every family registered
        if not info.name.startswith("_"):
            importlib.import_module(f"motiongrid.methods.{info.name}")
    loader = _LOADERS.get(model_id) or _LOADERS.get("animatediff")
    if loader is None:
        raise KeyError(f"no backbone loader for {model_id!r}; known: {sorted(_LOADERS)}")
    return loader(model_id, device, **kwargs)
