"""`motiongrid score` on shapes clips written to mp4, scored against themselves."""
import json
from pathlib import Path

import pytest

from motiongrid.bench.cli import main
from motiongrid.bench.video import Video, read_video, sample_frame_indices, write_video
from motiongrid.datasets.folder import export_clips
from motiongrid.datasets.shapes import ShapesOptions, generate_clips


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    export_clips(generate_clips(ShapesOptions(count=6, size=64, frames=12)), out)   # lossless mp4 + tracks
    return out


def _score(tmp: Path, *args) -> dict:
    out = tmp / "score.json"
    assert main(["score", *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())   # strict JSON: inf is the string "inf"


def test_against_itself_all_metrics(isolated, shapes_dir):
    r = _score(isolated, "--reference", str(shapes_dir), "--generated", str(shapes_dir), "--tracker", "lk")
    assert len(r["per_clip"]) == 6
    for row in r["per_clip"]:
        assert row["psnr"] == 100.0 and row["ssim"] == 1.0 and row["l1"] == 0.0
        assert row["motion_fidelity.symmetric"] == 1.0 and row["motion_fidelity.dmt_one_way"] == 1.0
        assert "errors" not in row
    assert r["mean"]["psnr"] == 100.0
    assert r["mean"]["ssim"] == 1.0 and r["mean"]["motion_fidelity.symmetric"] == 1.0
    # no weights on this machine: unavailable, each with the command that fixes it
    assert set(r["unavailable"]) == {"lpips", "fid", "clip_text", "temporal_consistency", "fvd", "fid_vid",
                                     "warp_error", "dynamic_degree", "subject_consistency"}
    for reason in r["unavailable"].values():
        # a fetchable file names both commands; an import-only one (fid_vid's) says where to put it
        assert "motiongrid weights import DIR" in reason
        assert "motiongrid weights fetch" in reason or "no URL can fetch it" in reason
    assert r["preprocessing"]["motion_fidelity"]["tracker"] == "lk"
    assert r["preprocessing"]["psnr"]["identical"] == "frames with MSE < 1e-10 score 100 dB"


def test_ground_truth_tracker_scores_about_one(isolated, shapes_dir):
    r = _score(isolated, "--reference", str(shapes_dir), "--generated", str(shapes_dir),
               "--metrics", "motion_fidelity", "--tracker", "gt")
    for row in r["per_clip"]:
        assert row["motion_fidelity.symmetric"] > 0.9, row     # LK on the generated side, GT on the reference
    assert r["preprocessing"]["motion_fidelity"]["tracker"] == "gt"
    auto = _score(isolated, "--reference", str(shapes_dir), "--generated", str(shapes_dir),
                  "--metrics", "motion_fidelity")
    assert auto["preprocessing"]["motion_fidelity"]["tracker"] == "lk"     # no CoTracker here
    assert all(row["motion_fidelity.symmetric"] == 1.0 for row in auto["per_clip"])


def test_mismatch_names_both_files_unless_resample(isolated, shapes_dir, capsys):
    ref = shapes_dir / "shapes-000-translate.mp4"
    short = isolated / "gen" / "shapes-000-translate.mp4"
    video = read_video(ref)
    # the 6 frames the resampler picks from 12 (spread uniformly: 0,2,4,7,9,11)
    write_video(Video(video.frames[sample_frame_indices(12, 6)].contiguous(), video.fps), short)
    assert main(["score", "--reference", str(ref), "--generated", str(short), "--metrics", "psnr"]) == 2
    err = capsys.readouterr().err
    assert str(ref) in err and str(short) in err and "--resample" in err
    r = _score(isolated, "--reference", str(ref), "--generated", str(short), "--metrics", "psnr,ssim",
               "--resample", "reference-to-generated")
    assert r["per_clip"][0]["psnr"] == 100.0 and r["per_clip"][0]["ssim"] == 1.0


def test_single_files_pair_regardless_of_name_and_prompts(isolated, shapes_dir, capsys):
    ref = shapes_dir / "shapes-001-rotate.mp4"
    gen = isolated / "my_output.mp4"
    gen.write_bytes(ref.read_bytes())
    prompts = isolated / "prompt.txt"
    prompts.write_text("a rotating square")
    r = _score(isolated, "--reference", str(ref), "--generated", str(gen), "--prompts", str(prompts),
               "--metrics", "psnr,clip_text")
    assert r["per_clip"][0]["clip"] == "shapes-001-rotate" and r["per_clip"][0]["psnr"] == 100.0
    assert "clip_text" in r["unavailable"]
    assert main(["score", "--reference", str(ref), "--generated", str(gen), "--metrics", "nonsense"]) == 2
    assert "unknown metric 'nonsense'" in capsys.readouterr().err


def test_score_json_matches_skimage_ssim_and_numpy_psnr_on_held_apart_pairs(isolated):
    """Issue 10's acceptance through the command a user runs: noisy and smooth pairs (and one
    copied frame) written as lossless videos, scored by `motiongrid score --json`, against
    scikit-image's SSIM and a per-frame NumPy PSNR capped at 100 dB on the decoded frames."""
    import numpy as np
    import torch
    from skimage.metrics import structural_similarity

    gen = torch.Generator().manual_seed(2024)
    ref_dir, gen_dir = isolated / "ref", isolated / "gen"
    for size in (64, 128):
        base = torch.rand(4, 3, size, size, generator=gen)
        smooth = torch.nn.functional.interpolate(base[:, :, ::8, ::8], size=size, mode="bilinear")
        for kind, ref in (("noisy", base), ("smooth", smooth)):
            sigma = 0.2 if kind == "noisy" else 0.02
            out = (ref + sigma * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
            out[0] = ref[0]                                              # one copied frame: 100 dB
            write_video(Video(ref), ref_dir / f"{kind}-{size}.mp4")
            write_video(Video(out), gen_dir / f"{kind}-{size}.mp4")
    r = _score(isolated, "--reference", str(ref_dir), "--generated", str(gen_dir), "--metrics", "psnr,ssim")
    assert len(r["per_clip"]) == 4
    for row in r["per_clip"]:
        a = read_video(row["reference"]).frames.double().numpy()
        b = read_video(row["generated"]).frames.double().numpy()
        ssim = np.mean([structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                              data_range=1.0, channel_axis=0) for x, y in zip(a, b)])
        mse = ((a - b) ** 2).reshape(len(a), -1).mean(1)
        psnr = np.where(mse < 1e-10, 100.0, 10 * np.log10(1 / np.maximum(mse, 1e-30))).mean()
        assert abs(row["ssim"] - ssim) < 1e-4, row["clip"]
        assert row["psnr"] == pytest.approx(psnr, abs=1e-6), row["clip"]
