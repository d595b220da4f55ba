"""SSIM in the valid-region convention: candidates side by side in one run.

Reference: scikit-image ``structural_similarity`` per frame (``gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis``), the convention of the
field's per-frame scripts. Candidates, each on the same 16-frame 256² video pair (noisy and
smooth): torchmetrics' full map then cropped, a separable Gaussian filter in torch, pytorch-msssim
(valid convolution), and motiongrid's choice: the separable filter on all frames at once with
scipy.ndimage in float32, cropped to the valid region after each pass. Prints seconds per video, speed-up over scikit-image and
the largest difference from it.

    python benchmarks/bench_ssim.py [--threads 1] [--repeats 3] [--size 256]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from bench_metrics import median_time  # the sibling script's timer (run from benchmarks/ or its parent)


def skimage_loop(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    from skimage.metrics import structural_similarity

    gn, rn = g.double().permute(0, 2, 3, 1).numpy(), r.double().permute(0, 2, 3, 1).numpy()
    return torch.tensor([structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                               data_range=1.0, channel_axis=-1) for a, b in zip(gn, rn)])


def torchmetrics_crop(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure

    _, full = structural_similarity_index_measure(g, r, gaussian_kernel=True, sigma=1.5, kernel_size=11,
                                                  data_range=1.0, reduction="none", return_full_image=True)
    return full[..., 5:-5, 5:-5].flatten(1).mean(1)


def separable(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    x = torch.arange(11, dtype=torch.float32) - 5
    w = torch.exp(-x ** 2 / (2 * 1.5 ** 2))
    w = (w / w.sum()).to(g)
    c = g.shape[1]

    def blur(t):
        t = F.conv2d(t, w.view(1, 1, 1, 11).expand(c, 1, 1, 11), groups=c)
        return F.conv2d(t, w.view(1, 1, 11, 1).expand(c, 1, 11, 1), groups=c)

    mu_g, mu_r = blur(g), blur(r)
    gg, rr, gr = blur(g * g) - mu_g ** 2, blur(r * r) - mu_r ** 2, blur(g * r) - mu_g * mu_r
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_g * mu_r + c1) * (2 * gr + c2)) / ((mu_g ** 2 + mu_r ** 2 + c1) * (gg + rr + c2))
    return s.flatten(1).mean(1)


def motiongrid_ssim(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    from motiongrid.metrics.fidelity import ssim_valid

    return ssim_valid(g, r)


def msssim_lib(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    from pytorch_msssim import ssim

    return ssim(g, r, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(16, 3, args.size, args.size, generator=gen)
    smooth_ref = F.avg_pool2d(F.interpolate(ref[:, :, ::16, ::16], size=args.size, mode="bilinear"), 3, 1, 1)
    pairs = {"noisy": (((ref + 0.2 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)), ref),
             "smooth": ((smooth_ref + 0.02 * torch.randn(ref.shape, generator=gen)).clamp(0, 1), smooth_ref)}
    candidates = {"scikit-image loop (reference)": skimage_loop, "torchmetrics full map, cropped": torchmetrics_crop,
                  "separable Gaussian (torch conv2d)": separable, "pytorch-msssim (valid conv)": msssim_lib,
                  "separable Gaussian (scipy, motiongrid)": motiongrid_ssim}
    print(f"torch threads {torch.get_num_threads()}; 16 frames x 3 x {args.size}²; median of {args.repeats}")
    print(f"{'candidate':34s} {'s/video':>8s} {'speed-up':>9s} {'max |Δ| noisy':>14s} {'max |Δ| smooth':>15s}")
    base_t = None
    refs = {k: skimage_loop(*p) for k, p in pairs.items()}
    for name, fn in candidates.items():
        t = median_time(lambda fn=fn: fn(*pairs["noisy"]), args.repeats)
        base_t = base_t or t
        diffs = [float((fn(*p).double() - refs[k]).abs().max()) for k, p in pairs.items()]
        print(f"{name:34s} {t:8.3f} {base_t / t:8.2f}x {diffs[0]:14.2e} {diffs[1]:15.2e}")
    print("noisy mean SSIM (scikit-image):", f"{float(refs['noisy'].mean()):.4f};",
          "smooth:", f"{float(refs['smooth'].mean()):.4f}")


if __name__ == "__main__":
    main()
