"""The video-diffusion backbone interface that guided samplers (MotionClone) drive, and the
registry of backbones by model id.

A backbone bundles a diffusers ``UNetMotionModel`` (temporal attention in ``motion_modules``),
a scheduler, a prompt encoder and the map between pixels and the UNet's input space. The
AnimateDiff backbone (SD1.5 + motion adapter, latent space; methods/animatediff.py) and the toy
backbone (pixel space; methods/toy/model.py) both implement it, so there is exactly one
implementation of each guidance algorithm.

Model ids: ``FAMILY`` or ``FAMILY:ARGUMENT`` (e.g. ``toy``, ``animatediff``,
``animatediff:/models/sd15``); the family is an entry of ``registry.backbones`` (a
:class:`BackboneFamily`), declared in ``motiongrid.methods`` and imported only when used;
plugins declare or ``@backbones.register(family)`` theirs. An unknown family is an error that
lists the known ones (with a did-you-mean).
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # annotations only: validating a model id (configs, listings) imports no torch
    import torch

from motiongrid.bench.errors import UserError
from motiongrid.bench.registry import backbones, unknown_message


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


class BackboneFamily:
    """A family of backbones, an entry of ``registry.backbones`` (declared in
    ``motiongrid.methods`` with its ``task`` and ``description``, which the registry sets here).

    ``load(model_id, device, **kwargs)`` loads one; ``spec(model_id, device, **kwargs)`` (None
    when the family has none) gives its identity and sampler defaults without weights;
    ``fingerprint(model_id)`` (None: from ``spec`` or the loaded model) its weights' identity.
    Written as staticmethods; a family module imports torch only where it loads."""
    name: ClassVar[str]
    task: ClassVar[str]                  # "t2v-motion" (MotionClone) or "edit" (MotionFollower)
    description: ClassVar[str]
    spec: ClassVar[Callable[..., BackboneSpec] | None] = None
    fingerprint: ClassVar[Callable[[str], dict] | None] = None

    @staticmethod
    def load(model_id: str, device, **kwargs) -> Backbone:
        raise NotImplementedError


def backbone_families(task: str = "t2v-motion") -> list[str]:
    """The declared or registered families that ``task``'s methods drive (no import)."""
    return [name for name in backbones.names() if backbones.info(name)["task"] == task]


def check_model_id(model_id: str, task: str = "t2v-motion") -> str:
    """``model_id`` if its family is known for ``task``, else UnknownBackbone (validates configs)."""
    family = model_id.split(":", 1)[0]
    known = backbone_families(task)
    if family not in known:
        hint = " (or animatediff:<local diffusers SD1.5 folder>)" if task == "t2v-motion" else ""
        raise UnknownBackbone(unknown_message("model", model_id, known) + hint)
    if family == "toy" and model_id != "toy":
        raise UnknownBackbone(f"model {model_id!r}: the toy family takes no argument; use 'toy'")
    return model_id


def family_of(model_id: str, task: str = "t2v-motion") -> type[BackboneFamily]:
    return backbones.get(check_model_id(model_id, task).split(":", 1)[0])


def backbone_spec(model_id: str, device: torch.device, **kwargs) -> BackboneSpec | Backbone:
    """The backbone's identity and defaults without loading its weights (see ``BackboneSpec``);
    a family without a spec is loaded."""
    family = family_of(model_id)
    if family.spec is None:
        return family.load(model_id, device, **kwargs)
    return family.spec(model_id, device, **kwargs)


def load_backbone(model_id: str, device: torch.device, **kwargs) -> Backbone:
    return family_of(model_id).load(model_id, device, **kwargs)


def shape_only_backbone(model_id: str, frames: int, height: int, width: int, dtype: torch.dtype,
                        device: torch.device) -> tuple[Backbone, str]:
    """The family's architecture at real size with random weights (``motiongrid profile``) and a
    prompt its encoder takes; NotImplementedError for a family that has none. Found in the
    family's module (``shape_only_backbone``, optional ``SHAPE_ONLY_PROMPT``)."""
    family = family_of(model_id)
    module = importlib.import_module(family.__module__)
    build = getattr(module, "shape_only_backbone", None)
    if build is None:
        raise NotImplementedError(f"backbone family {family.name!r} has no real-size architecture to profile")
    return (build(model_id, frames, height, width, dtype, device),
            getattr(module, "SHAPE_ONLY_PROMPT", "a person walking on a beach"))
