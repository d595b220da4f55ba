"""psnr / ssim / l1 against scikit-image, identical-frame handling, and the alignment rule."""
import math

import numpy as np
import pytest
import torch
from metric_helpers import clip_of
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from motiongrid.bench.api import AlignmentError
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import ShapesOptions, generate_clips
from motiongrid.metrics.fidelity import L1, PSNR, SSIM


def _pairs():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(4, 3, 128, 128, generator=g)
    yield "random", ref, (ref + 0.08 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    clip = generate_clips(ShapesOptions(count=1, size=128, frames=4))[0]
    real = clip.frames
    shifted = torch.roll(real, shifts=(1, 2), dims=(2, 3))            # a slightly wrong motion
    yield "shapes-shift", real, shifted
    yield "shapes-noise", real, (real + 0.03 * torch.randn(real.shape, generator=g)).clamp(0, 1)


def _sk(ref, gen, fn, **kw):
    return [fn(ref[i].numpy().astype(np.float64), gen[i].numpy().astype(np.float64), **kw) for i in range(len(ref))]


@pytest.mark.parametrize("case", list(range(3)))
def test_psnr_matches_skimage(case):
    _, ref, gen = list(_pairs())[case]
    ours = PSNR().frame_values(Video(gen), clip_of(ref))
    theirs = _sk(ref, gen, sk_psnr, data_range=1.0)
    assert np.allclose(ours.numpy(), theirs, atol=1e-4, rtol=0)
    assert PSNR().score(Video(gen), clip_of(ref)) == pytest.approx(float(np.mean(theirs)), abs=1e-4)


def test_ssim_matches_skimage_on_random_frames():
    _, ref, gen = next(_pairs())
    ours = SSIM().frame_values(Video(gen), clip_of(ref)).numpy()
    theirs = _sk(ref, gen, sk_ssim, channel_axis=0, gaussian_weights=True, sigma=1.5,
                 use_sample_covariance=False, data_range=1.0)
    assert np.abs(ours - np.array(theirs)).max() < 2e-3


@pytest.mark.parametrize("case", list(range(3)))
def test_ssim_differs_from_skimage_only_by_the_border(case):
    # Convention: torchmetrics pads by reflection and averages the SSIM map over the whole
    # frame; scikit-image averages only where the 11x11 window fits (5-px border cropped).
    # On real-looking frames the border can move the value by >1e-2, so check the interior:
    # the same map, cropped as scikit-image does, must agree to 1e-4.
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    _, ref, gen = list(_pairs())[case]
    _, full = tm_ssim(gen, ref, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0,
                      reduction="none", return_full_image=True)
    interior = full[..., 5:-5, 5:-5].flatten(1).mean(1).numpy()
    theirs = _sk(ref, gen, sk_ssim, channel_axis=0, gaussian_weights=True, sigma=1.5,
                 use_sample_covariance=False, data_range=1.0)
    assert np.abs(interior - np.array(theirs)).max() < 1e-4
    # and the metric is exactly that whole-frame torchmetrics value
    ours = SSIM().frame_values(Video(gen), clip_of(ref)).numpy()
    assert np.allclose(ours, full.flatten(1).mean(1).numpy(), atol=1e-6)


def test_identical_frames_give_inf_psnr_ssim_one_l1_zero():
    frames = generate_clips(ShapesOptions(count=6, size=48, frames=4))[5].frames   # occluder: flat regions
    clip = clip_of(frames)
    assert PSNR().score(Video(frames.clone()), clip) == math.inf
    assert SSIM().score(Video(frames.clone()), clip) == 1.0
    assert L1().score(Video(frames.clone()), clip) == 0.0
    # one identical frame among different ones: the mean is inf (the true value), not a crash
    mixed = frames.clone()
    mixed[1:] = (mixed[1:] + 0.05).clamp(0, 1)
    values = PSNR().frame_values(Video(mixed), clip)
    assert values[0] == math.inf and torch.isfinite(values[1:]).all()
    assert PSNR().score(Video(mixed), clip) == math.inf


def test_mismatch_is_an_error_naming_both_unless_resample():
    ref = torch.rand(8, 3, 32, 32)
    clip = clip_of(ref, cid="ref-clip")
    short = Video(ref[::2].clone())
    with pytest.raises(AlignmentError, match=r"4 frames.*ref-clip.*8 frames.*resample"):
        PSNR().score(short, clip)
    small = Video(torch.nn.functional.interpolate(ref, size=(16, 16), mode="area"))
    with pytest.raises(AlignmentError, match="16x16.*32x32"):
        SSIM().score(small, clip)
    # reference-to-generated: frames 0,2,4,6 of the reference -> exactly the generated frames
    assert PSNR(resample="reference-to-generated").score(Video(ref[[0, 2, 5, 7]].clone()), clip) == math.inf
    # generated-to-reference: the 4 frames are spread over 8 (indices 0,0,1,1,2,2,3,3)
    values = PSNR(resample="generated-to-reference").frame_values(short, clip)
    assert values.shape == (8,) and values[0] == math.inf and math.isfinite(values[1])
    assert SSIM(resample="reference-to-generated").frame_values(small, clip).shape == (8,)


def test_options_are_checked_and_registry_names():
    assert {"psnr", "ssim", "l1"} <= set(metrics.names())
    with pytest.raises(TypeError, match="unknown option"):
        PSNR(data_range=255)
    with pytest.raises(ValueError, match="resample"):
        SSIM(resample="stretch")
    assert SSIM().preprocessing()["window"].startswith("gaussian sigma=1.5")
    assert PSNR.higher_is_better and SSIM.higher_is_better and not L1.higher_is_better
