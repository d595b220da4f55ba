"""warp_error and dynamic_degree: analytic cases with the shapes renderer's exact flow, the
VBench rule on hand-made flows, and the RAFT loading path with a stand-in state dict."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from metric_helpers import clip_of, import_ok, no_checksum, save_raft_standin, stage

from motiongrid.bench import weights
from motiongrid.bench.api import MetricUnavailable
from motiongrid.bench.toyworld import Scene
from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import PRESETS, ShapesOptions, generate_clips, make_clip, random_spec
from motiongrid.metrics.flow import RAFT_WEIGHT, DynamicDegree, WarpError, farneback, fb_consistent, top_magnitude, vbench_dynamic, warp

TOY = ShapesOptions(**{**PRESETS["toy"], "count": 3})


def toy_clips():
    return generate_clips(TOY)


def video(frames, fps=8.0):
    return Video(frames.clone(), fps)


# ---- building blocks ---------------------------------------------------------------------

def test_warp_moves_an_image_by_an_integer_flow():
    img = torch.rand(1, 3, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0] = 2.0                      # each pixel reads 2 px to its right
    out = warp(img, flow)
    assert torch.allclose(out[..., :-2], img[..., 2:], atol=1e-6)


def test_forward_backward_check_keeps_consistent_and_drops_contradicting_flow():
    b = torch.full((1, 2, 8, 8), -1.5)
    assert fb_consistent(b, -b).all()
    assert not fb_consistent(b, b).any()   # forward flow points the same way: not undone


def test_top_magnitude_is_the_mean_of_the_largest_five_percent():
    flow = torch.zeros(1, 2, 10, 10)       # 100 px: the top 5 are averaged
    flow[0, 0].view(-1)[:5] = torch.tensor([3.0, 4.0, 5.0, 6.0, 7.0])
    flow[0, 1].view(-1)[5] = 2.0           # 6th largest: left out
    assert float(top_magnitude(flow)) == pytest.approx(5.0)


def test_vbench_threshold_scales_with_resolution_and_counts_moving_pairs():
    # 256 px at 8 fps: threshold 6 px; 16 frames need 4 moving pairs
    assert vbench_dynamic(torch.tensor([6.1] * 4 + [0.0] * 11), 16, 256, 320, 8.0)
    assert not vbench_dynamic(torch.tensor([6.1] * 3 + [0.0] * 12), 16, 256, 320, 8.0)
    assert not vbench_dynamic(torch.tensor([5.9] * 15), 16, 256, 320, 8.0)
    # 128 px: threshold 3 px; 4 fps doubles it (VBench's max(1, 8/fps))
    assert vbench_dynamic(torch.tensor([3.1] * 4), 16, 128, 128, 8.0)
    assert not vbench_dynamic(torch.tensor([3.1] * 15), 16, 128, 128, 4.0)


# ---- the renderer's exact flow -------------------------------------------------------------

def test_exact_flow_carries_each_pixel_to_where_its_surface_was():
    """Translation at v px/frame: object pixels' flow is -v; background (flat, no camera) 0."""
    spec = random_spec(np.random.default_rng([0, 0]), TOY, "translate")   # generate_clips' first clip
    clip = make_clip(spec, TOY, "c")
    assert clip.content_hash == toy_clips()[0].content_hash
    flow, valid = clip.flow()
    masks = Scene(spec, TOY).masks()
    inner = masks[1:] & valid
    assert inner.sum() > 20
    v = torch.tensor(spec.velocity, dtype=torch.float32)
    assert torch.allclose(flow.permute(0, 2, 3, 1)[inner], -v.expand(int(inner.sum()), 2), atol=1e-4)
    background = ~masks[1:] & ~masks[:-1] & valid
    assert flow.permute(0, 2, 3, 1)[background].abs().max() < 1e-4


def test_a_clip_warped_exactly_along_its_flow_has_no_warp_error():
    clip = toy_clips()[1]
    flow, valid = clip.flow()
    frames = [clip.frames[0]]
    for t in range(len(flow)):                    # V_t = V_{t-1} warped along the exact flow
        frames.append(warp(frames[-1][None], flow[t:t + 1])[0])
    got = WarpError(flow="gt").score(video(torch.stack(frames)), clip)
    assert got["value"] < 1e-10
    assert 0.0 < got["masked"] < 0.2


def test_the_reference_itself_is_near_zero_and_wrong_orders_score_far_higher():
    metric = WarpError(flow="gt")
    for clip in toy_clips():
        f = clip.frames
        same = metric.score(video(f), clip)
        assert same["excess"] == 0.0 and same["value"] < 1e-3
        shuffled = metric.score(video(f[torch.tensor([0, 5, 2, 7, 1, 6, 3, 4])]), clip)
        reversed_ = metric.score(video(f.flip(0)), clip)
        frozen = metric.score(video(f[:1].expand_as(f)), clip)
        assert shuffled["value"] > 50 * same["value"] and shuffled["excess"] > 0.02
        assert reversed_["excess"] > 0.005            # moves, but against the reference's motion
        assert frozen["excess"] > 0.001               # does not move where the reference does


def test_warp_error_of_an_edit_follows_the_ground_truth_motion_not_the_source():
    clip = generate_clips(ShapesOptions(**{**PRESETS["edit"], "count": 1}))[0]
    reference = clip.scoring_reference()
    metric = WarpError(flow="gt")
    right = metric.score(video(reference.frames), reference)
    source = metric.score(video(clip.frames), reference)
    assert right["excess"] == 0.0 and right["value"] < 1e-3
    assert source["excess"] > 0.005
    assert metric.preprocessing()["flow_from"].startswith("the scoring reference")


def test_gt_flow_without_a_renderer_or_at_another_size_is_one_clear_error():
    frames = torch.rand(4, 3, 16, 16)
    with pytest.raises(ValueError, match="carries no exact flow"):
        WarpError(flow="gt").score(video(frames), clip_of(frames))
    clip = toy_clips()[0]
    with pytest.raises(ValueError, match="cannot be resampled"):
        WarpError(flow="gt", resample="reference-to-generated").score(video(torch.rand(8, 3, 32, 32)), clip)


def test_static_clip_has_dynamic_degree_zero_and_the_toy_moves():
    spec = dataclasses.replace(random_spec(np.random.default_rng(0), TOY, "translate"), velocity=(0.0, 0.0))
    still = make_clip(spec, TOY, "still")
    metric = DynamicDegree(flow="gt")
    got = metric.score(video(still.frames), still)
    assert got["reference_magnitude"] == 0.0 and got["reference_dynamic"] == 0.0    # exact
    assert got["magnitude"] < 0.01 and got["dynamic"] == 0.0                         # Farneback, identical frames
    moving = toy_clips()
    cells = [metric.score(video(c.frames), c) for c in moving]
    assert all(c["dynamic"] == 1.0 and c["reference_dynamic"] == 1.0 for c in cells)
    frozen = metric.score(video(moving[0].frames[:1].expand_as(moving[0].frames)), moving[0])
    assert frozen["dynamic"] == 0.0 and frozen["magnitude"] < 0.05
    pairs = [(video(c.frames), c) for c in moving] + [(video(still.frames), still)]
    assert metric.score_set(pairs) == {"degree": 0.75, "n_videos": 4.0, "reference_degree": 0.75}


def test_farneback_magnitude_agrees_with_the_exact_flow_on_toy_clips():
    """The estimator gt mode uses for generated videos, checked against the renderer."""
    for clip in toy_clips():
        f = clip.frames
        est = top_magnitude(farneback(f[:-1], f[1:]))
        exact = top_magnitude(clip.flow()[0])
        assert est.mean() == pytest.approx(float(exact.mean()), rel=0.15)


def test_options_are_typed():
    with pytest.raises(ValueError, match="warp_error.*flow"):
        WarpError(flow="sift")
    assert WarpError.Options.model_fields["flow"].description


# ---- RAFT: the loading path (stand-in weights: plumbing only) --------------------------------

def test_raft_missing_is_unavailable_with_the_fix_command(isolated):
    reason = WarpError().available()
    assert reason and "motiongrid weights fetch raft-large-things" in reason
    with pytest.raises(MetricUnavailable):
        DynamicDegree().prepare(torch.device("cpu"))


def test_raft_loads_from_the_checkpoints_folder_and_runs(isolated):
    path = stage(isolated / "transfer", RAFT_WEIGHT)
    save_raft_standin(path)
    no_checksum(RAFT_WEIGHT)
    import_ok(isolated / "transfer", RAFT_WEIGHT)
    assert weights.locate(RAFT_WEIGHT) == isolated / "torch" / "hub" / "checkpoints" / path.name
    clip = generate_clips(ShapesOptions(count=1, size=32, frames=4))[0]
    metric = WarpError()
    metric.prepare(torch.device("cpu"))
    got = metric.score(video(clip.frames), clip)           # shape-only: random weights
    assert got["excess"] == 0.0 and set(got) == {"value", "reference", "excess", "masked"}
    assert metric.preprocessing()["flow_source"]["estimator"] == "raft"
    dd = DynamicDegree()
    dd.prepare(torch.device("cpu"))
    assert set(dd.score(video(clip.frames), clip)) == {"magnitude", "dynamic"}
