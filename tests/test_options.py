"""Typed options (issue 19's contract, issue 24 class 2 "every option is checked", issue 26's
`score --option`): a misspelt key, an option for a metric not scored, NaN/inf, a seed no store
can hold are config errors that name the key and the fix; listings and parsers read the types."""
import json
import re
from pathlib import Path

import pytest
from pydantic import Field

from motiongrid.bench.api import Metric, MetricOptions, OptionsError
from motiongrid.bench.cli import main
from motiongrid.bench.config import ConfigError, parse_config
from motiongrid.bench.registry import metrics
from motiongrid.bench.scoring import build_metrics
from motiongrid.bench.video import Video, write_video
from motiongrid.datasets.shapes import ShapesOptions, generate_clips
from motiongrid.metrics.motion import MotionFidelity

GRID = """seeds = [0]
metrics = ["psnr", "motion_fidelity"]
[clips]
set = "shapes"
limit = 1
options = {{ size = 16, frames = 4, count = 1 {clip_options} }}
[[methods]]
name = "static"
{extra}
"""


def _run(tmp_path: Path, capsys, extra: str = "", clip_options: str = "") -> tuple[int, str]:
    config = tmp_path / "grid.toml"
    config.write_text(GRID.format(extra=extra, clip_options=clip_options))
    code = main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"])
    return code, capsys.readouterr().err


M, C = "[metric_options.motion_fidelity]\n", "clips.options: clip set 'shapes': "


@pytest.mark.parametrize("extra, clip_options, expected", [
    (M + 'trackr = "lk"', "",
     r"metric_options: metric 'motion_fidelity': unknown option 'trackr'; did you mean 'tracker'\?; allowed options: .*tracker"),
    ('[metric_options.motion_fidelty]\ntracker = "lk"', "",
     r"metric_options: options given for 'motion_fidelty', which is not among the metrics scored .*did you mean 'motion_fidelity'"),
    ('[metric_options.ssim]\nborder = "valid"', "", r"options given for 'ssim', which is not among the metrics scored"),
    (M + "static_px = nan", "", r"static_px: Input should be a finite number"),
    (M + "lk_fb_px = inf", "", r"lk_fb_px: Input should be a finite number"),
    (M + 'tracker = "kl"', "", r"tracker: Input should be 'auto', 'cotracker', 'lk' or 'gt'"),
    ("", ", cout = 2", C + r"unknown option 'cout'; did you mean 'count'\?"),
    ("", ", fps = nan", C + r"fps: Input should be a finite number"),
    ("", ", speed = [0.02, inf]", C + r"speed=.*NaN and ±inf are not allowed"),
    ("", ', preset = "tyo"', C + r"preset: Input should be 'toy', 'opposing' or 'edit'"),
])
def test_bad_metric_and_clip_set_options_are_config_errors(isolated, tmp_path, capsys, extra, clip_options, expected):
    code, err = _run(tmp_path, capsys, extra=extra, clip_options=clip_options)
    assert code == 2 and "grid.toml" in err
    assert re.search(expected, err), err
    assert not (tmp_path / "run" / "results.sqlite").exists()          # nothing ran


def test_folder_clip_set_refuses_unknown_options(tmp_path):
    from motiongrid.bench.registry import datasets

    with pytest.raises(OptionsError, match="unknown option 'mainfest'; did you mean 'manifest'"):
        datasets.get("folder")(root=str(tmp_path), mainfest="m.csv")


def test_seeds_must_fit_a_signed_64_bit_store():
    base = {"methods": [{"name": "static"}]}
    assert parse_config({**base, "seeds": [0, 2**63 - 1]}).seeds == [0, 2**63 - 1]
    for bad in (2**64, 2**63, -1):
        with pytest.raises(ConfigError, match=r"seeds\[0\]"):
            parse_config({**base, "seeds": [bad]})


def test_defaults_and_option_dicts_are_unchanged():
    """The typed options keep the dict the metrics (and run.json) read, key for key."""
    assert MotionFidelity().options == {"resample": None, "batch_size": 16, "cache": True, "cache_dir": None,
                                        "tracker": "auto", "grid_size": 30, "static_px": 0.5, "points": "all",
                                        "lk_win": 15, "lk_levels": 3, "lk_fb_px": 1.0}
    assert MotionFidelity(resample="none").options["resample"] is None      # the CLI's spelling
    # a clip set keeps only what the user set (presets fill the rest), as given: hashes hold
    assert generate_clips(ShapesOptions(count=1, size=16, frames=4, fps=8))[0].content_hash == \
        metrics_free_shapes(count=1, size=16, frames=4, fps=8)[0].content_hash


def metrics_free_shapes(**options):
    from motiongrid.bench.registry import datasets

    return datasets.get("shapes")(**options).load()


def test_a_third_party_metric_declares_typed_options(isolated):
    class Thresholded(Metric):
        needs = frozenset()

        class Options(MetricOptions):
            threshold: float = Field(0.5, ge=0, description="cut-off")

        def score(self, generated, clip):
            return float(generated.frames.mean() > self.opts.threshold)

    metrics.register("thresholded_test")(Thresholded)
    try:
        ready, _ = build_metrics(["thresholded_test"], {"thresholded_test": {"threshold": 0.25}})
        assert ready[0].opts.threshold == 0.25 and ready[0].options == {"threshold": 0.25}
        with pytest.raises(OptionsError, match="unknown option 'treshold'; did you mean 'threshold'"):
            build_metrics(["thresholded_test"], {"thresholded_test": {"treshold": 1}})
        with pytest.raises(OptionsError, match="threshold: Input should be a finite number"):
            build_metrics(["thresholded_test"], {"thresholded_test": {"threshold": float("nan")}})
    finally:
        metrics.unregister("thresholded_test")


def test_metrics_listing_shows_each_option_with_type_default_and_description(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["metrics"]) == 0
    out = capsys.readouterr().out
    assert "tracker: 'auto' | 'cotracker' | 'lk' | 'gt' = 'auto' — point tracker" in out
    assert "points: 'all' | 'moving' = 'all'" in out and "min_samples: int = 2048" in out
    assert "batch_size: int = 16 — frames per forward pass" in out       # shared options, listed once
    assert out.count("batch_size") == 1


def test_score_tracker_choices_come_from_the_options_type(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--reference", "a", "--generated", "b", "--tracker", "nope"])
    err = capsys.readouterr().err
    assert "choose from 'auto', 'cotracker', 'lk', 'gt'" in err


@pytest.fixture()
def pair(tmp_path):
    clip = generate_clips(ShapesOptions(count=1, size=32, frames=6, motions=("pan",)))[0]   # every point moves
    ref, gen = tmp_path / "ref" / "a.mp4", tmp_path / "gen" / "a.mp4"
    write_video(Video(clip.frames), ref)
    write_video(Video(clip.frames.flip(0).contiguous()), gen)
    return ref, gen


def test_score_takes_metric_options_like_a_config(isolated, pair, tmp_path, capsys):
    ref, gen = pair
    out = tmp_path / "s.json"
    args = ["score", "--reference", str(ref), "--generated", str(gen), "--metrics", "psnr,motion_fidelity",
            "--tracker", "lk", "--json", str(out)]
    assert main(args + ["--option", "motion_fidelity.points=moving", "-o", "motion_fidelity.grid_size=8"]) == 0
    result = json.loads(out.read_text())
    assert result["preprocessing"]["motion_fidelity"]["points"] == "moving"
    assert result["preprocessing"]["motion_fidelity"]["reference_tracker"]["grid_size"] == 8
    assert result["settings"]["options"] == {"motion_fidelity": {"points": "moving", "grid_size": 8}}
    # reversed: the paired variant says so, DMT's does not have to
    assert result["per_clip"][0]["motion_fidelity.paired"] < 0
    capsys.readouterr()
    for bad, expected in (("motion_fidelity.point=moving", "unknown option 'point'; did you mean 'points'"),
                          ("motion_fidelty.points=moving", "did you mean 'motion_fidelity'"),
                          ("motion_fidelity.static_px=nan", "static_px: Input should be a finite number"),
                          ("points=moving", "expected METRIC.KEY=VALUE")):
        assert main(args + ["--option", bad]) == 2, bad
        assert expected in capsys.readouterr().err, bad


def test_score_prints_set_level_values_only_for_set_level_metrics(isolated, pair, tmp_path, capsys):
    ref, gen = pair
    out = tmp_path / "s.json"
    assert main(["score", "--reference", str(ref), "--generated", str(gen), "--metrics", "psnr,ssim,l1",
                 "--json", str(out)]) == 0
    assert "set-level" not in capsys.readouterr().out
    assert json.loads(out.read_text())["set"] == {}
