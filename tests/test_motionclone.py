"""MotionClone on tiny AnimateDiff-shaped models built from config, saved with save_pretrained
and loaded through the real loader (directly and through the weights manager). The weights
are random: these tests check the plumbing and the algebra (masks, energy, gradient sign,
step schedule, determinism), never a quality number."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from diffusers import DDIMScheduler
from tiny_models import save_tiny_animatediff, save_tiny_ldm_single_file, save_tiny_sd15_configs

from motiongrid.bench import weights
from motiongrid.bench.clip import Clip
from motiongrid.bench.video import Video
from motiongrid.methods import animatediff as ad
from motiongrid.methods import animatediff_weights as adw
from motiongrid.methods.backbone import load_backbone
from motiongrid.methods.motionclone import adapters
from motiongrid.methods.motionclone import guidance as mc

FRAMES, SIZE = ad.ANIMATEDIFF_FRAMES, 32


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A local model folder and a weights home holding the registered entries, tiny."""
    root = tmp_path_factory.mktemp("motionclone")
    local = root / "tiny-animatediff"
    save_tiny_animatediff(local, size=SIZE)
    mp = pytest.MonkeyPatch()
    mp.setenv("MOTIONGRID_WEIGHTS", str(root / "weights"))
    mp.setenv("MOTIONGRID_CACHE", str(root / "cache"))
    target = {name: weights.get(name).target() for name in (ad.BASE_WEIGHTS, ad.ADAPTER_WEIGHTS, ad.VAE_WEIGHTS)}
    save_tiny_animatediff(target[ad.BASE_WEIGHTS], target[ad.ADAPTER_WEIGHTS], target[ad.VAE_WEIGHTS], size=SIZE)
    yield {"local": f"animatediff:{local}", "root": root}
    mp.undo()
    adapters._BackboneMethod._backbones.clear()


@pytest.fixture(scope="module")
def backbone(env):
    return load_backbone(env["local"], torch.device("cpu"))


def _moving_square(frames=24, size=48):
    video = torch.full((frames, 3, size, size), 0.1)
    for t in range(frames):
        x = 4 + t
        video[t, :, 10:22, x:x + 12] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]
    return video


@pytest.fixture(scope="module")
def clip():
    frames = _moving_square()
    return Clip(id="square", prompt="a red square", loader=lambda: Video(frames, 8.0), source_hash="sq-v1")


@pytest.fixture(scope="module")
def reference(backbone, clip):
    return mc.extract_motion_representation(backbone, clip.frames, t_alpha=400, blocks="up_blocks.1", k=1)


def _maps_at(backbone, latents, t, names, context=None):
    context = backbone.encode_prompt(["a red square"]) if context is None else context
    with torch.no_grad(), mc.record_temporal_attention(backbone.unet, names) as maps:
        mc._unet(backbone, latents, torch.as_tensor(t), context)
    return maps


def _energy_at(backbone, latents, t, reference):
    return float(mc.motion_energy(_maps_at(backbone, latents, t, list(reference)), reference))


# ---- masks and energy ---------------------------------------------------------------------

def test_plain_mask_is_all_ones():
    probs = torch.randn(6, 2, 5, 5).softmax(-1)
    values, indices = mc.select_entries(probs, "plain")
    assert mc.entry_mask(indices, 5).all()
    torch.testing.assert_close(probs.gather(-1, indices.long()), values)


@pytest.mark.parametrize("k", [1, 2])
def test_primary_mask_selects_topk_along_key_axis(k):
    probs = torch.randn(6, 2, 5, 5).softmax(-1)
    values, indices = mc.select_entries(probs, "primary", k)
    mask = mc.entry_mask(indices, 5)
    assert values.shape == (6, 2, 5, k)
    assert (mask.sum(-1) == k).all()
    kept_min = probs.masked_fill(~mask, 2.0).amin(-1)
    dropped_max = probs.masked_fill(mask, -1.0).amax(-1)
    assert (kept_min >= dropped_max).all()
    torch.testing.assert_close(values.sum(-1), (probs * mask).sum(-1))
    with pytest.raises(ValueError, match="k=6"):
        mc.select_entries(probs, "primary", 6)


def test_representation_shapes_and_blocks(backbone, reference):
    names = mc.temporal_attention_names(backbone.unet, "up_blocks.1")
    assert list(reference) == names and len(names) == 4  # 2 motion modules x 2 temporal attentions
    values, indices = reference[names[0]]
    assert values.shape == ((SIZE // 2) ** 2, 2, FRAMES, 1) and indices.dtype == torch.uint8
    with pytest.raises(ValueError, match="up_blocks.1"):
        mc.temporal_attention_names(backbone.unet, "up_blocks.9")


@pytest.mark.parametrize("mask", ["primary", "plain"])
def test_energy_is_zero_when_generated_maps_equal_reference(backbone, mask):
    x = torch.randn(1, *backbone.latent_shape())
    names = mc.temporal_attention_names(backbone.unet, "up_blocks.1")
    maps = _maps_at(backbone, x, 500, names)
    reference = {n: mc.select_entries(m, mask, 2) for n, m in maps.items()}
    assert float(mc.motion_energy(maps, reference)) == 0.0
    other = _maps_at(backbone, torch.randn_like(x), 500, names)
    assert float(mc.motion_energy(other, reference)) > 0.0


def test_gradient_step_on_latent_lowers_energy(backbone, reference):
    x = torch.randn(1, *backbone.latent_shape(), generator=torch.Generator().manual_seed(1))
    t = torch.tensor(600)
    cond = backbone.encode_prompt(["a red square"])
    _, energy, grad = mc.energy_and_grad(backbone, x, t, cond, reference)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    step = 0.05 * x.norm() / grad.norm()
    assert _energy_at(backbone, x - step * grad, t, reference) < float(energy)


def test_only_guided_blocks_are_differentiated(backbone):
    x = torch.randn(1, *backbone.latent_shape()).requires_grad_(True)
    names = mc.temporal_attention_names(backbone.unet, "down_blocks.0")
    with mc.record_temporal_attention(backbone.unet, names, after="no_grad") as maps:
        out = mc._unet(backbone, x, torch.tensor(500), backbone.encode_prompt([""]))
    assert all(m.requires_grad for m in maps.values())
    assert not out.requires_grad  # everything after the last guided map ran without autograd
    assert torch.is_grad_enabled()


# ---- sampling -----------------------------------------------------------------------------

def _with_prediction(backbone, kind):
    if kind == "epsilon":
        return backbone
    bb = copy.copy(backbone)
    bb.scheduler = type(backbone.scheduler).from_config(backbone.scheduler.config, prediction_type=kind)
    return bb


@pytest.mark.parametrize("kind,update,weight", [("epsilon", "eps", 1e5), ("v_prediction", "eps", 1e5),
                                                ("v_prediction", "released", 4e4)])
def test_guided_step_ends_at_lower_energy_than_unguided_step(backbone, reference, kind, update, weight):
    bb = _with_prediction(backbone, kind)
    bb.scheduler.set_timesteps(10)
    t0, t1 = bb.scheduler.timesteps[:2]
    x = mc.initial_noise(bb, seed=5)
    cond, uncond = bb.encode_prompt(["a red square"]), bb.encode_prompt([""])
    x_u, none = mc.denoise_step(bb, x, t0, int(t1), cond, uncond, 7.5)
    x_g, energy = mc.denoise_step(bb, x, t0, int(t1), cond, uncond, 7.5, reference, weight, update)
    assert none is None and energy > 0
    e_u, e_g = _energy_at(bb, x_u, t1, reference), _energy_at(bb, x_g, t1, reference)
    assert e_g < e_u * 0.98, (e_g, e_u)  # a flipped sign raises it instead


def test_eps_conversion_round_trips():
    out, x, a = torch.randn(2, 3), torch.randn(2, 3), torch.tensor(0.3, dtype=torch.float64)
    for kind in ("epsilon", "v_prediction", "sample"):
        torch.testing.assert_close(mc._from_eps(mc._to_eps(out, x, a, kind), x, a, kind), out)


def test_guidance_schedule_follows_released_ramps():
    s = mc.ramp_scales(50, 100, ramp=10)
    assert s[0] == pytest.approx(0.1) and s[9] == 1.0 and s[40] == 1.0
    assert s[41] == pytest.approx(0.9) and s[49] == pytest.approx(0.1) and s[50:] == [0.0] * 50
    assert mc.ramp_scales(30, 100)[:6] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0])
    assert mc.ramp_scales(0, 4) == [0.0] * 4
    with pytest.raises(ValueError, match="guided_steps=6 exceeds steps=5"):
        adapters.MotionCloneParams(model="toy", steps=5, guided_steps=6)


def test_guidance_touches_only_configured_steps(env, clip, monkeypatch):
    recorded = []
    original = mc._Recorder.record
    monkeypatch.setattr(mc._Recorder, "record", lambda self, n, p: (recorded.append(n), original(self, n, p))[1])
    method = adapters.MotionCloneMethod()
    method.prepare(torch.device("cpu"))
    method.cache.enabled = False
    params = adapters.MotionCloneParams(model=env["local"], steps=5, guided_fraction=0.4, guidance_weight=1e3, cfg=2.0)
    method.generate(clip, params, seed=0)
    trace = method.last_trace
    assert [s["energy"] is not None for s in trace] == [True, True, False, False, False]
    assert [s["weight"] > 0 for s in trace] == [True, True, False, False, False]
    assert len(recorded) == 4 * (1 + 2)  # 4 maps: one reference pass + two guided steps, no others


def test_same_seed_same_video_and_zero_weight_is_unguided(env, clip):
    unguided, clone = adapters.UnguidedMethod(), adapters.MotionCloneMethod()
    for m in (unguided, clone):
        m.prepare(torch.device("cpu"))
    base = dict(model=env["local"], steps=3, cfg=2.0)
    a = unguided.generate(clip, adapters.SamplerParams(**base), seed=3)
    b = unguided.generate(clip, adapters.SamplerParams(**base), seed=3)
    c = unguided.generate(clip, adapters.SamplerParams(**base), seed=4)
    assert a.frames.shape == (FRAMES, 3, SIZE, SIZE) and a.fps == 8.0
    assert 0 <= float(a.frames.min()) and float(a.frames.max()) <= 1
    assert torch.equal(a.frames, b.frames) and not torch.equal(a.frames, c.frames)

    p = adapters.MotionCloneParams(**base, guided_fraction=0.7, guidance_weight=5e3, mask="plain")
    g1 = clone.generate(clip, p, seed=3)
    hits = clone.cache.hits
    g2 = clone.generate(clip, p, seed=3)
    assert clone.cache.hits == hits + 1  # the representation came from the disk cache
    assert torch.equal(g1.frames, g2.frames) and not torch.equal(g1.frames, a.frames)
    zero = clone.generate(clip, p.model_copy(update={"guidance_weight": 0.0}), seed=3)
    assert torch.equal(zero.frames, a.frames)


# ---- loading ------------------------------------------------------------------------------

def test_loads_registered_animatediff_through_weights_manager(env):
    bb = load_backbone("animatediff", torch.device("cpu"))
    assert isinstance(bb, ad.AnimateDiffBackbone)
    assert (bb.num_frames, bb.height, bb.width) == (FRAMES, SIZE, SIZE)
    assert bb.latent_shape() == (4, FRAMES, SIZE // 2, SIZE // 2)
    assert "hf://guoyww/animatediff-motion-adapter-v1-5-3" in bb.fingerprint["sources"]
    assert bb.default_steps == 100 and bb.default_cfg == 7.5


def test_released_single_checkpoint_imports_and_loads_as_released(env, tmp_path, monkeypatch):
    """`weights import DIR` with the release's single original-format file (tiny, fp16, written
    in the CompVis layout) and the SD1.5 configs converts it through diffusers' single-file
    loader into the `animatediff:released` model: every UNet, VAE and text-encoder tensor equals
    the one the file was written from, the file's sha256 is recorded, and the backbone loads."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    from motiongrid.bench.hashing import sha256_file

    monkeypatch.setenv("MOTIONGRID_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    original = save_tiny_animatediff(tmp_path / "original", size=SIZE, seed=7)
    transfer = tmp_path / "transfer"
    single = save_tiny_ldm_single_file(original, transfer / adw.RELEASED_BASE_FILE)

    # without the SD1.5 configs the file cannot be converted: rejected with the fix, nothing left
    result = {r.name: r for r in weights.import_dir(transfer)}[adw.RELEASED_BASE_WEIGHTS]
    assert result.status == "rejected" and "motiongrid weights fetch sd15-configs" in result.detail
    assert not weights.get(adw.RELEASED_BASE_WEIGHTS).target().exists()
    assert not list(weights.weights_home().glob(".*.part"))

    # configs and the file in one DIR: the configs are installed first, then the file converted
    save_tiny_sd15_configs(original, transfer / adw.SD15_CONFIGS / "stable-diffusion-v1-5-configs")
    save_tiny_animatediff(tmp_path / "adapter-src", adapter_dir=transfer / ad.ADAPTER_WEIGHTS /
                          "animatediff-motion-adapter-v1-5-3", size=SIZE)
    results = {r.name: r for r in weights.import_dir(transfer)}
    assert results[adw.SD15_CONFIGS].status == "installed"
    assert results[adw.RELEASED_BASE_WEIGHTS].status == "installed", results[adw.RELEASED_BASE_WEIGHTS].detail
    folder = weights.require(adw.RELEASED_BASE_WEIGHTS)
    for sub, cls in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL), ("text_encoder", CLIPTextModel)):
        want, got = cls.from_pretrained(original / sub).state_dict(), cls.from_pretrained(folder / sub).state_dict()
        assert want.keys() == got.keys(), sub
        for key in want:   # the file holds fp16: equal to the originals rounded to fp16
            assert torch.equal(got[key].float(), want[key].half().float()), f"{sub}.{key}"
    record = json.loads((folder / adw.SOURCE_RECORD).read_text())
    assert record["file"] == adw.RELEASED_BASE_FILE and record["sha256"] == sha256_file(single)
    assert record["dtype"] == "float16"

    bb = load_backbone(ad.RELEASED_MODEL_ID, torch.device("cpu"))
    assert "import only: civitai.com/models/4201" in bb.fingerprint["sources"][0]
    assert bb.fingerprint["model"] == "animatediff:released" and bb.fingerprint["base"] == ad._dir_digest(folder)
    unet2d = UNet2DConditionModel.from_pretrained(original / "unet").state_dict()
    assert torch.equal(bb.unet.state_dict()["conv_in.weight"], unet2d["conv_in.weight"].half().float())
    assert bb.text_encoder.dtype == torch.float32 and bb.vae.dtype == torch.float32   # fp32 on CPU

    # a file that is not a checkpoint is refused before any conversion
    (transfer / adw.RELEASED_BASE_FILE).write_bytes(b"\x10" * 64)
    bad = {r.name: r for r in weights.import_dir(transfer, overwrite=True)}[adw.RELEASED_BASE_WEIGHTS]
    assert bad.status == "rejected" and "not a safetensors file" in bad.detail
    assert weights.require(adw.RELEASED_BASE_WEIGHTS) == folder   # the installed folder is kept


def test_released_base_weights_name_their_source(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOTIONGRID_WEIGHTS", str(tmp_path / "none"))
    with pytest.raises(weights.WeightsMissing) as err:
        load_backbone(ad.RELEASED_MODEL_ID, torch.device("cpu"))
    message = str(err.value)
    assert adw.RELEASED_BASE_FILE in message and "civitai.com/models/4201" in message
    assert "motiongrid weights import DIR` (converted on import)" in message
    assert "animatediff:released" in weights.get(adw.RELEASED_BASE_WEIGHTS).description
    assert "animatediff:released" in weights.get(ad.BASE_WEIGHTS).description
    from motiongrid.bench.cli import main  # `weights list` says which base is the release's file
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["weights", "list"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert any(line.startswith("note: realistic-vision-v6: ") and "NOT the file MotionClone's release loads" in line
               for line in notes)
    assert any(line.startswith("note: realistic-vision-v6-released: ") for line in notes)


def test_missing_weights_give_the_fix_command(env, tmp_path, monkeypatch):
    import diffusers

    def boom(*a, **k):
        raise AssertionError("diffusers was called before the weights check")

    monkeypatch.setattr(diffusers.UNet2DConditionModel, "from_pretrained", boom)
    monkeypatch.setenv("MOTIONGRID_WEIGHTS", str(tmp_path / "empty"))
    with pytest.raises(weights.WeightsMissing, match="motiongrid weights fetch realistic-vision-v6"):
        load_backbone("animatediff", torch.device("cpu"))
    local = tmp_path / "no-adapter"
    for sub in ("unet", "vae", "text_encoder"):
        (local / sub).mkdir(parents=True)
        (local / sub / "config.json").write_text("{}")
    (local / "tokenizer").mkdir()
    with pytest.raises(weights.WeightsMissing, match="motiongrid weights fetch animatediff-motion-adapter-v3"):
        load_backbone(f"animatediff:{local}", torch.device("cpu"))
    with pytest.raises(weights.WeightsMissing, match="not a local directory"):
        load_backbone(f"animatediff:{tmp_path / 'nowhere'}", torch.device("cpu"))


# ---- pinned to the released code (issue 10): each fails when its behaviour is broken -------

def test_released_timestep_lists_match_the_released_configs():
    camera = mc.released_timesteps(100, 50, 700)
    assert camera[:5] == [999, 993, 987, 981, 975] and camera[45:52] == [724, 718, 712, 706, 700, 699, 685]
    assert camera[-3:] == [29, 14, 0] and len(set(camera)) == 100
    obj = mc.released_timesteps(300, 180, 600)
    assert obj[:4] == [999, 997, 995, 992] and obj[178:182] == [602, 600, 599, 594] and obj[-2:] == [5, 0]
    sched = mc.released_schedule(DDIMScheduler(**ad.ANIMATEDIFF_SCHEDULER), 100, 50, 700)
    assert sched.prev[:2] == [993, 987] and sched.prev[49] == 699 and sched.prev[-1] == -1
    guided_t = [t for t, s in zip(sched.timesteps, sched.scales) if s > 0]
    assert guided_t == camera[:50] and min(guided_t) == 700      # the guided steps' timesteps, not indices


def test_animatediff_defaults_to_the_released_camera_schedule(env, clip):
    method = adapters.MotionCloneMethod()
    method.prepare(torch.device("cpu"))
    bb = method.backbone(env["local"])
    default = method.schedule(bb, adapters.MotionCloneParams(model=env["local"]))
    assert default.kind == "released" and default.timesteps == mc.released_timesteps(100, 50, 700)
    obj = method.schedule(bb, adapters.MotionCloneParams(model=env["local"], preset="object"))
    assert len(obj.timesteps) == 300 and sum(s > 0 for s in obj.scales) == 180
    assert min(t for t, s in zip(obj.timesteps, obj.scales) if s > 0) == 600
    uniform = method.schedule(bb, adapters.MotionCloneParams(model=env["local"], schedule="uniform"))
    assert uniform.timesteps[:2] == [991, 981] and sum(s > 0 for s in uniform.scales) == 50


def test_ddim_step_equals_diffusers_on_uniform_spacing(backbone):
    for kind in ("epsilon", "v_prediction"):
        bb = _with_prediction(backbone, kind)
        sched = bb.scheduler
        sched.set_timesteps(10)
        x, out = torch.randn(1, *bb.latent_shape()), torch.randn(1, *bb.latent_shape())
        for t in sched.timesteps[:3]:
            prev = int(t) - 100
            torch.testing.assert_close(mc.ddim_step(sched, out, int(t), prev, x), sched.step(out, t, x).prev_sample)


def test_released_update_closed_form_and_cfg_in_the_guided_branch(backbone, monkeypatch):
    """One guided step, computed by hand: x̂0 and the direction from ε_cfg = c + s·(c − u), the
    correction −√(1−ᾱ_prev)·λ·√(1−ᾱ_t)·∇g. A flipped sign, CFG in diffusers' form u + s·(c − u)
    or the correction inside x̂0 all give another number."""
    shape = (1, *backbone.latent_shape())
    gen = torch.Generator().manual_seed(3)
    x, c, u, grad = (torch.randn(shape, generator=gen) for _ in range(4))
    # energy_and_grad returns ∇(scale·g): the scaled energy is what it differentiates
    monkeypatch.setattr(mc, "energy_and_grad", lambda *a, scale=1.0, **k: (c, torch.tensor(2.0), scale * grad))
    monkeypatch.setattr(mc, "_unet", lambda *a, **k: u)
    t, prev, cfg, lam = 700, 650, 3.0, 50.0
    got, energy = mc.denoise_step(backbone, x, t, prev, None, None, cfg, {"m": None}, lam, "released")
    acp = backbone.scheduler.alphas_cumprod.double()
    a, ap = acp[t], acp[prev]
    eps = (c + cfg * (c - u)).double()                                 # epsilon prediction (tiny AnimateDiff)
    x0 = (x.double() - (1 - a).sqrt() * eps) / a.sqrt()
    want = ap.sqrt() * x0 + (1 - ap).sqrt() * eps - (1 - ap).sqrt() * lam * (1 - a).sqrt() * grad.double()
    assert energy == 2.0
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_energy_exact_value_on_hand_made_maps():
    """g = Σ_maps mean over the selected entries of (A_gen − A_ref)²: two maps of different
    sizes, so a sum over entries or a mean over maps gives another number."""
    a1 = torch.tensor([[[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]]])        # (1 pos, 1 head, 3, 3)
    ref1 = (torch.tensor([[[[0.5], [0.9], [0.4]]]]), torch.tensor([[[[0], [1], [2]]]], dtype=torch.uint8))
    a2 = a1.repeat(2, 1, 1, 1)
    ref2 = (torch.full((2, 1, 3, 1), 0.1), torch.tensor([[[[1], [0], [0]]]], dtype=torch.uint8).repeat(2, 1, 1, 1))
    e1 = ((0.7 - 0.5) ** 2 + (0.8 - 0.9) ** 2 + (0.4 - 0.4) ** 2) / 3
    e2 = ((0.2 - 0.1) ** 2 + (0.1 - 0.1) ** 2 + (0.3 - 0.1) ** 2) / 3
    got = float(mc.motion_energy({"m1": a1, "m2": a2}, {"m1": ref1, "m2": ref2}))
    assert got == pytest.approx(e1 + e2, rel=1e-6)


def test_recorded_maps_are_row_stochastic_over_keys_and_topk_is_over_keys(backbone):
    names = mc.temporal_attention_names(backbone.unet, "up_blocks.1")
    maps = _maps_at(backbone, torch.randn(1, *backbone.latent_shape()), 500, names)
    for m in maps.values():
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]))     # rows (queries) sum to 1
        assert not torch.allclose(m.sum(-2), torch.ones(m.shape[:-2] + m.shape[-1:]), atol=1e-3)  # not columns
    a = torch.tensor([[[[0.6, 0.3, 0.1], [0.5, 0.1, 0.4], [0.1, 0.2, 0.7]]]])
    values, idx = mc.select_entries(a, "primary", 1)
    assert idx.flatten().tolist() == [0, 0, 2] and values.flatten().tolist() == pytest.approx([0.6, 0.5, 0.7])


def test_extraction_uses_t_alpha_the_empty_prompt_and_the_generation_noise(backbone, clip, monkeypatch):
    calls = []
    real_unet, real_noise = mc._unet, backbone.scheduler.add_noise
    monkeypatch.setattr(mc, "_unet", lambda bb, x, t, ctx: (calls.append((t, ctx)), real_unet(bb, x, t, ctx))[1])
    noises = []
    monkeypatch.setattr(backbone.scheduler, "add_noise", lambda x0, n, t: (noises.append(n), real_noise(x0, n, t))[1])
    mc.extract_motion_representation(backbone, clip.frames, t_alpha=400, blocks="up_blocks.1", seed=11)
    (t, ctx), = calls
    assert t.tolist() == [400]
    torch.testing.assert_close(ctx, backbone.encode_prompt([""]))
    torch.testing.assert_close(noises[0], mc.initial_noise(backbone, 11))    # x_T of seed 11, as released
