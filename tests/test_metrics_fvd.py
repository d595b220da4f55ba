"""fvd and fid_vid: the Fréchet number against StyleGAN-V's formula (the one
common_metrics_on_video_quality copies) on generated features, and the loading paths with
stand-in files in the real places (plumbing only)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from metric_helpers import clip_of, import_ok, no_checksum, save_i3d_standin, save_r3d50_standin, stage
from scipy import linalg

from motiongrid.bench import weights
from motiongrid.bench.video import Video
from motiongrid.metrics.fid import frechet_distance_from_feats
from motiongrid.metrics.fvd import FIDVID, FVD, ResNet3d50


def stylegan_v_fvd(fake: np.ndarray, real: np.ndarray) -> float:
    """StyleGAN-V's frechet_distance, written from its formula: mu and np.cov (ddof 1) per side,
    scipy sqrtm of the covariance product; one sample per side: the mean term only."""
    m = float(np.square(fake.mean(0) - real.mean(0)).sum())
    if fake.shape[0] == 1:
        return m
    s_f, s_r = np.cov(fake, rowvar=False), np.cov(real, rowvar=False)
    root = linalg.sqrtm(s_f @ s_r)
    return float(np.real(m + np.trace(s_f + s_r - 2 * root)))


@pytest.mark.parametrize("n", [48, 600])   # fewer and more videos than the 400 feature dims
def test_frechet_distance_equals_stylegan_v_on_i3d_sized_features(n):
    rng = np.random.default_rng(n)
    mix = rng.normal(size=(400, 400)) / 20
    real = rng.normal(size=(n, 400)) @ mix
    fake = (rng.normal(size=(n, 400)) * 1.3 + 0.2) @ mix
    ref = stylegan_v_fvd(fake, real)
    assert frechet_distance_from_feats(fake, real) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance_from_feats(real, real.copy()) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture
def i3d(isolated):
    save_i3d_standin(stage(isolated / "transfer", "stylegan-v-i3d"))
    import_ok(isolated / "transfer", "stylegan-v-i3d")
    assert weights.locate("stylegan-v-i3d") == isolated / "mg" / "weights" / "fvd" / "i3d_torchscript.pt"
    metric = FVD()
    metric.prepare(torch.device("cpu"))
    return metric


def test_fvd_missing_weights_names_the_fix(isolated):
    assert "motiongrid weights fetch stylegan-v-i3d" in FVD().available()
    assert "motiongrid weights import" in FIDVID().available()


def test_fvd_feeds_i3d_the_stylegan_v_input(i3d):
    frames = torch.rand(12, 3, 48, 64)
    f = i3d.features(frames)
    assert f.shape == (400,)
    lo, hi, t, h, w = f[:5]
    assert (t, h, w) == (12, 224, 224)                  # all frames; short side 224, centre crop
    assert -1.0 <= lo < -0.9 and 0.9 < hi <= 1.0        # [-1, 1]
    # per-channel mean of the centre crop, computed the documented way
    x = torch.nn.functional.interpolate(torch.round(frames * 255) / 255, size=(224, 299), mode="bilinear",
                                        align_corners=False)[..., 37:261] * 2 - 1
    assert np.allclose(f[5:8], x.mean((0, 2, 3)).numpy(), atol=1e-5)
    assert FVD(clip_length=10).preprocessing()["clip_length"] == 10
    with pytest.raises(ValueError, match="needs at least 10"):
        i3d.features(torch.rand(8, 3, 32, 32))


def test_fvd_per_cell_and_set_values(i3d):
    clips = [clip_of(torch.rand(10, 3, 32, 32), f"c{i}") for i in range(3)]
    same = i3d.score(Video(clips[0].frames.clone()), clips[0])
    assert same == {"value": 0.0, "unstable": 1.0, "n_generated": 1.0, "n_reference": 1.0}
    assert i3d.score_set([(Video(c.frames.clone()), c) for c in clips])["value"] == pytest.approx(0.0, abs=1e-6)
    gens = [Video((c.frames * 0.5).clone()) for c in clips]
    got = i3d.score_set(list(zip(gens, clips)))
    ref = stylegan_v_fvd(np.stack([i3d.features(g.frames) for g in gens]), np.stack([i3d.features(c.frames) for c in clips]))
    assert got["value"] == pytest.approx(ref, rel=1e-6) and got["value"] > 0 and got["unstable"] == 1.0


def test_fid_vid_loads_haras_release_format_and_averages_segments(isolated):
    path = stage(isolated / "transfer", "resnet-50-kinetics")
    state = save_r3d50_standin(path)
    no_checksum("resnet-50-kinetics")
    import_ok(isolated / "transfer", "resnet-50-kinetics")
    metric = FIDVID()
    metric.prepare(torch.device("cpu"))
    assert all(torch.equal(metric.model.state_dict()[k], v) for k, v in state.items())
    frames = torch.rand(35, 3, 40, 56)                  # two 16-frame segments; 3 frames dropped
    f = metric.features(frames)
    assert f.shape == (2048,)
    first, second = metric.features(frames[:16]), metric.features(frames[16:32])
    assert np.allclose(f, (first + second) / 2, atol=1e-5)       # shape-only: random weights
    with pytest.raises(ValueError, match="a segment needs 16"):
        metric.features(frames[:8])


def test_the_3d_resnet_has_the_published_layout():
    model = ResNet3d50()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(46.4e6, rel=0.02)
    assert model(torch.zeros(1, 3, 16, 112, 112)).shape == (1, 2048)
