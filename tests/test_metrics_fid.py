"""FID: our Fréchet distance against a scipy.linalg.sqrtm reference (and clean-fid's), the
few-samples flag, and the clean-fid Inception loading path with a locally made TorchScript file."""
import warnings

import numpy as np
import pytest
from metric_helpers import import_ok, save_inception_standin, stage
from scipy import linalg

from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import ShapesOptions, generate_clips
from motiongrid.metrics.fid import FID, FewSamplesWarning, fid_from_feature_sets, frechet_distance_from_feats


def sqrtm_reference(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


@pytest.mark.parametrize("n1,n2,d", [(200, 150, 12), (300, 300, 32)])
def test_full_rank_matches_sqrtm_and_cleanfid(n1, n2, d):
    from cleanfid.fid import frechet_distance

    rng = np.random.default_rng(d)
    f1 = rng.normal(size=(n1, d)) @ rng.normal(size=(d, d))
    f2 = rng.normal(loc=0.3, size=(n2, d)) @ rng.normal(size=(d, d))
    ours = frechet_distance_from_feats(f1, f2)
    assert ours == pytest.approx(sqrtm_reference(f1, f2), rel=1e-6)
    cf = frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))
    assert ours == pytest.approx(float(cf), rel=1e-9)


@pytest.mark.parametrize("n1,n2,d", [(16, 16, 64), (10, 25, 40), (5, 5, 8)])
def test_low_rank_exact_form_matches_sqrtm(n1, n2, d):
    # n <= d: singular covariances; our trace term is the nuclear norm of A1 A2^T
    rng = np.random.default_rng(n1 + n2 + d)
    f1 = rng.normal(size=(n1, d))
    f2 = rng.normal(loc=0.5, scale=2.0, size=(n2, d))
    ours = frechet_distance_from_feats(f1, f2)
    assert ours == pytest.approx(sqrtm_reference(f1, f2), rel=1e-5, abs=1e-6)
    assert frechet_distance_from_feats(f1, f1.copy()) == pytest.approx(0.0, abs=1e-8)


def test_few_samples_are_flagged_and_warned():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(16, 32))
    with pytest.warns(FewSamplesWarning, match="16 generated and 16 reference"):
        r = fid_from_feature_sets(f, f + 1, min_samples=32)
    assert r["unstable"] == 1.0 and r["n_generated"] == 16 and r["value"] == pytest.approx(32.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fid_from_feature_sets(f, f + 1, min_samples=10)["unstable"] == 0.0
    with pytest.raises(ValueError, match="equal d"):
        frechet_distance_from_feats(f, f[:, :8])


def test_unavailable_reports_fix_command(isolated):
    reason = FID().available()
    assert "motiongrid weights fetch cleanfid-inception" in reason and "weights import DIR" in reason
    assert "inception-2015-12-05.pt" in reason


def test_cleanfid_inception_loads_from_imported_file(isolated, monkeypatch):
    import cleanfid.downloads_helper

    def no_download(*a, **k):
        raise AssertionError("clean-fid tried to download")
    monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", no_download)

    transfer = isolated / "transfer"
    save_inception_standin(stage(transfer, "cleanfid-inception"))
    import_ok(transfer, "cleanfid-inception")
    assert (isolated / "cleanfid" / "inception-2015-12-05.pt").is_file()

    clips = generate_clips(ShapesOptions(count=2, size=32, frames=4))
    m = FID(min_samples=2048)
    with pytest.warns(FewSamplesWarning):
        r = m.score(Video(clips[0].frames.clone()), clips[0])
    assert r["unstable"] == 1.0 and (r["n_generated"], r["n_reference"]) == (4, 4)
    assert r["value"] == pytest.approx(0.0, abs=1e-3)          # identical frames -> identical features
    assert m.features(clips[0].frames).shape == (4, 2048)
    with pytest.warns(FewSamplesWarning):
        s = m.score_set([(Video(c.frames.clone()), c) for c in clips] + [(Video(clips[0].frames.clone()), clips[0])])
    assert s["n_generated"] == 12 and s["n_reference"] == 8    # a repeated clip enters the reference set once
    assert m.cache.hits >= 1                                   # reference features came from the cache
    assert m.preprocessing()["mode"] == "clean"
