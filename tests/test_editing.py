"""The editing task: the toy editing world's exact ground truth, the released case layout on
disk, task checks, scoring against the ground truth (never the source), set-level FID."""
from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch
from metric_helpers import import_ok, save_inception_standin, stage

from motiongrid.bench.config import ConfigError, load_config
from motiongrid.bench.runner import Runner
from motiongrid.bench.store import Store
from motiongrid.bench.video import VideoError, from_uint8, read_video, to_uint8, write_video
from motiongrid.datasets.folder import FolderClipSet, ManifestError, export_clips
from motiongrid.datasets.shapes import COLOURS, FLAT_BACKGROUND, PRESETS, ShapesClipSet, ShapesOptions, _Scene, generate_clips
from motiongrid.metrics.fid import FID

EDIT = dict(PRESETS["edit"], count=6, seed=1000)


def edit_clips(**overrides):
    return ShapesClipSet(**{**EDIT, **overrides}).load()


def quantised(x: torch.Tensor) -> torch.Tensor:
    return from_uint8(to_uint8(x))


# ---- the toy editing world ---------------------------------------------------------------

def test_ground_truth_is_the_source_object_along_a_new_trajectory():
    for clip in edit_clips():
        spec, target = clip.meta["spec"], clip.meta["target_spec"]
        assert target["position"] == spec["position"]                    # same start
        assert {k: v for k, v in target.items() if k != "velocity"} == {k: v for k, v in spec.items() if k != "velocity"}
        v0, v1 = np.array(spec["velocity"]), np.array(target["velocity"])
        turn = np.degrees(np.arccos(v0 @ v1 / np.linalg.norm(v0) / np.linalg.norm(v1)))
        assert turn >= 60 - 1e-6                                          # a new heading
        lo, hi = np.array(PRESETS["toy"]["speed"]) * 24
        assert lo - 1e-9 <= np.linalg.norm(v1) <= hi + 1e-9               # the same speed range
        gt = clip.scoring_reference()
        assert torch.equal(gt.frames[0], clip.frames[0])                  # frame 0 is shared
        assert not torch.equal(gt.frames[-1], clip.frames[-1])
        # exact ground-truth tracks follow the target trajectory and stay in frame
        n_obj = clip.meta["object_points"]
        centre = gt.tracks[:, :n_obj].mean(1)
        want = np.array(spec["position"]) + np.arange(8)[:, None] * v1
        np.testing.assert_allclose(centre.numpy(), want, atol=1e-4)
        assert gt.visibility[:, :n_obj].all()


def test_masks_are_the_rendered_silhouettes_and_dilation_grows_t():
    clip = edit_clips()[0]
    inputs = clip.edit.inputs(clip)
    spec, target = clip.meta["spec"], clip.meta["target_spec"]
    for masks, sp in ((inputs.source_masks, spec), (inputs.target_masks, target)):
        ys, xs = np.nonzero(masks[5].numpy())
        want = np.array(sp["position"]) + 5 * np.array(sp["velocity"])
        assert abs(xs.mean() - want[0]) < 0.5 and abs(ys.mean() - want[1]) < 0.5
    # S covers the object pixels of the source; T those of the ground truth
    gt = clip.scoring_reference().frames
    background = torch.tensor(FLAT_BACKGROUND)[:, None, None]
    moved = (gt - background).abs().amax(1) > 0.5
    assert (inputs.target_masks | ~moved).all()
    dilated = edit_clips(target_mask_dilate=2)[0]
    t2 = dilated.edit.inputs(dilated).target_masks
    assert (t2 | ~inputs.target_masks).all() and t2.sum() > inputs.target_masks.sum()
    assert torch.equal(dilated.edit.inputs(dilated).source_masks, inputs.source_masks)   # only T dilates


def test_pose_carries_position_size_orientation_but_not_colour_or_shape():
    opts = ShapesOptions(**{**{k: v for k, v in EDIT.items() if k != "preset"}, "count": 1})
    clip = generate_clips(opts)[0]
    from motiongrid.datasets.shapes import ClipSpec

    spec = ClipSpec(**{**clip.meta["spec"], "position": tuple(clip.meta["spec"]["position"]),
                       "velocity": tuple(clip.meta["spec"]["velocity"]), "pan": tuple(clip.meta["spec"]["pan"])})
    poses = _Scene(spec, opts).poses()
    other = replace(spec, colour="yellow" if spec.colour != "yellow" else "red",
                    kind="square" if spec.kind == "circle" else "circle")
    assert torch.equal(_Scene(other, opts).poses(), poses)                           # no colour, no shape
    assert not torch.equal(_Scene(replace(spec, angle=spec.angle + 0.7), opts).poses(), poses)   # orientation
    assert not torch.equal(_Scene(replace(spec, radius=spec.radius * 1.4), opts).poses(), poses)  # size
    # the skeleton is symmetric about the object's centre: its ink's centroid is the centre
    ink = poses[3].amax(0).double()
    ys, xs = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    got = np.array([float((ink * xs).sum() / ink.sum()), float((ink * ys).sum() / ink.sum())])
    want = np.array(spec.position) + 3 * np.array(spec.velocity)
    assert np.hypot(*(got - want)) < 0.5
    # pose pixels never take an object's colour
    lit = poses.permute(0, 2, 3, 1).reshape(-1, 3)
    lit = lit[lit.amax(1) > 0.95]
    for colour in COLOURS.values():
        assert (lit - torch.tensor(colour)).abs().amax(1).min() > 0.05


def test_edit_option_errors_name_the_option():
    with pytest.raises(ValueError, match="edit=true needs motions"):
        ShapesClipSet(preset="edit", motions=["rotate"]).load()
    with pytest.raises(ValueError, match="target_mask_dilate"):
        ShapesClipSet(preset="edit", target_mask_dilate=-1).load()


# ---- on disk: the released case layout ----------------------------------------------------

def test_clips_make_edit_cases_round_trip_through_folder(tmp_path):
    clips = edit_clips(count=3)
    export_clips(clips, tmp_path / "set")
    case = tmp_path / "set" / clips[0].id
    assert sorted(p.name for p in case.iterdir()) == sorted(
        ["source_images", "source_poses", "target_aligned_poses", "source_masks", "predicted_masks",
         "ground_truth", "ground_truth_tracks.npz"])
    assert (case / "source_images" / "frame_7.png").is_file()              # the released naming
    back = FolderClipSet(root=str(tmp_path / "set"), manifest="manifest.yaml").load()
    assert [c.id for c in back] == [c.id for c in clips]
    for a, b in zip(clips, back):
        ia, ib = a.edit.inputs(a), b.edit.inputs(b)
        assert b.prompt == a.prompt and b.target_prompt == a.target_prompt
        assert torch.equal(b.frames, quantised(a.frames))
        for name in ("source_poses", "target_poses"):
            assert torch.equal(getattr(ib, name), quantised(getattr(ia, name)))
        for name in ("source_masks", "target_masks"):
            assert torch.equal(getattr(ib, name), getattr(ia, name))
        assert torch.equal(b.scoring_reference().frames, quantised(a.scoring_reference().frames))
        assert torch.equal(b.edit.ground_truth_tracks, a.edit.ground_truth_tracks)
    # exporting what was read gives the same files: the layout is a fixed point
    export_clips(back, tmp_path / "again")
    again = FolderClipSet(root=str(tmp_path / "again"), manifest="manifest.yaml").load()
    assert [c.content_hash for c in again] == [c.content_hash for c in back]


def test_frames_are_read_in_numeric_order(tmp_path):
    frames = torch.linspace(0, 1, 12)[:, None, None, None].expand(12, 3, 4, 4).contiguous()
    folder = tmp_path / "frames"
    folder.mkdir()
    import cv2

    for i, img in enumerate(to_uint8(frames).permute(0, 2, 3, 1).numpy()):
        cv2.imwrite(str(folder / f"frame_{i}.png"), img)                   # frame_10 sorts before frame_2 as text
    got = read_video(folder).frames[:, 0, 0, 0]
    assert torch.equal(got, quantised(frames)[:, 0, 0, 0])


def test_case_folder_missing_inputs_is_one_error_naming_them(tmp_path):
    export_clips(edit_clips(count=1), tmp_path / "set")
    shutil.rmtree(tmp_path / "set" / "shapes-edit-000" / "predicted_masks")
    with pytest.raises(ManifestError, match=r"lacks \['predicted_masks'\]"):
        FolderClipSet(root=str(tmp_path / "set"), manifest="manifest.yaml").load()


def test_inputs_that_do_not_match_the_source_are_a_clear_error(tmp_path):
    export_clips(edit_clips(count=1), tmp_path / "set")
    (tmp_path / "set" / "shapes-edit-000" / "source_masks" / "frame_7.png").unlink()
    clip = FolderClipSet(root=str(tmp_path / "set"), manifest="manifest.yaml").load()[0]
    with pytest.raises(VideoError, match=r"shapes-edit-000.*source_masks has shape \(7, 24, 24\), expected \(8, 24, 24\)"):
        clip.edit.inputs(clip)


# ---- running an editing grid --------------------------------------------------------------

def _runner(tmp_path, methods: str, clips: str, metrics='["psnr", "l1", "motion_fidelity"]', limit=3, extra=""):
    path = tmp_path / "grid.toml"
    # options only for a metric the grid scores (others are a config error: a typo until proven otherwise)
    motion = '[metric_options.motion_fidelity]\ntracker = "gt"\npoints = "moving"' if "motion_fidelity" in metrics else ""
    path.write_text(textwrap.dedent(f"""
        seeds = [0]
        metrics = {metrics}
        [clips]
        {clips}
        {methods}
    """) + f"{motion}\n{extra}\n")
    cfg, src = load_config(path)
    return Runner(cfg, src, tmp_path / "run", limit=limit, device="cpu", progress=False)


EDIT_SET = 'set = "shapes"\noptions = { preset = "edit", seed = 1000, count = 4 }'
TOY_SET = 'set = "shapes"\noptions = { preset = "toy", seed = 1000, count = 4 }'


def test_editing_method_on_clips_without_editing_inputs_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"source edits videos \(task 'edit'\) but clip 'shapes-000-translate'"):
        _runner(tmp_path, '[[methods]]\nname = "source"', TOY_SET)
    with pytest.raises(ConfigError, match=r"motionclone\(.*\) clones a reference video's motion.*editing case"):
        _runner(tmp_path, '[[methods]]\nname = "motionclone"\nparams = { model = "toy" }', EDIT_SET)
    _runner(tmp_path, '[[methods]]\nname = "static"\n[[methods]]\nname = "reference"', EDIT_SET)   # baselines: both


def test_edit_cells_are_scored_against_the_ground_truth_not_the_source(tmp_path):
    runner = _runner(tmp_path, '[[methods]]\nname = "source"\n[[methods]]\nname = "reference"', EDIT_SET)
    assert runner.run().ok == 6
    rows = {(r["label"], r["clip_id"]): r["metrics"] for r in Store(tmp_path / "run" / "results.sqlite").rows()}
    for clip in runner.clips:
        src, gt = clip.frames.double(), clip.scoring_reference().frames.double()
        want_l1 = float((src - gt).abs().mean())
        assert rows[("source", clip.id)]["l1"] == pytest.approx(want_l1, abs=1e-6)     # vs ground truth
        assert rows[("source", clip.id)]["psnr"] < 40                                    # vs source it'd be 100
        assert rows[("source", clip.id)]["motion_fidelity.symmetric"] < 0.6
        assert rows[("reference", clip.id)]["psnr"] == 100.0 and rows[("reference", clip.id)]["l1"] == 0.0
        assert rows[("reference", clip.id)]["motion_fidelity.symmetric"] > 0.99
        assert not torch.equal(src, gt)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert {m: i["reference"] for m, i in run["metrics"].items()} == {
        m: "the ground-truth edited video (not the source)" for m in ("psnr", "l1", "motion_fidelity")}
    assert all(c["edit"] for c in run["clip_set"]["clips"])
    # the reference preview is the ground truth
    preview = read_video(tmp_path / "run" / run["reference_videos"][runner.clips[0].id]).frames
    assert torch.equal(preview, quantised(runner.clips[0].scoring_reference().frames))


def test_edit_case_without_ground_truth_fails_reference_metrics_with_the_reason(tmp_path):
    export_clips(edit_clips(count=1), tmp_path / "set")
    shutil.rmtree(tmp_path / "set" / "shapes-edit-000" / "ground_truth")
    runner = _runner(tmp_path, '[[methods]]\nname = "source"\n[[methods]]\nname = "reference"',
                     f'set = "folder"\noptions = {{ root = "{tmp_path / "set"}", manifest = "manifest.yaml" }}',
                     metrics='["psnr"]')
    runner.run()
    rows = {r["label"]: r for r in Store(tmp_path / "run" / "results.sqlite").rows()}
    assert rows["source"]["status"] == "ok" and rows["source"]["metrics"]["psnr"] is None
    assert "without a ground-truth edit" in rows["source"]["metric_errors"]["psnr"]
    assert rows["reference"]["status"] == "failed" and "without a ground-truth edit" in rows["reference"]["reason"]


def test_set_level_fid_is_stored_per_label_and_shown_in_the_report(isolated, tmp_path):
    transfer = isolated / "transfer"
    save_inception_standin(stage(transfer, "cleanfid-inception"))
    import_ok(transfer, "cleanfid-inception")
    methods = '[[methods]]\nname = "source"\n[[methods]]\nname = "reference"'
    extra = "[metric_options.fid]\nmin_samples = 4"
    runner = _runner(tmp_path, methods, EDIT_SET, metrics='["fid"]', extra=extra)
    runner.run()
    store = Store(tmp_path / "run" / "results.sqlite", readonly=True)
    sets = {r["label"]: r for r in store.set_rows()}
    assert set(sets) == {"source", "reference"} and all(r["metric"] == "fid" for r in sets.values())
    assert sets["source"]["n_cells"] == 3 and sets["source"]["result"]["fid.n_generated"] == 24
    assert sets["reference"]["result"]["fid.value"] == pytest.approx(0.0, abs=1e-3)
    # the same number as FID.score_set over the stored videos and the ground truths
    pairs = [(read_video(tmp_path / "run" / r["artifact"]), next(c for c in runner.clips if c.id == r["clip_id"]).scoring_reference())
             for r in store.rows() if r["label"] == "source"]
    direct = FID(min_samples=4).score_set(pairs)
    assert sets["source"]["result"]["fid.value"] == pytest.approx(direct["value"], rel=1e-6)
    assert sets["source"]["result"]["fid.value"] > 1e-3
    store.close()
    # a resumed run does not recompute an unchanged set
    stamp = sets["source"]["finished_at"]
    _runner(tmp_path, methods, EDIT_SET, metrics='["fid"]', extra=extra).run()
    with Store(tmp_path / "run" / "results.sqlite", readonly=True) as s:
        assert {r["label"]: r["finished_at"] for r in s.set_rows()}["source"] == stamp
    # ... but one more clip changes the set, so the value is recomputed over 4 cells
    _runner(tmp_path, methods, EDIT_SET, metrics='["fid"]', extra=extra, limit=4).run()
    with Store(tmp_path / "run" / "results.sqlite", readonly=True) as s:
        assert {r["label"]: r["n_cells"] for r in s.set_rows()} == {"source": 4, "reference": 4}
    from motiongrid.reports.report import write_report

    md, _ = write_report(tmp_path / "run", previews=0)
    text = md.read_text()
    assert "### Set-level metrics" in text and "| source |" in text.split("### Set-level metrics")[1]
    assert "4 cells, 32 frames" in text
    assert "the ground-truth edited video (not the source)" in text


def test_set_level_metric_unavailable_is_reported_with_its_reason(isolated, tmp_path):
    _runner(tmp_path, '[[methods]]\nname = "source"', EDIT_SET, metrics='["psnr", "fid"]', limit=1).run()
    with Store(tmp_path / "run" / "results.sqlite", readonly=True) as s:
        assert s.set_rows() == []
    from motiongrid.reports.report import write_report

    text = write_report(tmp_path / "run", previews=0)[0].read_text()
    assert "**fid**: unavailable, so no set-level value" in text
    assert "motiongrid weights fetch cleanfid-inception" in text


def test_video_written_and_read_back_keeps_edit_scoring_exact(tmp_path):
    # the set-level path reads stored videos back: lossless in uint8, as scored
    clip = edit_clips(count=1)[0]
    gt = clip.scoring_reference().video
    write_video(gt, tmp_path / "gt.mp4")
    assert torch.equal(read_video(tmp_path / "gt.mp4").frames, quantised(gt.frames))


def test_plain_toy_clips_keep_the_hashes_committed_runs_recorded():
    """Editing options must not change plain clips' identity: the committed CI baseline and
    results/toy-full key their cells by these hashes (a change would orphan every cell)."""
    from pathlib import Path

    recorded = {c["id"]: c["hash"] for c in json.loads((Path(__file__).parent.parent / "ci" / "baseline" / "run.json")
                                                       .read_text())["clip_set"]["clips"]}
    clips = ShapesClipSet(preset="toy", seed=1000, count=16).load()
    assert recorded and {c.id: c.content_hash for c in clips if c.id in recorded} == recorded
