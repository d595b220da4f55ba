"""motion_fidelity's location-aware variant (issue 26): ``paired`` and ``endpoint_error`` on
analytic tracks, against the diagonal of DMT's similarity matrix, and on the "opposing" shapes
preset, where DMT's location-agnostic matching cannot tell a video from itself played backwards."""
import json
import math

import pytest
import torch

from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import PRESETS, ShapesClipSet
from motiongrid.metrics.motion import MotionFidelity, motion_fidelity, paired_fidelity, track_similarity


def linear(velocities, frames=6, start=None):
    v = torch.tensor(velocities, dtype=torch.float64)
    start = torch.full_like(v, 10.0) if start is None else torch.tensor(start, dtype=torch.float64)
    return start[None] + torch.arange(frames, dtype=torch.float64)[:, None, None] * v[None]


def ones(tracks):
    return torch.ones(tracks.shape[:2], dtype=torch.bool)


def test_paired_on_analytic_tracks():
    ref = linear([[1, 0], [0, 2], [-1.5, 1.5]])
    same = paired_fidelity(ref, ones(ref), ref.clone(), ones(ref), (30, 40))
    assert same == {"paired": 1.0, "endpoint_error": 0.0, "n_paired": 3.0}
    back = linear([[-1, 0], [0, -2], [1.5, -1.5]])      # the same start points, every step reversed
    assert paired_fidelity(ref, ones(ref), back, ones(back), (30, 40))["paired"] == pytest.approx(-1.0, abs=1e-12)
    frozen = linear([[0, 0]] * 3)
    assert paired_fidelity(ref, ones(ref), frozen, ones(frozen), (30, 40))["paired"] == 0.0
    # a constant (3, 4) px offset on a 30x40 frame (diagonal 50): 5 / 50 at every frame
    shifted = ref + torch.tensor([3.0, 4.0], dtype=torch.float64)
    r = paired_fidelity(ref, ones(ref), shifted, ones(ref), (30, 40))
    assert r["paired"] == pytest.approx(1.0) and r["endpoint_error"] == pytest.approx(0.1, abs=1e-12)


def test_paired_is_the_diagonal_of_dmt_similarity_with_visibility():
    """sim(n, n) of the DMT similarity (the released rule, steps both see) is the paired value."""
    g = torch.Generator().manual_seed(0)
    ref = torch.cumsum(torch.randn(9, 7, 2, generator=g, dtype=torch.float64), 0)
    gen = ref + torch.randn(9, 7, 2, generator=g, dtype=torch.float64)
    gen[:, 5] = gen[:1, 5]                                # one generated track at rest
    rv, gv = torch.rand(9, 7, generator=g) > 0.2, torch.rand(9, 7, generator=g) > 0.2
    sim, defined = track_similarity(ref, rv, gen, gv, 0.5)
    expected = sim.diagonal()[defined.diagonal()].mean()
    got = paired_fidelity(ref, rv, gen, gv, (64, 64))
    assert got["paired"] == pytest.approx(float(expected), abs=1e-12)
    assert got["n_paired"] == float(defined.diagonal().sum())
    both = (rv & gv)[1:]
    epe = (gen - ref)[1:].norm(dim=-1)[both].mean() / math.hypot(64, 64)
    assert got["endpoint_error"] == pytest.approx(float(epe), abs=1e-12)


def test_opposite_motions_fool_dmt_but_not_the_paired_variant():
    """Exact tracks of a scene with two opposite motions: playing it backwards swaps them, so
    every reversed track finds a perfect match elsewhere (DMT 1.0); its own partner says -1."""
    ref = linear([[1, 0]] * 4 + [[-1, 0]] * 4, start=[[5, y] for y in range(8)])
    backwards = linear([[-1, 0]] * 4 + [[1, 0]] * 4, start=[[5, y] for y in range(8)])
    dmt = motion_fidelity(ref, ones(ref), backwards, ones(backwards))
    assert dmt["symmetric"] == 1.0 and dmt["dmt_one_way"] == 1.0
    assert paired_fidelity(ref, ones(ref), backwards, ones(backwards), (16, 16))["paired"] == -1.0


@pytest.fixture(scope="module")
def opposing():
    return ShapesClipSet(preset="opposing", count=2).load()


def test_opposing_preset_has_exact_opposite_tracks(opposing):
    for clip in opposing:
        spec = clip.meta["spec"]
        n_obj = clip.meta["object_points"]
        steps = clip.tracks[1:] - clip.tracks[:-1]
        both = clip.visibility[1:] & clip.visibility[:-1]
        pan = torch.tensor(spec["pan"], dtype=torch.float32)
        assert pan.norm() >= PRESETS["opposing"]["speed"][0] * PRESETS["opposing"]["size"] - 1e-4
        obj, bg = steps[:, :n_obj][both[:, :n_obj]], steps[:, n_obj:][both[:, n_obj:]]
        assert len(obj) and len(bg)
        torch.testing.assert_close(obj, pan.expand_as(obj), atol=1e-4, rtol=0)      # object: +pan on screen
        torch.testing.assert_close(bg, (-pan).expand_as(bg), atol=1e-4, rtol=0)     # background: -pan


@pytest.mark.parametrize("options", [{"tracker": "gt"}, {"tracker": "lk", "grid_size": 12},
                                     {"tracker": "lk", "grid_size": 12, "points": "moving"}])
def test_paired_orders_same_frozen_reversed_on_opposing_motion(isolated, opposing, options):
    metric = MotionFidelity(**options)
    for clip in opposing:
        f = clip.frames
        same, frozen, backwards = (metric.score(Video(v.contiguous()), clip)
                                   for v in (f.clone(), f[:1].expand_as(f), f.flip(0)))
        assert same["paired"] > frozen["paired"] > backwards["paired"], (clip.id, options)
        assert backwards["paired"] < 0, (clip.id, options, backwards)
        assert same["endpoint_error"] < frozen["endpoint_error"] and same["endpoint_error"] < backwards["endpoint_error"]
        # the weakness the paired variant exists for: DMT scores the reversed video near 1
        assert backwards["symmetric"] > 0.9 and backwards["dmt_one_way"] > 0.85, (clip.id, backwards)


def test_dmt_variants_are_the_released_formula_on_the_metrics_own_tracks(isolated, opposing):
    """Adding the paired keys changed nothing in DMT's: they are motion_fidelity() (pinned to the
    released code in test_metrics_motion.py) of the very tracks the metric scored."""
    for options in ({"tracker": "lk", "grid_size": 12}, {"tracker": "gt"}):
        metric = MotionFidelity(**options)
        clip = opposing[0]
        video = Video(clip.frames.flip(0).contiguous())
        t = metric.tracks(video, clip)
        expected = motion_fidelity(t.ref_tracks, t.ref_vis, t.gen_tracks, t.gen_vis, 0.5)
        got = metric.score(video, clip)
        assert {k: got[k] for k in expected} == expected


def test_reports_lead_with_the_recorded_headline_and_explain_each_variant(tmp_path):
    """run.json records the headline key, endpoint_error's direction and one line per key
    (provenance's _key_info of the metric class); the report leads with paired, marks
    endpoint_error lower-is-better and prints what each variant measures."""
    from synthetic_run import make_run

    from motiongrid.bench.provenance import _key_info
    from motiongrid.reports.aggregate import pick_headline
    from motiongrid.reports.data import load_run
    from motiongrid.reports.report import write_report

    def tweak(label, clip_id, seed, values):
        values["motion_fidelity.paired"] = -0.5 if label == "static" else 0.9
        values["motion_fidelity.endpoint_error"] = 0.1

    run = make_run(tmp_path / "run", tweak=tweak, videos=False)
    meta = json.loads((run / "run.json").read_text())
    meta["metrics"]["motion_fidelity"].update(_key_info(MotionFidelity))
    (run / "run.json").write_text(json.dumps(meta))
    data = load_run(run)
    assert pick_headline(data) == "motion_fidelity.paired"
    assert data.metric_info("motion_fidelity.endpoint_error").higher_is_better is False
    assert data.metric_info("motion_fidelity.paired").higher_is_better is True
    write_report(run, tmp_path / "report", previews=0)
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Headline metric: **motion\\_fidelity.paired ↑**" in md or "Headline metric: **motion_fidelity.paired ↑**" in md
    for key in ("paired", "endpoint_error", "symmetric"):
        assert MotionFidelity.key_descriptions[key].split(":")[0][:30] in md.replace("\\", ""), key
    assert "endpoint\\_error** ↓" in md or "endpoint_error** ↓" in md
