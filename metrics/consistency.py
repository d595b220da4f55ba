"""``subject_consistency``: VBench's subject consistency from DINO ViT-B/16 features.

Model: ``dino_vitb16`` through torch.hub from a local copy of facebookresearch/dino (weights
entry ``dino-hub-repo``); its hubconf loads ``dino_vitbase16_pretrain.pth`` with
torch.hub.load_state_dict_from_url, which finds it in torch.hub's checkpoints folder (entry
``dino-vitb16``). Nothing is fetched at scoring time.

Frames (VBench's ``dino_transform(224)``): uint8, short side resized to 224 (bilinear, no
antialias, no crop), /255, ImageNet mean/std. Features L2-normalised. For frames i >= 1:
s_i = (max(0, cos(f_i, f_{i-1})) + max(0, cos(f_i, f_0))) / 2; the value is the mean of s_i.
``to_previous`` and ``to_first`` report the two halves (each mean of its clamped cosine).
Needs no reference; a still video scores 1.
"""
from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F

from motiongrid.bench import weights
from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video, to_uint8
from motiongrid.metrics._common import BaseMetric
from motiongrid.metrics.motion import _hub_dependencies, load_local_hub

DINO_WEIGHTS = ("dino-hub-repo", "dino-vitb16")
DINO_ENTRYPOINT = "dino_vitb16"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

_DINO: dict[str, torch.nn.Module] = {}


def load_dino(device: torch.device) -> torch.nn.Module:
    return load_local_hub(_DINO, *DINO_WEIGHTS, DINO_ENTRYPOINT, device)


def vbench_subject_consistency(features: torch.Tensor) -> dict[str, float]:
    """(T, D) features -> VBench's per-video value and its two halves."""
    f = F.normalize(features.double(), dim=-1)
    prev = (f[1:] * f[:-1]).sum(-1).clamp(min=0)
    first = (f[1:] * f[:1]).sum(-1).clamp(min=0)
    return {"value": float(((prev + first) / 2).mean()), "to_previous": float(prev.mean()),
            "to_first": float(first.mean())}


@metrics.register("subject_consistency")
class SubjectConsistency(BaseMetric):
    description = ("VBench subject consistency: DINO ViT-B/16 feature cosine of each frame to the previous and to "
                   "the first frame (clamped at 0, averaged)")
    higher_is_better = True
    needs = frozenset()

    def available(self) -> str | None:
        for name in DINO_WEIGHTS:
            reason = weights.available(name)
            if reason:
                return f"subject_consistency: {reason}"
        missing = [d for d in _hub_dependencies(weights.locate("dino-hub-repo"))
                   if importlib.util.find_spec(d) is None]
        if missing:
            return f"subject_consistency: DINO's hub repo needs {', '.join(missing)}. Fix: `pip install {' '.join(missing)}`"
        return None

    def load(self) -> None:
        self.model = load_dino(self.device)

    def preprocessing(self) -> dict:
        return {"model": f"torch.hub {DINO_ENTRYPOINT} (local facebookresearch/dino)", "quantise": "uint8",
                "resize": "short side 224, bilinear, antialias off, no crop", "normalise": "ImageNet mean/std",
                "rule": "mean over t>=1 of (max(0,cos(t,t-1)) + max(0,cos(t,0)))/2 (VBench)"}

    @torch.no_grad()
    def features(self, frames: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.functional import normalize, resize

        self.ensure_prepared()
        out = []
        for sl in self.batches(frames.shape[0]):
            x = resize(to_uint8(frames[sl]), 224, antialias=False).float() / 255.0
            x = normalize(x, IMAGENET_MEAN, IMAGENET_STD)
            out.append(self.model(x.to(self.device)).float().cpu())
        return torch.cat(out)

    def score(self, generated: Video, clip: Clip) -> dict[str, float]:
        if generated.frames.shape[0] < 2:
            raise ValueError(f"subject_consistency: needs at least 2 frames, got {generated.frames.shape[0]}")
        return vbench_subject_consistency(self.features(generated.frames))
