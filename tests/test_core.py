"""Harness core: clip sets, config and grid validation, store, runner failure handling."""
from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from motiongrid.bench.api import Method, Params
from motiongrid.bench.config import ConfigError, load_config, parse_config
from motiongrid.bench.grid import expand_methods
from motiongrid.bench.registry import methods
from motiongrid.bench.runner import Runner
from motiongrid.bench.store import Store
from motiongrid.bench.video import Video, VideoError, read_video, write_video
from motiongrid.datasets.folder import FolderClipSet, ManifestError, export_clips
from motiongrid.datasets.shapes import COLOURS, ShapesOptions, generate_clips


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(textwrap.dedent(text))
    return path


# ---- shapes -------------------------------------------------------------------------

def test_shapes_deterministic_and_distinct():
    opts = ShapesOptions(count=3, size=32, frames=6, seed=7)
    a = generate_clips(opts)
    b = generate_clips(opts)
    assert [c.content_hash for c in a] == [c.content_hash for c in b]
    assert torch.equal(a[0].frames, b[0].frames)
    assert len({c.content_hash for c in a}) == 3
    other = generate_clips(ShapesOptions(count=3, size=32, frames=6, seed=8))
    assert a[0].content_hash != other[0].content_hash


def test_shapes_tracks_follow_the_object():
    """Object track points must land on object-coloured pixels in every frame they are visible."""
    opts = ShapesOptions(count=1, size=48, frames=8, background="flat", motions=("translate",), striped=False)
    clip = generate_clips(opts)[0]
    n_obj = clip.meta["object_points"]
    frames, tracks, vis = clip.frames, clip.tracks, clip.visibility
    colour = torch.tensor(COLOURS[clip.meta["spec"]["colour"]])
    for t in range(opts.frames):
        for x, y in tracks[t, :n_obj][vis[t, :n_obj]].round().long().tolist():
            assert torch.allclose(frames[t, :, y, x], colour, atol=0.05)
    # and the object actually moves by the specified velocity
    v = np.array(clip.meta["spec"]["velocity"])
    step = (tracks[1, :n_obj] - tracks[0, :n_obj]).mean(0).numpy()
    assert np.allclose(step, v, atol=1e-4)


def test_shapes_camera_pan_moves_background_tracks():
    opts = ShapesOptions(count=1, size=48, frames=6, motions=("pan",))
    clip = generate_clips(opts)[0]
    pan = np.array(clip.meta["spec"]["pan"])
    bg = clip.tracks[:, clip.meta["object_points"]:]
    assert np.allclose((bg[1] - bg[0]).numpy(), -pan, atol=1e-4)


def test_shapes_bad_option_names_allowed_values():
    with pytest.raises(ValueError, match="motions.*allowed values"):
        ShapesOptions(motions=("teleport",))


# ---- video I/O ----------------------------------------------------------------------

def test_video_roundtrip_is_lossless_in_uint8(tmp_path):
    frames = torch.rand(5, 3, 17, 23)  # odd sizes on purpose
    path = write_video(Video(frames, fps=8), tmp_path / "v.mp4")
    back = read_video(path)
    assert back.frames.shape == frames.shape
    assert (back.frames - frames).abs().max() <= 0.5 / 255 + 1e-6
    assert back.fps == 8


def test_corrupt_and_missing_video_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not an mp4 at all" * 10)
    with pytest.raises(VideoError, match="broken.mp4"):
        read_video(bad)
    with pytest.raises(VideoError, match="nope.mp4: file not found"):
        read_video(tmp_path / "nope.mp4")


# ---- folder clip set ----------------------------------------------------------------

def test_folder_clip_set_roundtrip_from_clips_make(tmp_path):
    clips = generate_clips(ShapesOptions(count=2, size=32, frames=5))
    export_clips(clips, tmp_path / "set")
    loaded = FolderClipSet(root=str(tmp_path / "set"), manifest="manifest.yaml").load()
    assert [c.id for c in loaded] == [c.id for c in clips]
    assert loaded[0].prompt == clips[0].prompt
    assert torch.equal(loaded[0].tracks, clips[0].tracks)
    assert (loaded[1].frames - clips[1].frames).abs().max() <= 0.5 / 255 + 1e-6


def test_manifest_path_cannot_escape_root(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    (tmp_path / "outside.mp4").write_bytes(b"x")
    (root / "manifest.csv").write_text("id,path,prompt\nevil,../outside.mp4,a prompt\n")
    with pytest.raises(ManifestError, match=r"'\.\./outside\.mp4' leaves the dataset root"):
        FolderClipSet(root=str(root)).load()
    (root / "manifest.csv").write_text(f"id,path,prompt\nevil,{tmp_path / 'outside.mp4'},a prompt\n")
    with pytest.raises(ManifestError, match="is absolute"):
        FolderClipSet(root=str(root)).load()


def test_manifest_missing_file_named(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    (root / "manifest.csv").write_text("id,path,prompt\nc1,missing.mp4,a prompt\n")
    with pytest.raises(ManifestError, match="clip 'c1'.*missing.mp4 not found"):
        FolderClipSet(root=str(root)).load()


def test_davis_layout(tmp_path):
    import cv2

    seq = tmp_path / "JPEGImages" / "480p" / "bear"
    seq.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(seq / f"{i:05d}.jpg"), np.full((24, 32, 3), 40 * i, np.uint8))
    (tmp_path / "prompts.yaml").write_text("- {id: bear, prompt: a bear walking}\n")
    from motiongrid.datasets.folder import DavisClipSet

    clip = DavisClipSet(root=str(tmp_path), manifest="prompts.yaml").load()[0]
    assert clip.frames.shape == (3, 3, 24, 32)
    assert clip.prompt == "a bear walking"


# ---- config and grid ----------------------------------------------------------------

class _ParamMethod(Method):
    class Params(Params):
        k: int = 1
        mode: str = "primary"
        blocks: list[str] = ["up_blocks.1"]

    def generate(self, clip, params, seed):
        return Video(clip.frames.clone(), 8)


def test_grid_lists_expand_and_list_params_take_lists_of_lists():
    cfg = parse_config({"methods": [{"name": "_test_params", "params": {
        "k": [1, 2], "mode": ["plain", "primary"], "blocks": [["a"], ["a", "b"]]}}]})
    variants = expand_methods(cfg, "t.toml")
    assert len(variants) == 8
    assert {v.params.k for v in variants} == {1, 2}
    assert ["a", "b"] in [v.params.blocks for v in variants]
    one = expand_methods(parse_config({"methods": [{"name": "_test_params", "params": {"blocks": ["x", "y"]}}]}), "t")
    assert len(one) == 1 and one[0].params.blocks == ["x", "y"]
    assert one[0].label == "_test_params(blocks=['x', 'y'])"


def test_unknown_method_error_names_it_and_lists_available(tmp_path):
    path = write_config(tmp_path, """
        [[methods]]
        name = "motionklone"
    """)
    cfg, src = load_config(path)
    with pytest.raises(ConfigError, match=r"grid.toml: methods\[0\].name: unknown method 'motionklone' "
                                          r"\(did you mean 'motionclone'\?\); available: .*reference"):
        expand_methods(cfg, src)


def test_wrong_param_type_error_names_key_and_allowed(tmp_path):
    cfg = parse_config({"methods": [{"name": "_test_params", "params": {"k": "three"}}]})
    with pytest.raises(ConfigError, match=r"(?s)methods\[0\] \(_test_params\)\.params: k: .*'three'.*allowed params: k: int = 1"):
        expand_methods(cfg, "grid.toml")
    cfg = parse_config({"methods": [{"name": "_test_params", "params": {"kk": 1}}]})
    with pytest.raises(ConfigError, match="kk: unknown parameter"):
        expand_methods(cfg, "grid.toml")


def test_config_schema_errors_name_file_and_key(tmp_path):
    path = write_config(tmp_path, """
        device = "tpu"
        colour = 3
        [[methods]]
        name = "static"
    """)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "grid.toml" in text and "device" in text and "'auto', 'cpu' or 'cuda'" in text
    assert "colour: unknown key" in text
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_default_config_is_valid():
    cfg, source = load_config(None)
    assert "embedded default" in source
    assert expand_methods(cfg, source)


# ---- runner failure handling --------------------------------------------------------

class _FlakyMethod(Method):
    """Fails on one clip, returns NaN on another, works elsewhere."""
    def generate(self, clip, params, seed):
        if clip.id.endswith("-rotate"):
            raise RuntimeError("boom on purpose")
        frames = clip.frames.clone()
        if clip.id.endswith("-scale"):
            frames[0, 0, 0, 0] = float("nan")
        return Video(frames, 8)


def _runner(tmp_path, methods_toml, limit=3, metrics='[]'):
    path = write_config(tmp_path, f"""
        seeds = [0]
        metrics = {metrics}
        [clips]
        set = "shapes"
        options = {{ size = 32, frames = 6 }}
        {methods_toml}
    """)
    cfg, src = load_config(path)
    return Runner(cfg, src, tmp_path / "run", limit=limit, device="cpu", progress=False)


def test_failing_cells_are_stored_with_reasons_and_run_completes(tmp_path):
    runner = _runner(tmp_path, '[[methods]]\nname = "_test_flaky"\n[[methods]]\nname = "static"')
    summary = runner.run()
    assert summary.failed == 2 and summary.ok == 4
    rows = {(r["label"], r["clip_id"]): r for r in Store(tmp_path / "run" / "results.sqlite").rows()}
    assert "boom on purpose" in rows[("_test_flaky", "shapes-001-rotate")]["reason"]
    assert "NaN" in rows[("_test_flaky", "shapes-002-scale")]["reason"]
    assert rows[("static", "shapes-001-rotate")]["status"] == "ok"
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["cells"] == {"total": 6, "ok": 4, "failed": 2}
    # a second invocation retries only the failed cells and keeps the finished ones
    before = {k: r["finished_at"] for k, r in rows.items() if r["status"] == "ok"}
    summary2 = _runner(tmp_path, '[[methods]]\nname = "_test_flaky"\n[[methods]]\nname = "static"').run()
    assert summary2.skipped == 4 and summary2.failed == 2
    conn = sqlite3.connect(tmp_path / "run" / "results.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 6
    after = dict(((label, c), f) for label, c, f in conn.execute("SELECT label, clip_id, finished_at FROM cells WHERE status='ok'"))
    assert after == before


def test_prepare_failure_fails_that_methods_cells_only(tmp_path, throwaway_methods):
    @throwaway_methods.register("_test_noprep")
    class _NoPrep(Method):
        def prepare(self, device, weights=None):
            raise FileNotFoundError("weights missing: run `motiongrid weights fetch x`")

    summary = _runner(tmp_path, '[[methods]]\nname = "_test_noprep"\n[[methods]]\nname = "reference"', limit=2).run()
    assert summary.failed == 2 and summary.ok == 2


class _WeightsMethod(Method):
    """Its output depends on 'loaded weights' identified by a class attribute."""
    version = "v1"

    def fingerprint(self, params):
        if self.version == "missing":
            raise FileNotFoundError("weights gone: run `motiongrid weights fetch w`")
        return {"weights": self.version}

    def generate(self, clip, params, seed):
        return Video(clip.frames.clone(), 8)


def test_changed_weights_never_reuse_finished_cells(tmp_path):
    toml = '[[methods]]\nname = "_test_weights"'
    first = _runner(tmp_path, toml, limit=2).run()
    assert first.ok == 2
    assert _runner(tmp_path, toml, limit=2).run().skipped == 2          # same weights: resumed
    _WeightsMethod.version = "v2"
    try:
        again = _runner(tmp_path, toml, limit=2).run()
        assert again.skipped == 0 and again.ok == 2                     # new weights: recomputed
        _WeightsMethod.version = "missing"
        gone = _runner(tmp_path, toml, limit=2).run()
        assert gone.failed == 2
    finally:
        _WeightsMethod.version = "v1"
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "weights gone" in run["methods"]["_test_weights"]["fingerprint"]["unavailable"]


def test_metric_returning_a_non_number_errors_alone(tmp_path):
    """A metric whose result is not a number is stored as that metric's error; the cell and
    the other metrics' numbers survive."""
    from motiongrid.bench.api import Metric
    from motiongrid.bench.scoring import build_metrics, score_video

    class _Bad(Metric):  # not registered: other tests list every registered metric
        name = "_test_bad_metric"

        def score(self, generated, clip):
            return {"value": "not a number"}

    clip = generate_clips(ShapesOptions(count=1, size=16, frames=3))[0]
    (psnr,), _ = build_metrics(["psnr"])
    values, errors = score_video([_Bad(), psnr], Video(clip.frames.clone()), clip)
    assert values["_test_bad_metric"] is None and "ValueError" in errors["_test_bad_metric"]
    assert values["psnr"] == 100.0


@pytest.fixture(autouse=True, scope="module")
def _test_methods():
    """This module's throwaway methods exist only while its tests run."""
    mine = {"_test_params": _ParamMethod, "_test_flaky": _FlakyMethod, "_test_weights": _WeightsMethod}
    for name, cls in mine.items():
        methods.register(name)(cls)
    yield
    for name in mine:
        methods.unregister(name)
