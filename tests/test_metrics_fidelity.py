"""psnr / ssim / l1 against scikit-image, identical-frame handling, and the alignment rule."""
import math

import numpy as np
import pytest
import torch
from metric_helpers import clip_of
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from motiongrid.bench.api import AlignmentError, OptionsError
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


def _noisy_and_smooth(size: int, seed: int):
    """Held-apart pairs where the conventions diverge: noise everywhere (the border matters) and
    smooth frames (it hardly does)."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(3, 3, size, size, generator=g)
    yield "noisy", ref, (ref + 0.2 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    smooth = torch.nn.functional.interpolate(ref[:, :, ::8, ::8], size=size, mode="bilinear", align_corners=False)
    yield "smooth", smooth, (smooth + 0.02 * torch.randn(smooth.shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("size", [64, 256, 512])
def test_ssim_equals_skimage_valid_region_on_noisy_and_smooth_frames(size):
    for name, ref, gen in _noisy_and_smooth(size, seed=size):
        ours = SSIM().frame_values(Video(gen), clip_of(ref)).numpy()
        theirs = _sk(ref, gen, sk_ssim, channel_axis=0, gaussian_weights=True, sigma=1.5,
                     use_sample_covariance=False, data_range=1.0)
        assert np.abs(ours - np.array(theirs)).max() < 1e-4, (size, name)


def test_reflect_padded_option_is_torchmetrics_whole_frame_and_differs_on_noise():
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    _, ref, gen = next(_noisy_and_smooth(256, seed=1))
    padded = SSIM(border="reflect-padded").frame_values(Video(gen), clip_of(ref)).numpy()
    whole = tm_ssim(gen, ref, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0, reduction="none")
    assert np.allclose(padded, whole.numpy(), atol=1e-6)
    valid = SSIM().frame_values(Video(gen), clip_of(ref)).numpy()
    assert np.abs(valid - padded).max() > 1e-4          # beyond the tolerance the papers' numbers need
    with pytest.raises(ValueError, match="border"):
        SSIM(border="same")


def test_psnr_caps_identical_frames_at_100_db_like_the_field_scripts():
    """Per frame: 10·log10(1/MSE), or 100 dB where MSE < 1e-10; the video value is the mean."""
    frames = generate_clips(ShapesOptions(count=1, size=48, frames=4))[0].frames
    gen = frames.clone()
    gen[1:] = (gen[1:] + 0.05).clamp(0, 1)
    gen[2, 0, 0, 0] += 1e-6                              # MSE ≈ 1e-16: "identical" by the convention
    gen[2] = frames[2].clone()
    gen[2, 0, 0, 0] += 1e-6
    mse = ((gen.double() - frames.double()) ** 2).flatten(1).mean(1).numpy()
    expected = np.where(mse < 1e-10, 100.0, 10 * np.log10(1 / np.maximum(mse, 1e-300)))
    ours = PSNR().frame_values(Video(gen), clip_of(frames)).numpy()
    assert np.allclose(ours, expected, atol=1e-5) and ours[0] == 100.0 and ours[2] == 100.0
    assert PSNR().score(Video(gen), clip_of(frames)) == pytest.approx(expected.mean(), abs=1e-5)
    assert PSNR(identical="inf").frame_values(Video(gen), clip_of(frames))[0] == math.inf


def test_identical_frames_give_capped_psnr_ssim_one_l1_zero():
    frames = generate_clips(ShapesOptions(count=6, size=48, frames=4))[5].frames   # occluder: flat regions
    clip = clip_of(frames)
    assert PSNR().score(Video(frames.clone()), clip) == 100.0
    assert PSNR(identical="inf").score(Video(frames.clone()), clip) == math.inf
    assert SSIM().score(Video(frames.clone()), clip) == 1.0
    assert L1().score(Video(frames.clone()), clip) == 0.0
    # identical="inf": one identical frame among different ones makes the mean inf, not a crash
    mixed = frames.clone()
    mixed[1:] = (mixed[1:] + 0.05).clamp(0, 1)
    values = PSNR(identical="inf").frame_values(Video(mixed), clip)
    assert values[0] == math.inf and torch.isfinite(values[1:]).all()
    assert PSNR(identical="inf").score(Video(mixed), clip) == math.inf
    assert PSNR().score(Video(mixed), clip) < 100.0


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
    assert PSNR(resample="reference-to-generated").score(Video(ref[[0, 2, 5, 7]].clone()), clip) == 100.0
    # generated-to-reference: the 4 frames are spread over 8 (indices 0,0,1,1,2,2,3,3)
    values = PSNR(resample="generated-to-reference").frame_values(short, clip)
    assert values.shape == (8,) and values[0] == 100.0 and math.isfinite(values[1])
    assert SSIM(resample="reference-to-generated").frame_values(small, clip).shape == (8,)


def test_options_are_checked_and_registry_names():
    assert {"psnr", "ssim", "l1"} <= set(metrics.names())
    with pytest.raises(OptionsError, match="unknown option .data_range."):
        PSNR(data_range=255)
    with pytest.raises(ValueError, match="resample"):
        SSIM(resample="stretch")
    assert SSIM().preprocessing()["window"].startswith("gaussian sigma=1.5")
    assert PSNR.higher_is_better and SSIM.higher_is_better and not L1.higher_is_better
