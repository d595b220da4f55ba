"""The contract every registered metric keeps (run over the registry, so a new metric is
checked the day it lands), and the one metric path's promise: a metric whose weights do not
load is unavailable with its reason, in `run` and `score` alike, and the run goes on."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import sqlite3

import pytest
import torch
from metric_helpers import (
    import_ok,
    no_checksum,
    save_alexnet_standin,
    save_dino_standin,
    save_i3d_standin,
    save_inception_standin,
    save_r3d50_standin,
    save_raft_standin,
    stage,
)

from motiongrid.bench import weights
from motiongrid.bench.cli import main
from motiongrid.bench.registry import metrics
from motiongrid.bench.scoring import build_metrics, flatten, prepare_metrics
from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import ShapesOptions, generate_clips

FIX_COMMAND = re.compile(r"`motiongrid [a-z]+[^`]*`|motiongrid weights (fetch|import)")


def _standins(transfer) -> None:
    """Stand-in files for the metrics whose weights can be made here (values: plumbing only)."""
    save_alexnet_standin(stage(transfer, "lpips-alexnet"))
    no_checksum("lpips-alexnet")
    save_inception_standin(stage(transfer, "cleanfid-inception"))
    save_raft_standin(stage(transfer, "raft-large-things"))
    no_checksum("raft-large-things")
    save_i3d_standin(stage(transfer, "stylegan-v-i3d"))
    save_r3d50_standin(stage(transfer, "resnet-50-kinetics"))
    save_dino_standin(transfer)
    import_ok(transfer, "lpips-alexnet", "cleanfid-inception", "raft-large-things", "stylegan-v-i3d",
              "resnet-50-kinetics", "dino-hub-repo", "dino-vitb16")


@pytest.mark.parametrize("name", metrics.names())
def test_metric_contract(name, isolated):
    cls = metrics.get(name)
    missing = cls().available()
    assert missing is None or FIX_COMMAND.search(missing), f"{name}: reason names no command: {missing}"
    _standins(isolated / "transfer")
    metric = cls()
    assert isinstance(cls.higher_is_better, bool)
    assert json.loads(json.dumps(metric.preprocessing())) == metric.preprocessing()   # JSON, as stored
    if metric.available() is not None:
        pytest.skip(f"{name}: no stand-in weights here ({metric.available()[:60]}…)")
    metric.prepare(torch.device("cpu"))
    clip = generate_clips(ShapesOptions(count=1, size=32, frames=16))[0]   # fid_vid's segment: 16
    with pytest.warns() if name == "fid" else contextlib.nullcontext():       # FID warns about few samples
        result = metric.score(Video(clip.frames.clone()), clip)
    values = flatten(name, result)
    assert values and all(isinstance(v, float) for v in values.values()), result
    if cls.ideal is None:
        assert "reference" not in cls.needs, f"{name} compares with a reference but declares no ideal"
        return
    expected = cls.ideal if isinstance(cls.ideal, dict) else {"": cls.ideal}
    got = result if isinstance(result, dict) else {"": result}
    for key, ideal in expected.items():
        if math.isinf(ideal):
            assert got[key] == ideal, (name, key, got[key])
        else:
            assert got[key] == pytest.approx(ideal, abs=1e-3), (name, key, got[key])


def test_corrupt_weight_file_makes_the_metric_unavailable_not_the_run(isolated, tmp_path, capsys):
    """A run with a corrupt LPIPS backbone file completes, stores every cell, and reports lpips
    unavailable with the reason; `score` says the same through the same path."""
    path = weights.get("lpips-alexnet").target()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x80\x04 this is not a torch file" * 100)
    weights.register(dataclasses.replace(weights.get("lpips-alexnet"), sha256=None, size=None), replace=True)
    assert weights.available("lpips-alexnet") is None                 # present, so it gets loaded

    ready, unavailable = build_metrics(["lpips", "psnr"])
    ready = prepare_metrics(ready, torch.device("cpu"), unavailable)
    assert [m.name for m in ready] == ["psnr"] and "failed to load" in unavailable["lpips"]

    config = tmp_path / "grid.toml"
    config.write_text('seeds = [0]\nmetrics = ["psnr", "lpips"]\n[clips]\nset = "shapes"\nlimit = 2\n'
                      'options = { size = 32, frames = 4 }\n[[methods]]\nname = "static"\n'
                      '[[methods]]\nname = "reference"\n')
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    rows = sqlite3.connect(out / "results.sqlite").execute("SELECT status, metrics FROM cells").fetchall()
    assert len(rows) == 4 and all(status == "ok" for status, _ in rows)
    assert all("psnr" in json.loads(m) and "lpips" not in json.loads(m) for _, m in rows)
    run = json.loads((out / "run.json").read_text())
    assert run["metrics"]["lpips"]["available"] is False
    assert "failed to load" in run["metrics"]["lpips"]["reason"]
    assert "metric lpips: lpips: failed to load" in capsys.readouterr().out
