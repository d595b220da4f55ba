"""The models MotionFollower's sampler drives, bundled as an ``EditBackbone``: the denoising
UNet (a diffusers ``UNetMotionModel``), the pose and reference controllers, the estimator
(a second UNet for guidance features), the per-frame appearance context, the scheduler and the
map between pixels and the UNet's input space.

Two backbones implement it with the same sampler code (``sampler.py``):
- ``toy-motionfollower``: the toy world's UNet fine-tuned with toy controllers (pixel space,
  24 px, 8 frames; trained by ``motiongrid toy train-edit``). Its appearance context is the toy
  prompt encoder's embedding of the clip's prompt — a global appearance descriptor with no
  position, standing in for the CLIP image embedding the real model uses (the toy has no
  image encoder).
- ``motionfollower``: the released model on diffusers (``real.py``; weights through the
  weights manager).

Estimator choice (``estimator`` parameter): "released" builds it as the released code does —
the BASE UNet (not the fine-tuned denoiser) with the trained PoCtr and a reference controller
that is freshly initialised (the released estimator never loads ReCtr weights; here its init is
seeded, so runs repeat) — and "shared" uses the denoiser's own weights and ReCtr.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from motiongrid.bench.video import to_minus_one_one
from motiongrid.methods.backbone import Backbone
from motiongrid.methods.motionfollower.controllers import PoseController, load_strict, reference_controller
from motiongrid.methods.motionfollower.params import ESTIMATOR_SEED
from motiongrid.methods.toy.model import ToyBackbone


@dataclass
class EditBackbone(Backbone):
    """A ``Backbone`` (denoising UNet as ``unet``, scheduler, size, pixels <-> UNet input) plus
    the controllers and the estimator's base UNet."""
    pose_controller: nn.Module = None
    reference_controller: nn.Module = None  # T2IAdapter; called on frames in [-1, 1]
    base_unet: nn.Module = None             # the estimator's UNet when estimator = "released"
    default_steps: int = 50
    default_cfg: float = 3.5
    default_camera_cfg: float | None = None     # camera mode's default cfg; None = default_cfg
    max_frames: int = 32              # frames edited in one pass (the motion modules' positional encoding)
    _estimator_references: dict = field(default_factory=dict, repr=False)   # seed -> ReCtr

    def context(self, frames: torch.Tensor, prompt: str) -> torch.Tensor:
        """(F, seq, dim) appearance context, one per source frame; zeros are unconditional."""
        raise NotImplementedError

    def pose_features(self, poses: torch.Tensor) -> torch.Tensor:
        """(F, 3, H, W) pose images in [0, 1] -> (F, C0, h, w) added after conv_in."""
        return self.pose_controller(poses.to(self.device, self.dtype))

    def reference_features(self, frames: torch.Tensor, estimator: bool = False,
                           seed: int = ESTIMATOR_SEED) -> list[torch.Tensor]:
        """(F, 3, H, W) source frames in [0, 1] -> one (F, Ci, hi, wi) feature per down block;
        ``estimator``: the released estimator's untrained ReCtr, initialised from ``seed``."""
        net = self.estimator_reference(seed) if estimator else self.reference_controller
        return list(net(to_minus_one_one(frames).to(self.device, self.dtype)))

    def estimator_reference(self, seed: int = ESTIMATOR_SEED) -> nn.Module:
        if seed not in self._estimator_references:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = reference_controller(**self.reference_config())
            net = net.to(self.device) if self.dtype == torch.float32 else net.to(self.device, self.dtype)
            self._estimator_references[seed] = net.eval().requires_grad_(False)
        return self._estimator_references[seed]

    def reference_config(self) -> dict:
        raise NotImplementedError


# ---- the toy backbone ------------------------------------------------------------------------

TOY_POSE_CHANNELS = (8, 8, 16, 32)


def toy_controllers(unet_config: dict) -> tuple[PoseController, nn.Module]:
    """Controllers shaped for the toy UNet: PoCtr out = first block width, no stride; ReCtr
    widths = the down blocks' widths, no unshuffle, one AvgPool per level after the first."""
    widths = tuple(unet_config["block_out_channels"])
    pose = PoseController(widths[0], TOY_POSE_CHANNELS, downsample=False)
    return pose, reference_controller(widths, num_res_blocks=2, downscale_factor=1)


@dataclass
class ToyEditBackbone(EditBackbone, ToyBackbone):
    """The toy backbone (pixels <-> UNet input as ``ToyBackbone``) with toy controllers."""

    def context(self, frames: torch.Tensor, prompt: str) -> torch.Tensor:
        return self.encode_prompt([prompt]).expand(frames.shape[0], -1, -1)

    def reference_config(self) -> dict:
        return {"channels": tuple(self.config["unet"]["block_out_channels"]), "num_res_blocks": 2, "downscale_factor": 1}


def split_state(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        part, rest = key.split(".", 1)
        parts.setdefault(part, {})[rest] = value
    return parts


def load_toy_edit_backbone(model_id: str = "toy-motionfollower", device: torch.device | str = "cpu",
                           path: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32) -> ToyEditBackbone:
    """The shipped toy MotionFollower (or the checkpoint at ``path``): fine-tuned UNet and
    controllers from ``toy-motionfollower.safetensors``; base UNet and prompt encoder from the
    shipped toy model it was fine-tuned from (its sha256 is checked)."""
    from safetensors.torch import load_file

    from motiongrid.bench import weights
    from motiongrid.bench.fingerprint import file_sha256
    from motiongrid.methods.motionfollower.params import toy_fingerprint
    from motiongrid.methods.toy.model import build_model, load_toy, make_ddim_scheduler

    device = torch.device(device)
    file = Path(path) if path is not None else Path(weights.require("toy-motionfollower"))
    config_path = file.with_suffix(".json")
    if not config_path.is_file():
        raise FileNotFoundError(f"toy MotionFollower checkpoint {file}: its config {config_path.name} is missing beside it")
    config = json.loads(config_path.read_text())
    base_unet, encoder, base_config, base_path = load_toy(None, device)
    if file_sha256(base_path) != config["base_sha256"]:   # cached by size and mtime
        raise ValueError(f"{file}: fine-tuned from a toy model with sha256 {config['base_sha256'][:12]}…, "
                         f"but the toy model here ({base_path}) differs; retrain with `motiongrid toy train-edit`")
    parts = split_state(load_file(str(file)))
    unet, _ = build_model(base_config["unet"], base_config["prompt_encoder"])
    pose, ref = toy_controllers(base_config["unet"])
    for module, name in ((unet, "unet"), (pose, "pose_controller"), (ref, "reference_controller")):
        load_strict(module, parts.get(name, {}), f"{file} [{name}]")
        module.eval().requires_grad_(False).to(device)
        if dtype != torch.float32:   # (diffusers warns on any .to(dtype), even a no-op)
            module.to(dtype)
    clip = base_config["clip_options"]
    return ToyEditBackbone(
        model_id=model_id, unet=unet, pose_controller=pose, reference_controller=ref,
        base_unet=base_unet if dtype == torch.float32 else base_unet.to(dtype), scheduler=make_ddim_scheduler(base_config["schedule"]),
        num_frames=int(clip["frames"]), height=int(clip["size"]), width=int(clip["size"]),
        device=device, dtype=dtype,
        fingerprint=toy_fingerprint(file),
        default_steps=int(config.get("sampling_steps", 25)), default_cfg=float(config.get("cfg", 1.0)),
        max_frames=int(base_config["unet"].get("motion_max_seq_length", 16)),
        prompt_encoder=encoder, config=base_config)
