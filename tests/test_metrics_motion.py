"""motion_fidelity: analytic track cases, the static rule, LK vs ground truth on shapes clips,
tracker selection, and CoTracker's hub loading path with a locally made repo + checkpoint."""
import math
import textwrap

import pytest
import torch
from metric_helpers import clip_of, import_ok, stage

from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import ShapesOptions, generate_clips
from motiongrid.metrics import motion
from motiongrid.metrics.motion import MotionFidelity, lk_track, motion_fidelity


def linear_tracks(velocities, frames=6, start=None):
    """(T, N, 2) tracks moving with constant per-track velocities (N, 2)."""
    v = torch.tensor(velocities, dtype=torch.float32)
    start = torch.zeros_like(v) + 10 if start is None else torch.tensor(start, dtype=torch.float32)
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    return start[None] + t * v[None]


def ones(tracks):
    return torch.ones(tracks.shape[:2], dtype=torch.bool)


def test_identical_tracks_score_one():
    tr = linear_tracks([[1, 0], [0, 2], [-1.5, 1.5], [0.3, -2]])
    r = motion_fidelity(tr, ones(tr), tr.clone(), ones(tr))
    assert r["symmetric"] == pytest.approx(1.0, abs=1e-12)
    assert r["dmt_one_way"] == pytest.approx(1.0, abs=1e-12)
    assert (r["n_reference"], r["n_generated"]) == (4, 4)


def test_reversed_motion_scores_minus_one():
    vel = [[1, 0.5], [2, 1], [0.5, 0.25]]                 # one direction, so every pair is reversed
    ref = linear_tracks(vel)
    gen = linear_tracks([[-a, -b] for a, b in vel])
    r = motion_fidelity(ref, ones(ref), gen, ones(gen))
    assert r["symmetric"] == pytest.approx(-1.0, abs=1e-12)
    assert r["dmt_one_way"] == pytest.approx(-1.0, abs=1e-12)


def test_perpendicular_motion_scores_zero():
    ref = linear_tracks([[1, 0]])
    gen = linear_tracks([[0, 3]])
    assert motion_fidelity(ref, ones(ref), gen, ones(gen))["symmetric"] == pytest.approx(0.0, abs=1e-12)


def test_static_points_follow_the_rule_without_nan():
    static = linear_tracks([[0, 0], [0, 0]])
    moving = linear_tracks([[1, 0], [0, 1]])
    both_static = motion_fidelity(static, ones(static), static.clone(), ones(static))
    assert both_static["symmetric"] == 1.0 and both_static["dmt_one_way"] == 1.0
    mixed = motion_fidelity(static, ones(static), moving, ones(moving))
    assert mixed["symmetric"] == 0.0 and mixed["dmt_one_way"] == 0.0
    # sub-threshold jitter counts as static (default static_px 0.5)
    jitter = static + 0.2 * torch.tensor([1.0, -1.0]) * (torch.arange(6) % 2)[:, None, None]
    assert motion_fidelity(static, ones(static), jitter, ones(jitter))["symmetric"] == 1.0
    # a track half static, half moving, against the same: per-step rule, still exactly 1
    half = torch.tensor([[[10.0, 10.0]], [[10, 10]], [[10, 10]], [[12, 10]], [[14, 10]], [[16, 10]]])
    r = motion_fidelity(half, ones(half), half.clone(), ones(half))
    assert r["symmetric"] == 1.0 and not any(math.isnan(v) for v in r.values())


def test_one_way_and_symmetric_differ_as_defined():
    # reference: one track moving right. generated: one right, one left.
    ref = linear_tracks([[1, 0]])
    gen = linear_tracks([[1, 0], [-1, 0]])
    r = motion_fidelity(ref, ones(ref), gen, ones(gen))
    # DMT one-way: mean over generated of max over reference = (1 + -1) / 2
    assert r["dmt_one_way"] == pytest.approx(0.0, abs=1e-12)
    # symmetric: ½(0 + mean over reference of max over generated = 1)
    assert r["symmetric"] == pytest.approx(0.5, abs=1e-12)


def test_visibility_masks_steps_and_drops_unseen_tracks():
    ref = linear_tracks([[1, 0], [0, 1]])
    gen = ref.clone()
    gen[3:, 0] = gen[3:, 0] - 100               # garbage after the track is lost...
    vis = ones(gen)
    vis[3:, 0] = False                          # ...which visibility excludes
    never = ones(gen)
    never[:, 1] = False
    never[::2, 1] = True                        # visible on no two consecutive frames
    r = motion_fidelity(ref, ones(ref), gen, vis & never)
    assert r["dmt_one_way"] == pytest.approx(1.0) and r["n_generated"] == 1
    with pytest.raises(ValueError, match="no pair"):
        motion_fidelity(ref, torch.zeros_like(ones(ref)), gen, vis)


@pytest.fixture(scope="module")
def shapes_clips():
    return generate_clips(ShapesOptions(count=6, size=64, frames=12))


def test_lk_follows_ground_truth_on_shapes(shapes_clips):
    for clip in shapes_clips[:1] + shapes_clips[3:4]:          # translate, pan
        start = clip.visibility[0]
        tracks, vis = lk_track(clip.frames, clip.tracks[0][start])
        gt, gt_vis = clip.tracks[:, start], clip.visibility[:, start]
        err = (tracks - gt).norm(dim=-1)[vis & gt_vis]
        assert (vis & gt_vis).sum() > 0.5 * gt_vis.sum(), clip.id     # LK keeps most visible points
        assert err.median() < 1.5, (clip.id, float(err.median()))
        assert motion_fidelity(gt, gt_vis, tracks, vis)["symmetric"] > 0.95


def test_identical_videos_score_one_with_lk_and_about_one_with_gt(isolated, shapes_clips):
    lk, gt = MotionFidelity(tracker="lk"), MotionFidelity(tracker="gt")
    for clip in shapes_clips:
        video = Video(clip.frames.clone())
        r = lk.score(video, clip)
        assert r["symmetric"] == 1.0 and r["dmt_one_way"] == 1.0, clip.id
        # gt: reference = exact tracks, generated = LK from the ground-truth frame-0 points
        r = gt.score(video, clip)
        assert r["symmetric"] > 0.9 and r["dmt_one_way"] > 0.9, (clip.id, r)
    assert gt.preprocessing()["tracker"] == "gt"
    assert gt.preprocessing()["generated_tracker"]["tracker"] == "lk"


def test_reversed_video_scores_low(isolated, shapes_clips):
    m = MotionFidelity(tracker="lk")
    pan = shapes_clips[3]                                      # every point moves: reversal -> about -1
    assert m.score(Video(pan.frames.flip(0).contiguous()), pan)["symmetric"] < -0.5
    # only the object moves: its reversed tracks find a static match (0), the background still
    # agrees (static-static = 1), so the score drops but stays positive
    translate = shapes_clips[0]
    r = m.score(Video(translate.frames.flip(0).contiguous()), translate)
    assert 0 < r["symmetric"] < 0.9


def test_reference_tracks_are_cached(isolated, shapes_clips):
    clip = shapes_clips[1]
    m = MotionFidelity(tracker="lk")
    m.score(Video(clip.frames.clone()), clip)
    m.score(Video(clip.frames.clone()), clip)
    assert (m.cache.misses, m.cache.hits) == (1, 1)


def test_auto_falls_back_to_lk_and_cotracker_reports_fix(isolated):
    auto = MotionFidelity()
    assert auto.available() is None and auto.preprocessing()["tracker"] == "lk"
    reason = MotionFidelity(tracker="cotracker").available()
    assert "motiongrid weights fetch cotracker" in reason and "weights import DIR" in reason
    clip = clip_of(torch.rand(4, 3, 16, 16))
    with pytest.raises(ValueError, match="no ground-truth tracks"):
        MotionFidelity(tracker="gt").score(Video(clip.frames), clip)
    with pytest.raises(ValueError, match="tracker"):
        MotionFidelity(tracker="raft")


FAKE_HUBCONF = '''
import torch

dependencies = ["torch"]
_URL = "https://huggingface.co/facebook/cotracker3/resolve/main/scaled_offline.pth"


def cotracker3_offline(pretrained=True, **kwargs):
    from cotracker.predictor import FakePredictor

    model = FakePredictor()
    if pretrained:  # as the real hubconf: through torch.hub's checkpoint cache
        model.load_state_dict(torch.hub.load_state_dict_from_url(_URL, map_location="cpu"))
    return model
'''

FAKE_PREDICTOR = '''
import torch


class FakePredictor(torch.nn.Module):
    """Stands in for CoTrackerPredictor: same call signature and output shapes; every point
    stays where it was queried (so any video scores as all-static)."""

    def __init__(self):
        super().__init__()
        self.marker = torch.nn.Parameter(torch.zeros(()))

    def forward(self, video, queries=None, grid_size=0, **kwargs):
        assert video.ndim == 5 and video.shape[2] == 3, video.shape
        assert float(video.max()) > 1.5, "CoTracker takes 0..255 input"
        b, t, _, h, w = video.shape
        if queries is None:
            ys, xs = torch.meshgrid(torch.linspace(0, h - 1, grid_size), torch.linspace(0, w - 1, grid_size),
                                    indexing="ij")
            points = torch.stack([xs.flatten(), ys.flatten()], -1)[None]
        else:
            assert queries.shape[-1] == 3 and float(queries[..., 0].abs().max()) == 0.0
            points = queries[..., 1:]
        tracks = points[:, None].expand(b, t, -1, -1).clone()
        return tracks, torch.ones(tracks.shape[:3], dtype=torch.bool)
'''


def test_cotracker_loads_from_imported_repo_and_checkpoint(isolated, monkeypatch):
    monkeypatch.setattr(motion, "_COTRACKER", {})
    transfer = isolated / "transfer"
    repo = stage(transfer, "cotracker-hub-repo")
    (repo / "cotracker").mkdir(parents=True)
    (repo / "hubconf.py").write_text(textwrap.dedent(FAKE_HUBCONF))
    (repo / "cotracker" / "__init__.py").write_text("")
    (repo / "cotracker" / "predictor.py").write_text(textwrap.dedent(FAKE_PREDICTOR))
    torch.save({"marker": torch.tensor(42.0)}, stage(transfer, "cotracker3-offline"))
    import_ok(transfer, "cotracker-hub-repo", "cotracker3-offline")

    def no_network(*a, **k):
        raise AssertionError("torch.hub tried to download")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)

    m = MotionFidelity(tracker="auto", grid_size=5)
    assert m.available() is None and m.preprocessing()["tracker"] == "cotracker"
    clip = generate_clips(ShapesOptions(count=1, size=32, frames=4))[0]
    r = m.score(Video(clip.frames.clone()), clip)
    assert m.model.marker.item() == 42.0                       # the checkpoint we placed was loaded
    assert r["symmetric"] == 1.0 and r["n_reference"] == 25
    gt = MotionFidelity(tracker="gt")                          # generated side through CoTracker queries
    assert gt.preprocessing()["generated_tracker"]["tracker"] == "cotracker"
    assert gt.score(Video(clip.frames.clone()), clip)["n_generated"] > 0


def test_moving_points_separate_frozen_from_faithful_on_a_flat_background(isolated):
    """On the toy world's flat background, points='moving' scores the reference 1 and a frozen
    first frame 0, where points='all' lets static background agreement lift the frozen video."""
    opts = ShapesOptions(count=2, size=24, frames=8, background="flat", kinds=("circle", "square"),
                         motions=("translate",), radius=(0.125, 0.166), speed=(0.042, 0.083),
                         striped=False, describe_motion=False, seed=1000)
    for clip in generate_clips(opts):
        frozen = Video(clip.frames[:1].expand_as(clip.frames).clone())
        for tracker in ("gt", "lk"):
            moving = MotionFidelity(tracker=tracker, points="moving")
            assert moving.score(Video(clip.frames.clone()), clip)["symmetric"] > 0.95, (clip.id, tracker)
            r = moving.score(frozen, clip)
            assert r["symmetric"] == 0.0 and r["n_generated"] == 0.0 or r["symmetric"] < 0.05, (clip.id, tracker, r)
        everything = MotionFidelity(tracker="gt", points="all").score(frozen, clip)
        assert everything["dmt_one_way"] > 0.9          # the failure mode points="moving" removes


def test_moving_points_need_a_moving_reference(isolated):
    tr = linear_tracks([[0, 0], [0, 0]])
    from motiongrid.metrics.motion import moving_tracks

    assert not moving_tracks(tr, ones(tr), 0.5).any()
    assert moving_tracks(linear_tracks([[1, 0], [0, 0]]), ones(tr), 0.5).tolist() == [True, False]
