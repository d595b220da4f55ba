"""The ``motionfollower`` method adapter: parameters, backbone loading per model id, and one
editing cell (reconstruction + editing branch, ``sampler.py``) per (clip, seed).

Cell notes (stored with the cell): guidance calls made, frames dropped from an energy term
because a mask region was empty (never NaN), and the reconstruction branch's PSNR against the
source (how well the model re-generates what it edits).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from motiongrid.bench.api import Method
from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import methods
from motiongrid.bench.video import Video
from motiongrid.methods.animatediff_released import set_motion_norm
from motiongrid.methods.motionfollower.model import EditBackbone
from motiongrid.methods.motionfollower.params import (
    ESTIMATOR_SEED,
    MotionFollowerParams,
    fingerprint,
    native_motion_norm,
    settings_fingerprint,
)
from motiongrid.methods.motionfollower.sampler import EditInputsOnDevice, EditSampler, EditSchedule


def load_edit_backbone(model: str, device: torch.device) -> EditBackbone:
    if model == "toy-motionfollower":
        from motiongrid.methods.motionfollower.model import load_toy_edit_backbone

        return load_toy_edit_backbone(device=device)
    from motiongrid.methods.motionfollower.real import load_motionfollower_backbone

    return load_motionfollower_backbone(device=device)


def _fit(x: torch.Tensor, size: tuple[int, int], masks: bool = False) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    if masks:
        return F.interpolate(x[:, None].float(), size=size, mode="nearest")[:, 0] > 0.5
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def reconstruction_psnr(reconstruction: torch.Tensor, source: torch.Tensor) -> float:
    """The ``psnr`` metric's convention (10·log10(1/MSE) per frame in float64, 100 dB below
    MSE 1e-10, mean over frames), for the cell's notes; methods do not import metrics
    (tests/test_layout.py), and a test checks the two agree."""
    mse = (reconstruction.double() - source.double()).square().flatten(1).mean(1)
    return float(torch.where(mse < 1e-10, torch.full_like(mse, 100.0), 10 * torch.log10(1.0 / mse)).mean())


@methods.register("motionfollower")
class MotionFollower(Method):
    task = "edit"
    Params = MotionFollowerParams
    description = "MotionFollower: pose-controlled editing with score guidance (released sampler on diffusers)"

    def __init__(self) -> None:
        super().__init__()
        self.backbones: dict[str, EditBackbone] = {}

    def use_backbone(self, model: str, backbone: EditBackbone) -> None:
        """Use an already loaded backbone for ``model`` (evaluation scripts, tests)."""
        self.backbones[model] = backbone

    def backbone(self, model: str) -> EditBackbone:
        if model not in self.backbones:
            self.backbones[model] = load_edit_backbone(model, self.device)
        return self.backbones[model]

    def fingerprint(self, params: MotionFollowerParams) -> dict:
        """From the weight files alone (no model is loaded to key a cell)."""
        base = self.backbones[params.model].fingerprint if params.model in self.backbones else fingerprint(params.model)
        return {**base, **settings_fingerprint(params)}

    @staticmethod
    def cfg(bb: EditBackbone, params: MotionFollowerParams) -> float:
        """The parameter, else the backbone's default for the mode (released: 7.0, camera 3.5)."""
        if params.cfg is not None:
            return params.cfg
        return bb.default_camera_cfg if params.camera and bb.default_camera_cfg is not None else bb.default_cfg

    def load(self, params: MotionFollowerParams) -> None:
        self.backbone(params.model)

    def generate(self, clip: Clip, params: MotionFollowerParams, seed: int) -> Video:
        if clip.edit is None:
            raise ValueError(f"clip {clip.id!r} is not an editing case")
        bb = self.backbone(params.model)
        norm = params.motion_norm or native_motion_norm(params.model)
        for unet in (bb.unet, bb.base_unet):
            set_motion_norm(unet, norm)
        seed_estimator = ESTIMATOR_SEED if params.estimator_seed is None else params.estimator_seed
        inputs = clip.edit.inputs(clip)
        n = params.frames or clip.video.num_frames
        if n > clip.video.num_frames:
            raise ValueError(f"frames={n} but clip {clip.id!r} has {clip.video.num_frames}")
        if n > bb.max_frames:
            raise ValueError(f"{params.model} edits at most {bb.max_frames} frames in one pass; clip {clip.id!r} "
                             f"gives {n} (set frames = {bb.max_frames} or fewer)")
        if n != bb.num_frames:
            bb = dataclasses.replace(bb, num_frames=n)       # same modules, another length
        size = (bb.height, bb.width)
        source = _fit(clip.frames[:n], size)
        dev = dict(device=bb.device, dtype=bb.dtype)
        with torch.no_grad():
            inp = EditInputsOnDevice(
                context=bb.context(source, clip.prompt),
                source_pose=bb.pose_features(_fit(inputs.source_poses[:n], size)),
                target_pose=bb.pose_features(_fit(inputs.target_poses[:n], size)),
                reference=(reference := bb.reference_features(source)),
                # the released estimator has its own (untrained) ReCtr; only guidance reads it
                estimator_reference=bb.reference_features(source, estimator=True, seed=seed_estimator)
                if params.estimator == "released" and params.energy_scale != 0 else reference,
                source_masks=_fit(inputs.source_masks[:n], size, masks=True).to(bb.device),
                target_masks=_fit(inputs.target_masks[:n], size, masks=True).to(bb.device))
        steps = params.steps or bb.default_steps
        schedule = EditSchedule.released(steps, params.guided_steps)
        sampler = EditSampler(bb, steps, self.cfg(bb, params), params.energy_scale, schedule, params.estimator,
                              params.mask_roles, params.camera, params.memory or "released")
        generator = torch.Generator().manual_seed(seed)      # one CPU generator: x_T, then SDE noise
        x_T = torch.randn(bb.latent_shape(), generator=generator)[None].to(**dev)
        result = sampler.run(x_T, inp, generator)
        out = _fit(result.video, tuple(clip.frames.shape[-2:]))   # back to the clip's size for scoring
        self.last_reconstruction = result.reconstruction
        self.cell_notes = {"guidance_calls": result.info["guidance_calls"], "memory": sampler.memory,
                           "cfg": sampler.cfg, "motion_norm": norm, "estimator_seed": seed_estimator,
                           "dropped_frame_terms": result.info["dropped_frame_terms"],
                           "reconstruction_psnr": round(reconstruction_psnr(result.reconstruction, source.cpu()), 3)}
        return Video(out, clip.video.fps)
