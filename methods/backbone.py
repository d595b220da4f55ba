"""The video-diffusion backbone interface that guided samplers (MotionClone) drive, and the
registry of backbones by model id.

A backbone bundles a diffusers ``UNetMotionModel`` (temporal attention in ``motion_modules``),
a scheduler, a prompt encoder and the map between pixels and the UNet's input space. The
AnimateDiff backbone (SD1.5 + motion adapter, latent space; methods/animatediff.py) and the toy
backbone (pixel space; methods/toy/model.py) both implement it, so there is exactly one
implementation of each guidance algorithm.

Model ids: ``FAMILY`` or ``FAMILY:ARGUMENT`` (e.g. ``toy``, ``animatediff``,
``animatediff:/models/sd15``); the family names a registered loader. Built-in loaders are
named by module here and imported only when used; plugins add theirs with
``@register_backbone(family)``. An unknown family is an error that lists the known ones.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: validating a model id (configs, listings) imports no torch
    import torch

from motiongrid.bench.errors import UserError


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
    # motion-module GroupNorm the weights were trained with (methods/animatediff_released.py)
    default_motion_norm: str = "diffusers"

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


@dataclass
class BackboneSpec:
    """A backbone without its weights: what cell keys need (the weights' identity, the
    scheduler and the sampler defaults), from files' digests and configs. Method adapters read
    it like a loaded :class:`Backbone` when they resolve their settings."""
    model_id: str
    fingerprint: dict
    scheduler_config: dict
    make_scheduler: Callable[[dict], object]      # builds the scheduler (imports diffusers; no weights)
    default_steps: int
    default_cfg: float
    default_negative_prompt: str
    default_preset: str | None = None
    default_motion_norm: str = "diffusers"

    @functools.cached_property
    def scheduler(self):
        return self.make_scheduler(self.scheduler_config)


class UnknownBackbone(UserError, ValueError):
    """A model id whose family no loader serves; the message lists the known ones."""


# family -> module that registers its loader (imported on first use)
_BUILTIN = {
    "animatediff": "motiongrid.methods.animatediff",
    "toy": "motiongrid.methods.toy.model",
}
_LOADERS: dict[str, Callable[..., Backbone]] = {}
_SPECS: dict[str, Callable[..., BackboneSpec]] = {}


def register_backbone(family: str):
    def decorator(fn):
        _LOADERS[family] = fn
        return fn
    return decorator


def register_backbone_spec(family: str):
    """Register ``fn(model_id, device, **kwargs) -> BackboneSpec`` for ``family``: its cell keys
    then need no loaded model (families without one are loaded to be fingerprinted)."""
    def decorator(fn):
        _SPECS[family] = fn
        return fn
    return decorator


def backbone_families() -> list[str]:
    return sorted(set(_BUILTIN) | set(_LOADERS))


def check_model_id(model_id: str) -> str:
    """``model_id`` if its family is known, else UnknownBackbone (used to validate configs)."""
    family = model_id.split(":", 1)[0]
    if family not in _BUILTIN and family not in _LOADERS:
        raise UnknownBackbone(f"unknown model {model_id!r}; known: {', '.join(backbone_families())} "
                              f"(or animatediff:<local diffusers SD1.5 folder>)")
    if family == "toy" and model_id != "toy":
        raise UnknownBackbone(f"model {model_id!r}: the toy family takes no argument; use 'toy'")
    return model_id


def backbone_spec(model_id: str, device: torch.device, **kwargs) -> BackboneSpec | Backbone:
    """The backbone's identity and defaults without loading its weights (see ``BackboneSpec``)."""
    family = check_model_id(model_id).split(":", 1)[0]
    if family not in _SPECS and family in _BUILTIN:
        importlib.import_module(_BUILTIN[family])
    if family not in _SPECS:
        return load_backbone(model_id, device, **kwargs)
    return _SPECS[family](model_id, device, **kwargs)


def load_backbone(model_id: str, device: torch.device, **kwargs) -> Backbone:
    family = check_model_id(model_id).split(":", 1)[0]
    if family not in _LOADERS:
        importlib.import_module(_BUILTIN[family])
    return _LOADERS[family](model_id, device, **kwargs)


def shape_only_backbone(model_id: str, frames: int, height: int, width: int, dtype: torch.dtype,
                        device: torch.device) -> tuple[Backbone, str]:
    """The family's architecture at real size with random weights (``motiongrid profile``) and a
    prompt its encoder takes; NotImplementedError for a family that has none."""
    family = check_model_id(model_id).split(":", 1)[0]
    module = importlib.import_module(_BUILTIN[family]) if family in _BUILTIN else None
    build = getattr(module, "shape_only_backbone", None)
    if build is None:
        raise NotImplementedError(f"backbone family {family!r} has no real-size architecture to profile")
    return (build(model_id, frames, height, width, dtype, device),
            getattr(module, "SHAPE_ONLY_PROMPT", "a person walking on a beach"))
