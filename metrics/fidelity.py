"""Pixel fidelity against the reference video: ``psnr``, ``ssim``, ``l1``.

Convention (recorded by ``preprocessing()``): frames as given, float in [0, 1] (no
quantisation), compared frame t to frame t after ``align``; one value per frame, video value =
mean over frames.

- PSNR: 10·log10(1/MSE) with data_range=1 over each whole frame (all channels), in float64
  (torchmetrics' functional divides by a float32 ln 10, ~1e-6 dB off; scikit-image agrees
  with this form). ``identical="cap"`` (default, the field's video-metric scripts):
  a frame whose MSE < 1e-10 scores 100 dB, so one copied frame cannot make a video's mean
  infinite; ``identical="inf"`` keeps the mathematical +inf.
- SSIM, ``border="valid"`` (default): the convention of Wang et al.'s MATLAB code, scikit-image
  (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``, channels
  averaged) and the per-frame scripts video papers use: Gaussian window sigma 1.5 (11x11),
  k1=0.01, k2=0.03, the SSIM map averaged over the valid region only (5-pixel border cropped).
  Computed for all frames at once with a separable filter (scipy.ndimage, float32), equal to
  scikit-image to 1e-8 and faster (benchmarks/bench_ssim.py). ``border="reflect-padded"``:
  torchmetrics' whole-frame average over a reflect-padded map (the pre-0.2 default); it differs
  by ~1e-3 on smooth frames and up to ~7e-3 on noisy ones. Either way a bit-identical frame
  pair gets exactly 1 (float32 cancellation on flat regions would otherwise give 0.99998).
- L1: mean absolute difference per frame in [0, 1] units (MotionFollower's table reports an
  L1 column; its scale there is not documented, so compare only within motiongrid).
"""
from __future__ import annotations

import numpy as np
import torch

from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video
from motiongrid.metrics._common import BaseMetric, align
from motiongrid.metrics.options import CAPPED_PSNR, PSNROptions, SSIMOptions


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


IDENTICAL_MSE = 1e-10     # the field's scripts: a frame this close to its reference scores 100 dB
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def ssim_valid(generated: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """(T,) SSIM of frame pairs (T, C, H, W), scikit-image's convention: Gaussian-weighted local
    statistics (population covariance), map averaged over the valid region and the channels."""
    from scipy import ndimage

    pad = SSIM_WINDOW // 2
    if min(generated.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim: frames of {tuple(generated.shape[-2:])} px are smaller than the "
                         f"{SSIM_WINDOW}x{SSIM_WINDOW} window")
    g = generated.detach().cpu().numpy().astype(np.float32)
    r = reference.detach().cpu().numpy().astype(np.float32)
    x = np.arange(SSIM_WINDOW) - pad
    w = np.exp(-x ** 2 / (2 * SSIM_SIGMA ** 2))
    w = (w / w.sum()).astype(np.float32)
    stats = np.stack([g, r, g * g, r * r, g * r])
    # separable filter, each pass keeping only the valid region (the border is cropped anyway)
    stats = ndimage.correlate1d(stats, w, axis=-1)[..., pad:-pad]
    mu_g, mu_r, gg, rr, gr = ndimage.correlate1d(stats, w, axis=-2)[..., pad:-pad, :]
    var_g, var_r, cov = gg - mu_g * mu_g, rr - mu_r * mu_r, gr - mu_g * mu_r
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_g * mu_r + c1) * (2 * cov + c2)) / ((mu_g ** 2 + mu_r ** 2 + c1) * (var_g + var_r + c2))
    return torch.from_numpy(ssim_map.reshape(ssim_map.shape[0], -1).mean(1, dtype=np.float64))


@metrics.register("psnr")
class PSNR(_FrameMetric):
    description = ("peak signal-to-noise ratio vs the reference, dB, mean over frames (data_range 1, float64; "
                   "identical frames 100 dB)")
    higher_is_better = True
    ideal = CAPPED_PSNR
    Options = PSNROptions

    def preprocessing(self) -> dict:
        identical = (f"frames with MSE < {IDENTICAL_MSE:g} score {CAPPED_PSNR:g} dB" if self.options["identical"] == "cap"
                     else "inf")
        return {"formula": "10·log10(1/MSE), float64", "range": "[0,1] float, unquantised", "data_range": 1.0,
                "reduce": "per frame over C,H,W; mean over frames", "identical": identical,
                "resample": self.options["resample"]}

    def per_frame(self, generated, reference):
        # float64 throughout: torchmetrics divides by a float32 ln(10), ~1e-6 dB off at 50 dB
        mse = (generated.double() - reference.double()).square().flatten(1).mean(1)
        values = 10 * torch.log10(1.0 / mse)                 # data_range 1; mse 0 gives +inf
        if self.options["identical"] == "cap":
            values = torch.where(mse < IDENTICAL_MSE, torch.full_like(values, CAPPED_PSNR), values)
        return values


@metrics.register("ssim")
class SSIM(_FrameMetric):
    description = ("structural similarity vs the reference, mean over frames (gaussian sigma 1.5, valid region "
                   "as scikit-image)")
    higher_is_better = True
    ideal = 1.0
    Options = SSIMOptions

    def preprocessing(self) -> dict:
        valid = self.options["border"] == "valid"
        return {"library": "scipy.ndimage separable filter (= scikit-image)" if valid else "torchmetrics",
                "range": "[0,1] float, unquantised", "data_range": 1.0,
                "window": "gaussian sigma=1.5 (11x11)", "k1": SSIM_K1, "k2": SSIM_K2, "dtype": "float32",
                "identical": 1.0, "covariance": "population",
                "border": ("valid region (5-px border cropped), as scikit-image" if valid
                           else "reflect padding, map averaged over the whole frame"),
                "channels": "averaged", "reduce": "mean over frames", "resample": self.options["resample"]}

    def per_frame(self, generated, reference):
        if self.options["border"] == "valid":
            values = ssim_valid(generated, reference).to(generated.device)
        else:
            # imported here: torchmetrics pulls in torchvision (~3 s), and only this option uses it
            from torchmetrics.functional.image import structural_similarity_index_measure

            values = structural_similarity_index_measure(generated.float(), reference.float(), gaussian_kernel=True,
                                                         sigma=SSIM_SIGMA, kernel_size=SSIM_WINDOW, data_range=1.0,
                                                         reduction="none")
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
