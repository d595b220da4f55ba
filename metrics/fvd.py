"""Fréchet distances over whole videos: ``fvd`` (StyleGAN-V's I3D) and ``fid_vid`` (DisCo's 3D
ResNet-50). One video is one sample; the Fréchet distance is FID's (``metrics/fid.py``).

``fvd`` — the StyleGAN-V convention (its TorchScript I3D, ``i3d_torchscript.pt``, used by
common_metrics_on_video_quality and many papers): each video quantised to uint8 (as saved),
its frames (the first ``clip_length``, or all) resized so the SHORT side is 224 (bilinear,
align_corners False, long side rounded up), centre-cropped to 224x224, mapped to [-1, 1], fed as
(1, 3, T, 224, 224) with ``rescale=False, resize=False, return_features=True``: 400-d logits.
The other conventions (VideoGPT/TATS's ``i3d_pretrained_400.pt``, which the ``cd-fvd``
package implements, and content-debiased VideoMAE features) give different numbers; the
variant is recorded, so compare refuses to mix them.

``fid_vid`` — FID-VID as DisCo's metric code computes it (the human-animation papers
MotionFollower compares with report DisCo's number): Hara et al.'s 3D ResNet-50 (Kinetics-400,
shortcut B, ``resnet-50-kinetics.pth``), frames resized to 112x112 (bicubic, aspect not kept,
as ffmpeg's scale filter), 0..255 minus the per-channel mean (114.7748, 107.7354, 99.4750),
non-overlapping segments of ``clip_length`` (16) frames, 2048-d pooled features averaged over a
video's segments.

Per cell vs per set: ``score`` compares one generated video with its reference, one sample
each: ``value`` = squared distance of their features (what the reference code's
``frechet_distance`` returns for one sample), always flagged ``unstable``. ``score_set`` is the
number to compare methods with: all generated videos of a label vs their references (each
reference once), flagged unstable below ``min_samples`` videos per side.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from motiongrid.bench import weights
from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video, hash_frames, to_minus_one_one, to_uint8
from motiongrid.metrics._common import BaseMetric, align, reference_settings
from motiongrid.metrics.fid import fid_from_feature_sets
from motiongrid.metrics.options import FIDVIDOptions, FVDOptions

I3D_WEIGHT = "stylegan-v-i3d"
R3D_WEIGHT = "resnet-50-kinetics"
I3D_MIN_FRAMES = 10   # common_metrics_on_video_quality's floor for its I3D
KINETICS_MEAN = (114.7748, 107.7354, 99.4750)


class _VideoFrechet(BaseMetric):
    """Set-level Fréchet distance on per-video features from a 3D CNN (see module doc)."""
    higher_is_better = False
    needs = frozenset({"reference"})
    ideal = {"value": 0.0}
    set_level = True
    weight: ClassVar[str]
    feature_dim: ClassVar[int]

    def available(self) -> str | None:
        reason = weights.available(self.weight)
        return f"{self.name}: {reason}" if reason else None

    def features(self, frames: torch.Tensor) -> np.ndarray:
        """(T, 3, H, W) in [0, 1] -> (feature_dim,) float64."""
        raise NotImplementedError

    def generated_features(self, frames: torch.Tensor) -> np.ndarray:
        memo = self.__dict__.setdefault("_memo", {})
        key = hash_frames(frames)
        if key not in memo:
            if len(memo) >= 4096:
                memo.pop(next(iter(memo)))
            self.ensure_prepared()
            memo[key] = self.features(frames)
        return memo[key]

    def reference_features(self, frames: torch.Tensor, clip: Clip, settings: dict) -> np.ndarray:
        key = {**self.preprocessing(), **settings, "weights": str(weights.locate(self.weight))}
        for k in ("resample", "min_samples"):  # do not change the features
            key.pop(k, None)
        self.ensure_prepared()
        got = self.cache.get_or_compute(clip.content_hash, f"{self.name}-features", key,
                                        lambda: {"feats": torch.from_numpy(self.features(frames))})
        return got["feats"].numpy()

    def score(self, generated: Video, clip: Clip) -> dict[str, float]:
        pair = align(self.name, generated, clip, self.options["resample"])
        gen = self.generated_features(pair.generated)
        ref = self.reference_features(pair.reference, clip, reference_settings(pair))
        return {"value": float(((gen - ref) ** 2).sum()), "unstable": 1.0, "n_generated": 1.0, "n_reference": 1.0}

    def score_set(self, pairs: Iterable[tuple[Video, Clip]]) -> dict[str, float]:
        gens, refs = [], {}
        for video, clip in pairs:
            pair = align(self.name, video, clip, self.options["resample"])
            settings = reference_settings(pair)
            key = (clip.content_hash, repr(sorted(settings.items())))   # a reference enters once
            if key not in refs:
                refs[key] = self.reference_features(pair.reference, clip, settings)
            gens.append(self.generated_features(pair.generated))
        if len(gens) < 2 or len(refs) < 2:
            raise ValueError(f"{self.name}: a set-level value needs at least 2 generated videos and 2 distinct "
                             f"references, got {len(gens)} and {len(refs)}")
        return fid_from_feature_sets(np.stack(gens), np.stack(list(refs.values())), self.opts.min_samples,
                                     metric=self.name, unit="videos")

    def frames_used(self, frames: torch.Tensor) -> torch.Tensor:
        n = self.opts.clip_length or frames.shape[0]
        if frames.shape[0] < max(n, self.min_frames):
            raise ValueError(f"{self.name}: the video has {frames.shape[0]} frames; this convention needs at least "
                             f"{max(n, self.min_frames)} (option clip_length={self.opts.clip_length})")
        return frames[:n]

    min_frames: ClassVar[int] = 2


@metrics.register("fvd")
class FVD(_VideoFrechet):
    description = ("Fréchet video distance, StyleGAN-V convention (TorchScript I3D, 224 short side + centre crop, "
                   "[-1,1], 400-d); per cell flagged unstable, set-level over all cells")
    weight = I3D_WEIGHT
    feature_dim = 400
    min_frames = I3D_MIN_FRAMES

    Options = FVDOptions

    def load(self) -> None:
        self.model = torch.jit.load(str(weights.require(I3D_WEIGHT)), map_location=self.device).eval()

    def preprocessing(self) -> dict:
        return {"variant": "stylegan-v i3d_torchscript", "clip_length": self.opts.clip_length or "all",
                "frame_sampling": "first clip_length frames, stride 1", "quantise": "uint8",
                "resize": "short side 224, bilinear (align_corners False), long side ceil; centre crop 224",
                "value_range": "[-1, 1]", "call": "rescale=False, resize=False, return_features=True",
                "features": "400-d", "sample": "video", "min_samples": self.opts.min_samples,
                "resample": self.options["resample"]}

    @torch.no_grad()
    def features(self, frames: torch.Tensor) -> np.ndarray:
        video = to_uint8(self.frames_used(frames)).float() / 255.0          # (T, 3, H, W)
        h, w = video.shape[2:]
        scale = 224 / min(h, w)
        size = (224, math.ceil(w * scale)) if h <= w else (math.ceil(h * scale), 224)
        video = F.interpolate(video, size=size, mode="bilinear", align_corners=False)
        top, left = (video.shape[2] - 224) // 2, (video.shape[3] - 224) // 2
        video = to_minus_one_one(video[:, :, top:top + 224, left:left + 224])
        x = video.permute(1, 0, 2, 3)[None].contiguous().to(self.device)     # (1, 3, T, 224, 224)
        feats = self.model(x, rescale=False, resize=False, return_features=True)
        return feats[0].double().cpu().numpy()


# ---- DisCo's FID-VID backbone: Hara et al.'s 3D ResNet-50 (written here; weights from their release)

class _Bottleneck3d(torch.nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: torch.nn.Module | None = None):
        super().__init__()
        self.conv1 = torch.nn.Conv3d(inplanes, planes, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm3d(planes)
        self.conv2 = torch.nn.Conv3d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm3d(planes)
        self.conv3 = torch.nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = torch.nn.BatchNorm3d(planes * 4)
        self.relu = torch.nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet3d50(torch.nn.Module):
    """3D ResNet-50 of Hara et al. (CVPR 2018), shortcut B; returns the 2048-d pooled features
    (the Kinetics classifier ``fc`` is loaded but not applied, as DisCo's ``last_fc=False``)."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.conv1 = torch.nn.Conv3d(3, 64, 7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm3d(64)
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool3d(3, stride=2, padding=1)
        inplanes, layers = 64, []
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            down = None
            if stride != 1 or inplanes != planes * 4:
                down = torch.nn.Sequential(torch.nn.Conv3d(inplanes, planes * 4, 1, stride=stride, bias=False),
                                           torch.nn.BatchNorm3d(planes * 4))
            seq = [_Bottleneck3d(inplanes, planes, stride, down)]
            inplanes = planes * 4
            seq += [_Bottleneck3d(inplanes, planes) for _ in range(blocks - 1)]
            layers.append(torch.nn.Sequential(*seq))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = torch.nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return F.adaptive_avg_pool3d(x, 1).flatten(1)


def load_r3d50_state(path) -> dict:
    """Hara's release stores {'state_dict': ...} saved from DataParallel ('module.' prefixes)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    state = data.get("state_dict", data) if isinstance(data, dict) else data
    return {k.removeprefix("module."): v for k, v in state.items()}


@metrics.register("fid_vid")
class FIDVID(_VideoFrechet):
    description = ("FID-VID as DisCo computes it: 3D ResNet-50 (Kinetics) 2048-d features of 16-frame 112x112 "
                   "segments, averaged per video; per cell flagged unstable, set-level over all cells")
    weight = R3D_WEIGHT
    feature_dim = 2048

    Options = FIDVIDOptions

    def load(self) -> None:
        model = ResNet3d50()
        model.load_state_dict(load_r3d50_state(weights.require(R3D_WEIGHT)))
        self.model = model.eval().to(self.device)

    def preprocessing(self) -> dict:
        return {"variant": "disco fvd-3drn50 (resnet-50-kinetics, shortcut B)", "clip_length": self.opts.clip_length,
                "frame_sampling": "non-overlapping segments of clip_length frames, remainder dropped, "
                                  "features averaged over segments",
                "quantise": "uint8", "resize": "112x112 bicubic (antialiased), aspect not kept, rounded to uint8",
                "value_range": "0..255 minus mean (114.7748, 107.7354, 99.4750)", "features": "2048-d avgpool",
                "sample": "video", "min_samples": self.opts.min_samples, "resample": self.options["resample"]}

    @torch.no_grad()
    def features(self, frames: torch.Tensor) -> np.ndarray:
        n = self.opts.clip_length
        if frames.shape[0] < n:
            raise ValueError(f"fid_vid: the video has {frames.shape[0]} frames; a segment needs {n} "
                             f"(option clip_length)")
        video = to_uint8(frames[: frames.shape[0] // n * n]).float()                        # 0..255
        video = F.interpolate(video, size=(112, 112), mode="bicubic", align_corners=False, antialias=True)
        video = video.clamp(0, 255).round() - torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1)
        segments = video.view(-1, n, 3, 112, 112).permute(0, 2, 1, 3, 4).contiguous()     # (S, 3, n, 112, 112)
        feats = torch.cat([self.model(segments[i:i + 1].to(self.device)).cpu() for i in range(len(segments))])
        return feats.double().mean(0).numpy()

