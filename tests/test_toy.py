"""The toy world model: reproducible and resumable training, loading, sample cleanliness."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
import torch

from motiongrid.methods import toy as toy_pkg
from motiongrid.methods.toy import model as toy
from motiongrid.methods.toy import sample as toy_sample
from motiongrid.methods.toy import train as toy_train

# A tiny model and world so training steps take milliseconds; the shipped model is tested
# separately below.
TINY_CLIPS = {"size": 16, "frames": 4}
TINY_UNET = {
    "sample_size": 16, "in_channels": 3, "out_channels": 3,
    "down_block_types": ("DownBlockMotion", "CrossAttnDownBlockMotion"),
    "up_block_types": ("CrossAttnUpBlockMotion", "UpBlockMotion"),
    "block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 4,
    "cross_attention_dim": 16, "num_attention_heads": 2, "motion_num_attention_heads": 2,
    "motion_max_seq_length": 8, "use_motion_mid_block": False,
}
STEPS = 50


def tiny_train(out, **kw):
    cfg = toy_train.TrainConfig(batch_size=2, warmup_steps=10, checkpoint_every=10, eval_every=0)
    return toy_train.train(out, steps=STEPS, seed=7, config=cfg, unet_config=TINY_UNET, clip_options=TINY_CLIPS,
                     progress=False, **kw)


def log_losses(run: Path) -> list[str]:
    with open(run / "train_log.csv", newline="") as fh:
        return [row["loss"] for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("toy-a")
    summary = tiny_train(out)
    return out, summary


def test_training_is_reproducible_from_seed(reference_run, tmp_path):
    out, first = reference_run
    second = tiny_train(tmp_path / "b")
    assert len(first["losses"]) == STEPS
    assert first["losses"] == second["losses"]        # bit-identical, all 50 steps
    assert first["losses"][0] != first["losses"][1]   # and not trivially constant


def test_resume_matches_uninterrupted_run(reference_run, tmp_path):
    out, first = reference_run
    run = tmp_path / "c"
    part = tiny_train(run, stop_after=23)             # "killed" at 23; last checkpoint at 20
    assert part["stopped"] == "interrupted" and part["step"] == 23
    rest = tiny_train(run)                            # resumes at 20, redoes 21–23
    assert rest["step"] == STEPS and len(rest["losses"]) == STEPS - 20
    assert log_losses(run) == log_losses(out)
    a = (out / "export" / "toy.safetensors").read_bytes()
    b = (run / "export" / "toy.safetensors").read_bytes()
    assert a == b


def test_export_loads_as_backbone(reference_run):
    out, _ = reference_run
    export = out / "export"
    for name in ("toy.safetensors", "toy.json", "train_log.csv", "loss.png"):
        assert (export / name).is_file(), name
    bb = toy.load_toy_backbone("toy", "cpu", path=export / "toy.safetensors")
    assert (bb.num_frames, bb.height, bb.width) == (4, 16, 16)
    assert bb.fingerprint["sha256"] == hashlib.sha256((export / "toy.safetensors").read_bytes()).hexdigest()
    assert bb.scheduler.config.prediction_type == "v_prediction"
    frames = torch.rand(4, 3, 16, 16)
    latents = bb.encode_video(frames)
    assert latents.shape == (1, 3, 4, 16, 16) == (1, *bb.latent_shape())
    assert torch.allclose(bb.decode_latents(latents), frames, atol=1e-6)
    videos = toy.sample_unguided(bb, ["a red circle on a dark background", ""], seed=0, steps=3)
    assert [tuple(v.shape) for v in videos] == [(4, 3, 16, 16)] * 2
    with pytest.raises(ValueError, match="expected frames"):
        bb.encode_video(torch.rand(5, 3, 16, 16))


def test_prompt_encoder_vocabulary():
    enc = toy.PromptEncoder(toy.toy_vocabulary(["red"], ["circle"]), dim=8, max_tokens=8)
    ids = enc.tokenize([toy.toy_prompt("red", "circle"), ""])
    assert ids[1].tolist() == [0] * 8                  # "" is all padding: the CFG null prompt
    assert enc([""]).shape == (1, 8, 8)
    with pytest.raises(ValueError, match="moving"):
        enc(["a red circle moving right on a dark background"])


def test_toy_world_options_render_the_stated_world():
    opts = toy.toy_shapes_options()
    assert (opts.size, opts.frames, opts.background, opts.striped, opts.describe_motion) == (24, 8, "flat", False, False)
    import numpy as np

    from motiongrid.datasets.shapes import random_spec

    rng = np.random.default_rng(0)
    for _ in range(50):
        spec = random_spec(rng, opts)
        assert 3.0 <= spec.radius <= 4.0
        assert 1.0 <= float(np.hypot(*spec.velocity)) <= 2.0
        assert spec.prompt() == toy.toy_prompt(spec.colour, spec.kind)


def test_toy_weights_registered():
    from motiongrid.bench import weights

    assert weights.get("toy").target() == toy_pkg.toy_checkpoint_dir() / "toy.safetensors"


def test_cli_parses_toy_commands():
    from motiongrid.bench.cli import build_parser

    args = build_parser().parse_args(["toy", "train", "--out", "x", "--steps", "10", "--max-minutes", "1"])
    assert (args.out, args.steps, args.max_minutes, args.resume) == ("x", 10, 1.0, True)
    args = build_parser().parse_args(["toy", "sample", "--out", "s.png"])
    assert args.out == "s.png"


# ---- the shipped checkpoint ----------------------------------------------------------------

SHIPPED = toy_pkg.toy_checkpoint_dir() / "toy.safetensors"
needs_shipped = pytest.mark.skipif(not SHIPPED.is_file(),
                                   reason=f"toy checkpoint not committed yet ({SHIPPED})")

# Thresholds for "clean" samples (unguided, 25 DDIM steps, the default CFG, fixed seeds):
BG_ERROR_MAX = 0.04      # mean |background − FLAT_BACKGROUND| per sample, background = >2 px from the object
FG_FRACTION = (0.02, 0.25)  # a 6–8 px object is 4–11% of a 24×24 frame
COMPONENTS_MAX = 1.25    # mean connected foreground components per frame: one object (≤2 of 8 frames with a stray blob)


@needs_shipped
def test_shipped_checkpoint_loads_through_backbone():
    from motiongrid.methods.backbone import load_backbone

    torch.set_num_threads(1)
    bb = load_backbone("toy", torch.device("cpu"))
    assert (bb.num_frames, bb.height, bb.width) == (8, 24, 24)
    assert len(bb.fingerprint["sha256"]) == 64
    (video,) = toy.sample_unguided(bb, [toy.toy_prompt("blue", "square")], seed=0, steps=5)
    assert video.shape == (8, 3, 24, 24)
    assert 0.0 <= float(video.min()) and float(video.max()) <= 1.0


@needs_shipped
def test_shipped_samples_are_clean():
    torch.set_num_threads(1)
    bb = toy.load_toy_backbone()
    prompts = [toy.toy_prompt(c, k) for c, k in toy_sample.QUALITY_PROMPTS]
    for seed in (0, 1):
        for video, (colour, kind) in zip(toy.sample_unguided(bb, prompts, seed * 1000), toy_sample.QUALITY_PROMPTS):
            q = toy_sample.quality(video, colour)
            label = f"seed {seed}, {colour} {kind}: {q}"
            assert q["bg_error"] < BG_ERROR_MAX, label
            assert FG_FRACTION[0] < q["fg_fraction"] < FG_FRACTION[1], label
            assert q["colour_ok"], label
            assert q["components"] <= COMPONENTS_MAX, label


def test_sample_strip_png(reference_run, tmp_path):
    out, _ = reference_run
    bb = toy.load_toy_backbone("toy", "cpu", path=out / "export")
    calls = []

    def fake_guided(backbone, reference, prompt, seed):   # how the integrator adds a guided row
        calls.append((tuple(reference.shape), prompt, seed))
        return reference.flip(0)

    rows = {**toy_sample.strip_rows(), "guided (stand-in)": fake_guided}
    png = toy_sample.sample_strip(bb, tmp_path / "strip.png", clips=2, seed=5, rows=rows)
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    assert [c[2] for c in calls] == [5, 6] and calls[0][0] == (4, 3, 16, 16)


def test_missing_checkpoint_names_the_fix(isolated, tmp_path):
    import dataclasses

    from motiongrid.bench import weights

    gone = tmp_path / "nowhere" / "toy.safetensors"
    weights.register(dataclasses.replace(weights.get("toy"), target=lambda: gone), replace=True)
    with pytest.raises(weights.WeightsMissing, match="motiongrid toy train"):
        toy.load_toy_backbone()


def test_toy_backbone_drives_the_motionclone_sampler(reference_run):
    """The toy backbone through MotionClone's sampler: unguided it reproduces sample_unguided
    (same noise, CFG convention and scheduler), and a guided run executes."""
    from motiongrid.methods.motionclone import guidance as mc
    out, _ = reference_run
    bb = toy.load_toy_backbone("toy", "cpu", path=out / "export")
    prompt = "a red circle on a dark background"
    mine = toy.sample_unguided(bb, [prompt], seed=3, steps=4, cfg=2.0)[0]
    theirs = bb.decode_latents(mc.guided_sample(bb, prompt, 3, mc.uniform_schedule(bb.scheduler, 4, 0), 2.0))
    assert torch.allclose(mine, theirs, atol=1e-5)
    ref = toy_sample.toy_reference_clips(1, clip_options=TINY_CLIPS)[0][0]
    rep = mc.extract_motion_representation(bb, ref, t_alpha=400, blocks="up_blocks.1")
    guidance = mc.Guidance(reference=rep, weight=100.0)
    trace = []
    schedule = mc.uniform_schedule(bb.scheduler, 4, 2, ramp=1)
    mc.guided_sample(bb, prompt, 3, schedule, 2.0, guidance=guidance, trace=trace)
    assert [s["energy"] is not None for s in trace] == [True, True, False, False]


def test_timestep_errors_diagnostic(reference_run):
    out, _ = reference_run
    bb = toy.load_toy_backbone("toy", "cpu", path=out / "export")
    rows = toy_sample.timestep_errors(bb, timesteps=(10, 500), clips=2)
    assert [r["t"] for r in rows] == [10, 500]
    assert all(r["x0_abs_error"] >= 0 and r["eps_std"] > 0 for r in rows)
