"""MotionFollower: the released schedule, each guidance term's descent, the editing branch
against the reconstruction branch, where the controllers enter the UNet, the early-stopped
estimator, released-format checkpoints through the key conversion, and missing weights."""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import torch
from tiny_models import toy_edit_backbone

from motiongrid.datasets.shapes import ShapesClipSet
from motiongrid.methods.motionfollower.hooks import controlled, up_block_features
from motiongrid.methods.motionfollower.sampler import (
    EditInputsOnDevice,
    EditSampler,
    EditSchedule,
    _masks_at,
    _upsampled,
    ddim_update,
    edit_energy,
    timesteps,
)


@pytest.fixture(scope="module")
def bb():
    return toy_edit_backbone()


@pytest.fixture(scope="module")
def case():
    return ShapesClipSet(preset="edit", seed=1000, count=1).load()[0]


def inputs(bb, clip, same_poses=False) -> EditInputsOnDevice:
    raw = clip.edit.inputs(clip)
    with torch.no_grad():
        src = bb.pose_features(raw.source_poses)
        return EditInputsOnDevice(bb.context(clip.frames, clip.prompt), src,
                                  src if same_poses else bb.pose_features(raw.target_poses),
                                  bb.reference_features(clip.frames), bb.reference_features(clip.frames, estimator=True),
                                  raw.source_masks, raw.target_masks)


# ---- schedule ---------------------------------------------------------------------------------

def test_released_schedule_sets():
    s = EditSchedule.released(50)
    assert s.guided == set(range(10)) | set(range(10, 30, 2)) and len(s.guided) == 20
    assert s.replay == {22: 3, 24: 3, 26: 3, 28: 3}
    assert len(s.guided) + sum(n - 1 for n in s.replay.values()) == 28          # guidance calls
    assert s.sde == set(range(11, 20))
    # at 25 steps step i plays released step 2i
    s25 = EditSchedule.released(25)
    assert s25.guided == set(range(15)) and s25.replay == {11: 3, 12: 3, 13: 3, 14: 3} and s25.sde == {6, 7, 8, 9}
    assert EditSchedule.released(50, guided=[0, 22]).replay == {22: 3}      # replays only where guided
    with pytest.raises(ValueError, match="outside"):
        EditSchedule.released(25, guided=[30])


def test_released_timesteps_are_trailing(bb):
    from diffusers import DDIMScheduler

    from motiongrid.methods.motionfollower.real import SCHEDULER_CONFIG

    plan = timesteps(DDIMScheduler(**SCHEDULER_CONFIG), 50)
    assert [t for t, _ in plan] == [999 - 20 * i for i in range(50)]
    assert all(prev == t - 20 for t, prev in plan)


# ---- guidance --------------------------------------------------------------------------------

@pytest.mark.parametrize("term", ["fg", "content", "contrast", "inpaint"])
def test_each_guidance_term_lowers_its_own_energy(bb, case, term):
    """One released update with only this term's gradient moves the latent so that the term
    drops; flipping the sign of the gradient or of the update raises it instead."""
    inp = inputs(bb, case)
    plan = timesteps(bb.scheduler, 25)
    i = 4
    t, prev = plan[i]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((1, *bb.latent_shape()), generator=gen)
    recon = x + 0.3 * torch.randn(x.shape, generator=gen)
    sampler = EditSampler(bb, 25, 1.0, 4.0, EditSchedule.released(25), "shared", "released")
    with torch.no_grad():
        R = up_block_features(bb.unet, recon, t, inp.context, inp.source_pose, inp.estimator_reference)
        v = bb.unet(x, t, encoder_hidden_states=inp.context).sample

    def energy(latent):
        with torch.no_grad():
            E = _upsampled(up_block_features(bb.unet, latent, t, inp.context, inp.target_pose, inp.estimator_reference))
        size = E[-1].shape[-2:]
        terms, _ = edit_energy(E, _upsampled(R), _masks_at(inp.source_masks, size), _masks_at(inp.target_masks, size))
        return float(terms[term])

    info = {"dropped_frame_terms": {}, "energy": []}
    g = sampler.guidance(x, t, R, inp, info, only=frozenset({term}))
    assert g.abs().sum() > 0
    move = ddim_update(x, v, t, prev, bb.scheduler, g) - ddim_update(x, v, t, prev, bb.scheduler, None)
    step = move * (1e-3 / float(move.abs().max()))
    before = energy(x)
    assert energy(x + step) < before < energy(x - step)


def test_empty_mask_regions_drop_frames_never_nan():
    E = [torch.randn(3, 4, 6, 6), torch.randn(3, 2, 6, 6)]
    R = [e + 0.1 * torch.randn_like(e) for e in E]
    S = torch.zeros(3, 6, 6, dtype=torch.bool)
    S[:, 1:3, 1:3] = True
    T = S.clone()                      # frames where the subject does not move: S∧¬T is empty
    T[2] = False                       # and one frame with an empty target mask
    terms, dropped = edit_energy(E, R, S, T)
    assert all(math.isfinite(float(v)) for v in terms.values())
    assert dropped["content"] == 2 * 2 and dropped["inpaint"] == 2 * 2    # S∧¬T empty in frames 0, 1; 2 levels
    assert dropped["fg"] == 2 and dropped["contrast"] == 0                # T empty in frame 2
    only_static, d2 = edit_energy(E, R, S, S.clone())                     # S∧¬T empty everywhere
    assert float(only_static["content"]) == 0.0 and d2["content"] == 6    # no frame left: the term is 0


def test_mask_roles_swap_content_and_contrast_regions():
    R = [torch.randn(1, 8, 4, 4)]
    E = [R[0].clone()]
    S = torch.zeros(1, 4, 4, dtype=torch.bool)
    T = torch.zeros(1, 4, 4, dtype=torch.bool)
    S[0, :2] = True                    # rows 0-1: vacated (S∧¬T); rows 2-3: untouched (¬S∧¬T)
    E[0][0, :, :2] = -R[0][0, :, :2]   # vacated region looks opposite, untouched identical
    released, _ = edit_energy(E, R, S, T, "released")
    dragon, _ = edit_energy(E, R, S, T, "dragon")
    # released: content over vacated (cos -1), contrast over untouched ((1+1)/2 = 1)
    assert float(released["content"]) == pytest.approx(0.5 * 6 / (1 - 4))
    assert float(released["contrast"]) == pytest.approx(0.5 * 1.2 * 1.0)
    # dragon: content over untouched (cos 1), contrast over vacated ((1-1)/2 = 0)
    assert float(dragon["content"]) == pytest.approx(0.5 * 6 / 5)
    assert float(dragon["contrast"]) == pytest.approx(0.0, abs=1e-6)


def test_editing_branch_equals_reconstruction_with_source_poses_and_no_guidance(bb, case):
    inp = inputs(bb, case, same_poses=True)
    plain = EditSchedule(8, frozenset(), frozenset(), {})
    gen = torch.Generator().manual_seed(3)
    x_T = torch.randn((1, *bb.latent_shape()), generator=gen)
    out = EditSampler(bb, 8, 1.0, 0.0, plain).run(x_T, inp, gen)
    assert torch.equal(out.video, out.reconstruction)
    # ... and target poses change it (the test above is not vacuous)
    moved = EditSampler(bb, 8, 1.0, 0.0, plain).run(x_T, inputs(bb, case), torch.Generator().manual_seed(3))
    assert not torch.equal(moved.video, moved.reconstruction)


# ---- where the controllers enter ---------------------------------------------------------------

def test_estimator_stopped_early_equals_full_forward(bb, case):
    inp = inputs(bb, case)
    x = torch.randn((1, *bb.latent_shape()), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        early = up_block_features(bb.unet, x, 500, inp.context, inp.target_pose, inp.reference, stop=True)
        full = up_block_features(bb.unet, x, 500, inp.context, inp.target_pose, inp.reference, stop=False)
    assert [f.shape for f in early] == [f.shape for f in full]
    assert all(torch.equal(a, b) for a, b in zip(early, full))


@pytest.mark.parametrize("block", [0, 1, 2])
def test_reference_feature_is_added_before_the_blocks_motion_module(bb, case, block):
    """At down block i's last motion module, the input differs by exactly ReCtr's feature i:
    the feature enters after the last spatial layer and before the motion module."""
    inp = inputs(bb, case)
    x = torch.randn((1, *bb.latent_shape()), generator=torch.Generator().manual_seed(2))
    seen = []
    module = bb.unet.down_blocks[block].motion_modules[-1]
    handle = module.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[0].clone()), with_kwargs=True)
    only = [f if k == block else torch.zeros_like(f) for k, f in enumerate(inp.reference)]
    try:
        with torch.no_grad():
            with controlled(bb.unet, None, [torch.zeros_like(f) for f in inp.reference]):
                bb.unet(x, 500, encoder_hidden_states=inp.context)
            with controlled(bb.unet, None, only):
                bb.unet(x, 500, encoder_hidden_states=inp.context)
    finally:
        handle.remove()
    assert torch.allclose(seen[1] - seen[0], inp.reference[block], atol=1e-5)


def test_pose_feature_is_added_to_conv_in_output(bb, case):
    inp = inputs(bb, case)
    x = torch.randn((1, *bb.latent_shape()), generator=torch.Generator().manual_seed(4))
    seen = []
    def grab(module, args, kwargs):
        seen.append(kwargs.get("hidden_states", args[0] if args else None).clone())
    handle = bb.unet.down_blocks[0].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            bb.unet(x, 500, encoder_hidden_states=inp.context)
            with controlled(bb.unet, inp.target_pose, None):
                bb.unet(x, 500, encoder_hidden_states=inp.context)
    finally:
        handle.remove()
    assert torch.allclose(seen[1] - seen[0], inp.target_pose, atol=1e-5)


# ---- released-format checkpoints -------------------------------------------------------------

def test_released_key_names_convert():
    from motiongrid.methods.motionfollower.real import convert_unet_key

    pairs = {
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight":
            "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.weight",
        # both released tables of a block -> diffusers' one table of that block
        "down_blocks.0.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe":
            "down_blocks.0.motion_modules.1.transformer_blocks.0.pos_embed.pe",
        "up_blocks.3.motion_modules.2.temporal_transformer.transformer_blocks.0.ff_norm.weight":
            "up_blocks.3.motion_modules.2.transformer_blocks.0.norm3.weight",
        "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.norms.1.bias":
            "mid_block.motion_modules.0.transformer_blocks.0.norm2.bias",
        "mid_block.motion_modules.0.temporal_transformer.proj_in.weight": "mid_block.motion_modules.0.proj_in.weight",
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight":
            "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",     # spatial: unchanged
    }
    for released, ours in pairs.items():
        assert convert_unet_key(released) == ours


def test_diffusers_positional_table_equals_the_released_one():
    """diffusers builds the table the released files store, at every position up to the
    motion modules' length (so dropping the released tables loses nothing)."""
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding
    from released_layouts import released_positional_table

    for width in (320, 640, 1280, 16):
        assert torch.allclose(SinusoidalPositionalEmbedding(width, 32).pe, released_positional_table(32, width), atol=1e-6)


def _tiny_unet2d(tmp_path):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=8, attention_head_dim=4)
    unet.save_pretrained(tmp_path / "base" / "unet")
    return unet


ADAPTER = {"motion_norm_num_groups": 8, "motion_num_attention_heads": 2}


def _released_files(tmp_path, unet2d, motion_in_denoiser=False):
    """Tiny released-format files under the released key names (tests/released_layouts.py)."""
    from released_layouts import released_appearance_adapter, released_motion_modules

    channels = tuple(unet2d.config.block_out_channels)
    g = torch.Generator().manual_seed(3)
    spatial = {k: torch.randn(v.shape, generator=g) for k, v in unet2d.state_dict().items()}
    motion = released_motion_modules(channels, unet2d.config.layers_per_block, mid=True, seed=1)
    ref = released_appearance_adapter(channels, seed=2)
    torch.save(motion, tmp_path / "motion_module.pth")
    torch.save({**spatial, **ref, **(motion if motion_in_denoiser else {})}, tmp_path / "denoising_unet.pth")
    return spatial, motion, ref


def test_released_format_checkpoints_load_through_the_conversion_strictly(tmp_path):
    from released_layouts import signatures

    from motiongrid.methods.motionfollower.controllers import KeyConversionError, PoseController, load_strict
    from motiongrid.methods.motionfollower.real import load_released_unets

    unet2d = _tiny_unet2d(tmp_path)
    spatial, motion, ref = _released_files(tmp_path, unet2d)
    denoiser, base, got_ref = load_released_unets(tmp_path / "base", tmp_path / "denoising_unet.pth",
                                                  tmp_path / "motion_module.pth", adapter_config=ADAPTER)
    loaded = denoiser.state_dict()
    # every released tensor arrived (the positional tables are diffusers' own), nothing else
    tables = {k: v for k, v in motion.items() if k.endswith(".pos_encoder.pe")}
    assert signatures({k: v for k, v in loaded.items() if not k.endswith(".pos_embed.pe")}) == \
        signatures({**spatial, **{k: v for k, v in motion.items() if k not in tables}})
    assert signatures(got_ref.state_dict()) == signatures(ref)
    # spot checks written from the two module definitions
    assert torch.equal(loaded["down_blocks.0.motion_modules.1.transformer_blocks.0.attn2.to_q.weight"],
                       motion["down_blocks.0.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_q.weight"])
    assert torch.equal(loaded["up_blocks.1.motion_modules.2.transformer_blocks.0.norm3.bias"],
                       motion["up_blocks.1.motion_modules.2.temporal_transformer.transformer_blocks.0.ff_norm.bias"])
    assert torch.equal(got_ref.state_dict()["adapter.body.1.in_conv.weight"], ref["appearance_adapter.body.2.in_conv.weight"])
    assert torch.equal(got_ref.state_dict()["adapter.body.1.resnets.1.block2.bias"], ref["appearance_adapter.body.3.block2.bias"])
    # the base keeps the image-variation spatial weights, with the released motion modules
    k_sp = next(k for k in spatial if "attn1.to_q" in k)
    assert torch.equal(base.state_dict()[k_sp], unet2d.state_dict()[k_sp])
    k_mm = "mid_block.motion_modules.0.proj_in.weight"
    assert torch.equal(base.state_dict()[k_mm], motion["mid_block.motion_modules.0.temporal_transformer.proj_in.weight"])
    # a denoising_unet.pth that carries the motion modules too loads the same
    _released_files(tmp_path, unet2d, motion_in_denoiser=True)
    again, _, _ = load_released_unets(tmp_path / "base", tmp_path / "denoising_unet.pth",
                                      tmp_path / "motion_module.pth", adapter_config=ADAPTER)
    assert signatures(again.state_dict()) == signatures(denoiser.state_dict())
    # a key the conversion does not know is reported, never silently dropped
    torch.save({**spatial, **ref, "down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_q.weight": torch.zeros(1)},
               tmp_path / "extra.pth")
    with pytest.raises(KeyConversionError, match="1 leftover keys.*attn_temp"):
        load_released_unets(tmp_path / "base", tmp_path / "extra.pth", tmp_path / "motion_module.pth", adapter_config=ADAPTER)
    # a positional table that is not the standard one is an error, not dropped
    bad = dict(motion)
    k_pe = next(iter(tables))
    bad[k_pe] = bad[k_pe].flip(1)
    torch.save(bad, tmp_path / "bad_pe.pth")
    with pytest.raises(KeyConversionError, match="differs from diffusers' sinusoidal table"):
        load_released_unets(tmp_path / "base", tmp_path / "denoising_unet.pth", tmp_path / "bad_pe.pth", adapter_config=ADAPTER)
    # PoCtr: the released names are ours
    pose = PoseController(320)
    saved = {k: torch.randn_like(v) for k, v in pose.state_dict().items()}
    fresh = PoseController(320)
    load_strict(fresh, saved, "poctr.pth")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())
    assert sum(p.numel() for p in fresh.parameters()) == pytest.approx(1.1e6, rel=0.1)   # "~1.1 M parameters"


def test_released_model_without_weights_fails_its_cells_with_the_import_command(isolated, tmp_path):
    from motiongrid.bench.config import load_config
    from motiongrid.bench.runner import Runner
    from motiongrid.bench.store import Store

    path = tmp_path / "grid.toml"
    path.write_text(textwrap.dedent("""
        seeds = [0]
        metrics = ["psnr"]
        [clips]
        set = "shapes"
        options = { preset = "edit", seed = 1000, count = 1 }
        [[methods]]
        name = "motionfollower"
        [[methods]]
        name = "source"
    """))
    cfg, src = load_config(path)
    summary = Runner(cfg, src, tmp_path / "run", device="cpu", progress=False).run()
    assert (summary.ok, summary.failed) == (1, 1)
    rows = {r["label"]: r for r in Store(tmp_path / "run" / "results.sqlite").rows()}
    reason = rows["motionfollower"]["reason"]
    for file in ("denoising_unet.pth", "poctr.pth", "motion_module.pth"):
        assert file in reason
    assert "1yWRNmd4-vbJfV1Ji_zhpNSwNpuJVat7o" in reason and "motiongrid weights import DIR" in reason


# ---- the toy model's training and the shipped checkpoint ------------------------------------------

def test_train_edit_is_deterministic_and_resumes_exactly(tmp_path):
    from motiongrid.methods.motionfollower.toy_train import EditTrainConfig, train_edit

    cfg = EditTrainConfig(batch_size=2, checkpoint_every=1, warmup_steps=2)
    straight = train_edit(tmp_path / "a", steps=3, config=cfg, progress=False)
    train_edit(tmp_path / "b", steps=3, config=cfg, progress=False, stop_after=2)
    resumed = train_edit(tmp_path / "b", steps=3, config=cfg, progress=False)
    assert resumed["step"] == 3 and resumed["losses"] == straight["losses"][2:]
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "export" / "toy-motionfollower.safetensors"))
    b = load_file(str(tmp_path / "b" / "export" / "toy-motionfollower.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {k.split(".", 1)[0] for k in a} == {"unet", "pose_controller", "reference_controller"}


def test_shipped_toy_checkpoint_loads_through_the_weights_manager():
    from motiongrid.bench import weights
    from motiongrid.methods.motionfollower.model import load_toy_edit_backbone
    from motiongrid.methods.motionfollower.params import toy_fingerprint

    path = weights.require("toy-motionfollower")
    assert path.stat().st_size <= 10 * 2 ** 20
    bb = load_toy_edit_backbone()
    assert bb.fingerprint == toy_fingerprint()              # the cell key needs no loaded model
    assert not any(p.requires_grad for p in bb.unet.parameters())


def test_shipped_toy_edits_land_on_the_target_without_guidance():
    """Two held-apart cases (the full acceptance is `motiongrid toy check-edit`)."""
    from motiongrid.methods.motionfollower.model import load_toy_edit_backbone
    from motiongrid.methods.motionfollower.toy_eval import acceptance

    report = acceptance(load_toy_edit_backbone(), count=2, seeds=(0,))
    assert report["summary"]["mean_centre_error_px"] <= 1.5
    assert all(c["colour_ok"] for c in report["cells"])


# ---- camera mode -----------------------------------------------------------------------------

def test_camera_processors_installed_but_off_change_nothing(bb, case):
    from motiongrid.methods.motionfollower.camera import CameraState, camera_mode

    inp = inputs(bb, case)
    x = torch.randn((1, *bb.latent_shape()), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        plain = bb.unet(x, 500, encoder_hidden_states=inp.context).sample
        state = CameraState(inp.source_masks, inp.target_masks)
        with camera_mode(bb.unet, state) as layers:
            off = bb.unet(x, 500, encoder_hidden_states=inp.context).sample
            with state.use("save", 7):
                saved = bb.unet(x, 500, encoder_hidden_states=inp.context).sample
            # extended attention over [K·T; K_ref·(1−S)] with T = 1 and S = 0 duplicates every
            # key and value: the same attention output
            state.source_masks = torch.zeros_like(inp.source_masks)
            state.target_masks = torch.ones_like(inp.target_masks)
            with state.use("inject", 7):
                duplicated = bb.unet(x, 500, encoder_hidden_states=inp.context).sample
            state.target_masks = torch.zeros_like(inp.target_masks)
            with state.use("inject", 7):
                swapped = bb.unet(x, 500, encoder_hidden_states=inp.context).sample
        restored = bb.unet(x, 500, encoder_hidden_states=inp.context).sample
    assert layers and all(".attentions." in n and n.startswith("up_blocks.") and ".attn1." in n for n in layers)
    assert len(state.buffers) == len(layers)
    for out in (off, saved, duplicated, restored):
        assert torch.allclose(out, plain, atol=1e-5)
    assert not torch.allclose(swapped, plain, atol=1e-3)


def test_camera_mode_keeps_the_reconstruction_and_changes_the_edit(bb, case):
    inp = inputs(bb, case)
    sched = EditSchedule(8, frozenset(), frozenset(), {})
    x_T = torch.randn((1, *bb.latent_shape()), generator=torch.Generator().manual_seed(6))
    plain = EditSampler(bb, 8, 1.0, 0.0, sched).run(x_T, inp, torch.Generator().manual_seed(6))
    sampler = EditSampler(bb, 8, 1.0, 0.0, sched, camera=True)
    assert sampler.camera_start == 4                      # released step 20 of 50 at 8 steps
    camera = sampler.run(x_T, inp, torch.Generator().manual_seed(6))
    assert torch.allclose(camera.reconstruction, plain.reconstruction, atol=1e-6)
    assert not torch.allclose(camera.video, plain.video, atol=1e-4)


def test_reconstruction_psnr_note_uses_the_psnr_metrics_convention():
    """The note is the psnr metric's number: scikit-image per frame, 100 dB for an identical frame."""
    from skimage.metrics import peak_signal_noise_ratio

    from motiongrid.methods.motionfollower.adapter import reconstruction_psnr
    from motiongrid.metrics.fidelity import PSNR

    gen = torch.Generator().manual_seed(7)
    a = torch.rand(4, 3, 8, 8, generator=gen)
    b = (a + 0.05 * torch.randn(a.shape, generator=gen)).clamp(0, 1)
    b[0] = a[0]                                              # one identical frame: the 100 dB cap
    expect = np.mean([100.0] + [peak_signal_noise_ratio(a[t].double().numpy(), b[t].double().numpy(), data_range=1.0)
                                for t in range(1, 4)])
    assert reconstruction_psnr(b, a) == pytest.approx(expect, abs=1e-9)
    assert float(PSNR().per_frame(b, a).mean()) == pytest.approx(expect, abs=1e-9)


# ---- released behaviour per setting: cfg per mode, estimator seed, memory ----------------------

def test_cfg_defaults_per_mode_as_the_released_readme_runs_them(bb):
    import dataclasses

    from motiongrid.methods.motionfollower.adapter import MotionFollower
    from motiongrid.methods.motionfollower.params import RELEASED_CFG, MotionFollowerParams

    assert RELEASED_CFG == {"edit": 7.0, "camera": 3.5}     # README: cases 1-5 --cfg 7.0; 6-7 (camera) the default 3.5
    real = dataclasses.replace(bb, default_cfg=7.0, default_camera_cfg=3.5)
    assert MotionFollower.cfg(real, MotionFollowerParams()) == 7.0
    assert MotionFollower.cfg(real, MotionFollowerParams(camera=True)) == 3.5
    assert MotionFollower.cfg(real, MotionFollowerParams(camera=True, cfg=2.0)) == 2.0
    assert MotionFollower.cfg(bb, MotionFollowerParams(camera=True)) == bb.default_cfg   # toy: one default


def test_estimator_seed_draws_another_untrained_reference_controller(bb, case):
    default = bb.reference_features(case.frames, estimator=True)
    again = bb.reference_features(case.frames, estimator=True, seed=0)
    other = bb.reference_features(case.frames, estimator=True, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(default, again))
    assert not any(torch.allclose(a, b) for a, b in zip(default, other))


def _guided_run(bb, case, memory, camera=False):
    inp = inputs(bb, case)
    sched = EditSchedule.released(8)
    x_T = torch.randn((1, *bb.latent_shape()), generator=torch.Generator().manual_seed(7))
    sampler = EditSampler(bb, 8, 1.0, 4.0, sched, "released", camera=camera, memory=memory)
    seen = {"trainable": [], "cached": []}
    original = sampler.guidance

    def spy(x, t, R, inp_, info, only=None):
        out = original(x, t, R, inp_, info, only)
        seen["cached"].append(len(cache_of(sampler)))
        return out

    def cache_of(s):
        return s._last_cache
    sampler._last_cache = {}
    recon_features = sampler.recon_features

    def recording_features(i, latent, t, inp_, cache):
        sampler._last_cache = cache
        seen["trainable"].append(any(p.requires_grad for p in bb.base_unet.parameters()))
        return recon_features(i, latent, t, inp_, cache)
    sampler.recon_features, sampler.guidance = recording_features, spy
    hook = bb.base_unet.conv_in.register_forward_hook(
        lambda m, a, o: seen.setdefault("grad_in_estimator", []).append(m.weight.requires_grad))
    try:
        result = sampler.run(x_T, inp, torch.Generator().manual_seed(7))
    finally:
        hook.remove()
    return result, seen


@pytest.mark.parametrize("camera", [False, True])
def test_memory_modes_change_memory_never_the_edit(bb, case, camera):
    """"released" (default): R recomputed per guidance call and dropped, the estimator's
    parameters not frozen during guidance, camera K/V parked on the CPU; "cache": R kept per
    step, frozen, K/V on the device. The edit is the same."""
    released, seen_r = _guided_run(bb, case, "released", camera)
    cached, seen_c = _guided_run(bb, case, "cache", camera)
    assert torch.allclose(released.video, cached.video, atol=1e-6)
    assert released.info["guidance_calls"] == cached.info["guidance_calls"] > 0
    assert max(seen_r["cached"]) == 0 and max(seen_c["cached"]) > 0
    assert True in seen_r["grad_in_estimator"] and True not in seen_c["grad_in_estimator"]
    assert not any(p.requires_grad for p in bb.base_unet.parameters())          # restored after guidance
    with pytest.raises(ValueError, match="memory must be"):
        EditSampler(bb, 8, 1.0, 4.0, EditSchedule.released(8), memory="fast")


@pytest.mark.slow
def test_released_format_checkpoints_load_strictly_at_real_size(tmp_path):
    """Shape-only: random fp16 weights at the released sizes under the released key names
    (SD1.5 image-variation UNet, 320/640/1280/1280), never committed; all three files load strictly."""
    import gc

    from diffusers import UNet2DConditionModel
    from released_layouts import released_appearance_adapter, released_motion_modules

    from motiongrid.methods.motionfollower.controllers import RELEASED_POSE_CHANNELS, PoseController, load_strict
    from motiongrid.methods.motionfollower.real import _torch_load, load_released_unets

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)      # build every model in fp16: peak RSS stays a few GB
    try:
        unet2d = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
        unet2d.save_pretrained(tmp_path / "base" / "unet")
        channels = tuple(unet2d.config.block_out_channels)
        assert channels == (320, 640, 1280, 1280)
        spatial = {k: v.half() for k, v in unet2d.state_dict().items()}
        del unet2d
        motion = {k: v.half() for k, v in released_motion_modules(channels, 2, mid=True, seed=1).items()}
        torch.save(motion, tmp_path / "motion_module.pth")
        n_motion = sum(v.numel() for v in motion.values())
        del motion
        ref = {k: v.half() for k, v in released_appearance_adapter(channels, seed=2).items()}
        torch.save({**spatial, **ref}, tmp_path / "denoising_unet.pth")
        n_spatial, ref_keys = sum(v.numel() for v in spatial.values()), set(ref)
        del spatial, ref
        gc.collect()
        denoiser, base, got_ref = load_released_unets(tmp_path / "base", tmp_path / "denoising_unet.pth",
                                                      tmp_path / "motion_module.pth", dtype=torch.float16)
        n_loaded = sum(v.numel() for k, v in denoiser.state_dict().items() if not k.endswith(".pos_embed.pe"))
        tables = sum(v.numel() for k, v in _torch_load(tmp_path / "motion_module.pth").items() if k.endswith(".pos_encoder.pe"))
        assert n_loaded == n_spatial + n_motion - tables
        assert n_loaded > 1.2e9            # SD1.5 UNet (~860 M) + motion modules (~450 M)
        assert len(got_ref.state_dict()) == len(ref_keys)
        del denoiser, base, got_ref
        pose = PoseController(320, RELEASED_POSE_CHANNELS)
        torch.save({k: torch.randn_like(v) for k, v in pose.state_dict().items()}, tmp_path / "pose_guider.pth")
        load_strict(PoseController(320, RELEASED_POSE_CHANNELS), _torch_load(tmp_path / "pose_guider.pth"), "pose_guider.pth")
    finally:
        torch.set_default_dtype(old)
