"""Pixel fidelity against the reference video: ``psnr``, ``ssim``, ``l1``.

Convention (recorded by ``preprocessing()``): frames as given, float in [0, 1] (no
quantisation), compared frame t to frame t after ``align``; one value per frame, video value =
mean over frames.

- PSNR: torchmetrics ``peak_signal_noise_ratio`` with data_range=1 over each whole frame
  (all channels), in float64. Identical frames give +inf; a video with any identical frame has
  mean +inf. That is the true value, returned as ``float('inf')``, not an error.
- SSIM: torchmetrics ``structural_similarity_index_measure``, Gaussian window sigma=1.5
  (11x11), k1=0.01, k2=0.03, data_range=1, channels averaged, float32; a
  frame pair that is bit-identical gets exactly 1 (float32 cancellation on flat regions would
  otherwise give 0.99998). torchmetrics pads the frame by
  reflection and averages the SSIM map over the whole frame; scikit-image
  (``channel_axis``, ``gaussian_weights=True``, ``use_sample_covariance=False``) crops the
  5-pixel border instead — they differ by about 1e-3 on 128x128 frames.
- L1: mean absolute difference per frame in [0, 1] units (MotionFollower's table reports an
  L1 column; its scale there is not documented, so compare only within motiongrid).
"""
from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video
from motiongrid.metrics._common import BaseMetric, align


class _FrameMetric(BaseMetric):
    needs = frozenset({"reference"})

    def per_frame(self, generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def frame_values(self, generated: Video, clip: Clip) -> torch.Tensor:
        """(T,) float64 values, one per aligned frame pair."""
        pair = align(self.name, generated, clip, self.options["resample"])
        out = []
        for sl in self.batches(pair.generated.shape[0]):
            g = pair.generated[sl].to(self.device)
            r = pair.reference[sl].to(self.device)
            out.append(self.per_frame(g, r).double().cpu())
        return torch.cat(out)

    def score(self, generated: Video, clip: Clip) -> float:
        return float(self.frame_values(generated, clip).mean())


@metrics.register("psnr")
class PSNR(_FrameMetric):
    description = "peak signal-to-noise ratio vs the reference, dB, mean over frames (torchmetrics, data_range 1)"
    higher_is_better = True
    ideal = float("inf")

    def preprocessing(self) -> dict:
        return {"library": "torchmetrics", "range": "[0,1] float, unquantised", "data_range": 1.0,
                "reduce": "per frame over C,H,W; mean over frames", "identical": "inf",
                "resample": self.options["resample"]}

    def per_frame(self, generated, reference):
        return peak_signal_noise_ratio(generated.double(), reference.double(), data_range=1.0,
                                       reduction="none", dim=(1, 2, 3))


@metrics.register("ssim")
class SSIM(_FrameMetric):
    description = "structural similarity vs the reference, mean over frames (torchmetrics, gaussian sigma 1.5)"
    higher_is_better = True
    ideal = 1.0

    def preprocessing(self) -> dict:
        return {"library": "torchmetrics", "range": "[0,1] float, unquantised", "data_range": 1.0,
                "window": "gaussian sigma=1.5 (11x11)", "k1": 0.01, "k2": 0.03, "dtype": "float32", "identical": 1.0,
                "border": "reflect padding, map averaged over the whole frame",
                "channels": "averaged", "reduce": "mean over frames", "resample": self.options["resample"]}

    def per_frame(self, generated, reference):
        values = structural_similarity_index_measure(generated.float(), reference.float(), gaussian_kernel=True,
                                                     sigma=1.5, kernel_size=11, data_range=1.0, reduction="none")
        # SSIM(x, x) = 1 exactly; float32 cancellation in flat regions (variance clamped at 0)
        # would give 0.99998, and float64 convolution is ~40x slower on CPU
        same = (generated == reference).flatten(1).all(1)
        return torch.where(same, torch.ones_like(values), values)


@metrics.register("l1")
class L1(_FrameMetric):
    description = "mean absolute pixel difference vs the reference in [0,1] units, mean over frames"
    higher_is_better = False
    ideal = 0.0

    def preprocessing(self) -> dict:
        return {"range": "[0,1] float, unquantised", "reduce": "mean |g-r| per frame; mean over frames",
                "resample": self.options["resample"]}

    def per_frame(self, generated, reference):
        return (generated.double() - reference.double()).abs().flatten(1).mean(1)
