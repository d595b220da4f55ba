"""motiongrid profile: shape-only memory estimates that match hand-counted bytes, the command on
the toy grid and on the real AnimateDiff architecture (small size), its errors, and that nothing
it makes can become a result."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from motiongrid.bench.grid import MethodVariant
from motiongrid.bench.memory_estimate import MemoryEstimator, stage
from motiongrid.bench.runner import check_output
from motiongrid.bench.video import Video, VideoError

N, D, LAYERS = 64, 256, 4
F32 = 4


def _stack(device: str = "meta") -> nn.Module:
    with torch.device(device):
        return nn.Sequential(*[nn.Linear(D, D) for _ in range(LAYERS)])


def test_estimate_of_a_linear_stack_equals_the_hand_counted_bytes():
    net = _stack()
    weights = LAYERS * (D * D + D) * F32
    est = MemoryEstimator()
    assert est.add_weights([net]) == weights
    with est, torch.no_grad():
        h = x = torch.zeros(N, D, device="meta")
        for layer in net:
            h = layer(h)
    act = N * D * F32
    # x is kept by its name; while layer k runs, its input and its output are alive
    assert est.peak.bytes == weights + 3 * act
    assert est.live == weights + 2 * act           # x and the last output remain
    del x, h
    assert est.live == weights                     # freed when the last reference goes


def test_estimate_counts_saved_activations_until_the_backward_frees_them():
    net = _stack()
    weights = LAYERS * (D * D + D) * F32
    est = MemoryEstimator()
    est.add_weights([net])
    x = torch.zeros(N, D, device="meta", requires_grad=True)   # made before: not counted
    act = N * D * F32
    with est:
        with stage("forward"):
            y = net(x).sum()
        held_before_backward = est.live - weights
        with stage("backward"):
            (g,) = torch.autograd.grad(y, x)
    # autograd keeps each layer's input for its weight gradient: outputs 1..L-1, and the last
    # output is freed (sum's backward needs only its shape); y itself is 4 bytes
    assert held_before_backward == (LAYERS - 1) * act + F32
    assert est.peak.stage == "backward" and est.peak.weights == weights
    assert est.peak.held == (LAYERS - 1) * act + F32
    assert g.shape == x.shape and est.live == weights + act + F32   # the gradient and y


def test_a_shape_only_video_can_never_be_scored_or_stored():
    variant = MethodVariant("unguided", "unguided", None, None)
    with pytest.raises(VideoError, match="shape-only"):
        check_output(Video(torch.zeros(8, 3, 16, 16, device="meta")), variant)


def _profile(tmp_path, *args):
    cli = "import sys; from motiongrid.bench.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", cli, "profile", *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**__import__("os").environ, "COLUMNS": "200"})


TOY = """
name = "toy-profile"
[clips]
options = { size = 24, frames = 8 }
[[methods]]
name = "motionclone"
params = { model = "toy", mask = ["plain", "primary"] }
[[methods]]
name = "unguided"
params = { model = "toy" }
[[methods]]
name = "static"
"""


def test_profile_estimates_the_toy_grid_and_stores_no_result(tmp_path):
    (tmp_path / "grid.toml").write_text(TOY)
    runs = {}
    for n in ("0", "2"):          # every step, then two sampled steps
        out = _profile(tmp_path, "grid.toml", "--dtype", "fp32", "--sample-steps", n, "--json", f"{n}.json")
        assert out.returncode == 0, out.stderr
        assert "shape-only" in out.stdout
        result = json.loads((tmp_path / f"{n}.json").read_text())
        assert result["label"].startswith("shape-only") and result["cannot_know"]
        runs[n] = {r["label"]: r for r in result["variants"]}
    rows = runs["0"]
    plain, unguided = "motionclone(mask=plain,model=toy)", "unguided(model=toy)"
    assert set(rows) == {plain, "motionclone(model=toy)", unguided, "static"}
    for label in (plain, unguided):
        r = rows[label]
        assert r["mode"] == "estimate" and r["parameters"] > 1e6
        # fp32 parameters, each counted once, plus a few buffers (the motion modules' position tables)
        assert r["parameters"] * 4 <= r["weights_bytes"] < r["parameters"] * 4 * 1.01
        assert r["peak_bytes"] > r["weights_bytes"] and r["steps"] > 2 and r["sampled_steps"] is None
        # nothing accumulates over steps: two sampled steps show the same peak as all of them
        sampled = runs["2"][label]
        assert sampled["sampled_steps"] == 2 and sampled["steps"] == r["steps"]
        assert sampled["peak_bytes"] == pytest.approx(r["peak_bytes"], rel=1e-3)   # scalars of the schedule aside
    # guidance differentiates through the UNet: its peak holds the saved activations
    guided = rows[plain]
    assert guided["peak_stage"] in {"guidance forward", "guidance backward"}
    assert guided["peak_bytes"] > rows[unguided]["peak_bytes"]
    assert {"extraction", "denoising", "guidance forward", "guidance backward", "decode"} <= set(guided["stages"])
    assert rows["static"]["note"].startswith("not profiled") and rows["static"]["peak_bytes"] is None
    assert not list(tmp_path.rglob("results.sqlite")) and not list(tmp_path.rglob("*.mp4"))


@pytest.mark.slow
def test_profile_builds_the_released_animatediff_architecture_at_real_width(tmp_path):
    (tmp_path / "mc.toml").write_text('name = "mc"\n[[methods]]\nname = "motionclone"\nparams = { model = "animatediff" }\n')
    out = _profile(tmp_path, "mc.toml", "--frames", "8", "--size", "64x64", "--json", "p.json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads((tmp_path / "p.json").read_text())["variants"]
    # SD1.5 UNet (859.5 M) + AnimateDiff v3 motion modules (~417 M; no mid-block module)
    # + sd-vae-ft-mse (83.7 M) + CLIP ViT-L/14 text encoder (123.1 M)
    assert 1.45e9 < row["parameters"] < 1.52e9, row["parameters"]
    assert row["parameters"] * 2 <= row["weights_bytes"] < row["parameters"] * 2 * 1.01   # fp16 (+ buffers)
    assert row["peak_stage"] and row["peak_bytes"] > row["weights_bytes"]


@pytest.mark.parametrize("args, message", [
    (["--size", "51x51"], "multiples of 8"),
    (["--size", "big"], "expected HxW"),
    (["--frames", "0"], "positive"),
    (["--sample-steps", "-1"], "sample-steps"),
])
def test_bad_profile_arguments_are_one_clear_error(tmp_path, args, message):
    (tmp_path / "grid.toml").write_text(TOY)
    out = _profile(tmp_path, "grid.toml", *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_measuring_on_cuda_without_cuda_says_so(tmp_path):
    (tmp_path / "grid.toml").write_text(TOY)
    out = _profile(tmp_path, "grid.toml", "--device", "cuda")
    assert out.returncode == 2 and "no CUDA device" in out.stderr
