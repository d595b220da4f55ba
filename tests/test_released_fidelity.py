"""The real-size models compute what the released code computes (issues 20 and 27): the
original AnimateDiff motion module's per-frame GroupNorm, parameters added without changing
the keys of cells made before them, MotionFollower's per-mode cfg and estimator seed."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from motiongrid.methods.animatediff_released import motion_norm_of, motion_transformers, set_motion_norm


def _motion_transformer(channels=8, groups=2):
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    torch.manual_seed(0)
    m = AnimateDiffTransformer3D(num_attention_heads=2, attention_head_dim=channels // 2, in_channels=channels,
                                 norm_num_groups=groups, positional_embeddings="sinusoidal",
                                 num_positional_embeddings=16, double_self_attention=True)
    for p in m.parameters():        # diffusers zero-initialises nothing here, but be explicit: all random
        p.data.normal_()
    return m.eval()


def _frames_with_different_statistics(b=1, f=4, c=8, h=3, w=3):
    g = torch.Generator().manual_seed(1)
    scale = torch.arange(1, f + 1, dtype=torch.float32).view(1, f, 1, 1, 1)   # each frame its own scale/offset
    return (torch.randn(b, f, c, h, w, generator=g) * scale + scale).reshape(b * f, c, h, w)


def _norm_io(module, x, frames):
    seen = {}
    handle = module.norm.register_forward_hook(lambda m, args, out: seen.update(x=args[0], y=out))
    with torch.no_grad():
        module(x, num_frames=frames)
    handle.remove()
    return seen["x"], seen["y"]


def test_released_motion_norm_normalises_each_frame_on_its_own():
    """The released TemporalTransformer3DModel: GroupNorm of (b f) c h w. Checked against an
    independent per-frame computation; diffusers' form (statistics over all frames) fails it."""
    m = _motion_transformer()
    x = _frames_with_different_statistics()
    set_motion_norm(m, "released")
    assert motion_norm_of(m) == "released"
    inp, out = _norm_io(m, x, 4)                              # inp: (b, c, f, h, w)
    b, c, f, h, w = inp.shape
    per_frame = inp.permute(0, 2, 1, 3, 4).reshape(b * f, 2, -1)          # (b f) × groups × rest
    mean, var = per_frame.mean(-1, keepdim=True), per_frame.var(-1, unbiased=False, keepdim=True)
    expected = ((per_frame - mean) / torch.sqrt(var + m.norm.eps)).reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
    expected = expected * m.norm.weight.view(1, c, 1, 1, 1) + m.norm.bias.view(1, c, 1, 1, 1)
    assert torch.allclose(out, expected, atol=1e-5)
    # diffusers' form spans the frames: not the released computation
    set_motion_norm(m, "diffusers")
    assert motion_norm_of(m) == "diffusers"
    _, spanning = _norm_io(m, x, 4)
    assert not torch.allclose(spanning, expected, atol=1e-2)
    assert torch.allclose(spanning, F.group_norm(inp, 2, m.norm.weight, m.norm.bias, m.norm.eps), atol=1e-5)


def tiny_motion_unet():
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    torch.manual_seed(0)
    unet2d = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    adapter = MotionAdapter(block_out_channels=(16, 32), motion_layers_per_block=1, motion_num_attention_heads=2,
                            motion_norm_num_groups=8, motion_max_seq_length=32)
    unet = UNetMotionModel.from_unet2d(unet2d, adapter)
    for name, p in unet.named_parameters():
        if ".motion_modules." in name:      # trained-looking motion modules (proj_out is not zero)
            p.data.normal_(0, 0.2)
    return unet.eval()


def test_motion_norm_switch_keeps_weights_and_changes_every_motion_module():
    unet = tiny_motion_unet()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    x = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.5, 2, 4).view(1, 1, 4, 1, 1)
    ctx = torch.randn(4, 7, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        set_motion_norm(unet, "diffusers")
        a = unet(x, 500, encoder_hidden_states=ctx).sample
        set_motion_norm(unet, "released")
        b = unet(x, 500, encoder_hidden_states=ctx).sample
        set_motion_norm(unet, "diffusers")
        c = unet(x, 500, encoder_hidden_states=ctx).sample
    assert torch.equal(a, c) and not torch.allclose(a, b, atol=1e-4)
    assert unet.state_dict().keys() == before.keys()
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in before.items())
    assert len(motion_transformers(unet)) > 0
    with pytest.raises(ValueError, match="motion_norm must be one of"):
        set_motion_norm(unet, "frames")


# ---- cell keys: parameters added later ----------------------------------------------------------

def test_new_parameters_leave_existing_keys_and_enter_them_when_set():
    from motiongrid.bench.grid import make_label
    from motiongrid.methods.motionclone.params import MotionCloneParams
    from motiongrid.methods.motionfollower.params import MotionFollowerParams, settings_fingerprint

    toy = MotionFollowerParams(model="toy-motionfollower")
    assert set(toy.model_dump(mode="json")) == {"model", "energy_scale", "guided_steps", "cfg", "steps", "frames",
                                                "estimator", "mask_roles", "camera"}   # as keyed before
    assert settings_fingerprint(toy) == {}
    assert "motion_norm" not in MotionCloneParams(model="toy").model_dump(mode="json")
    set_ = MotionFollowerParams(model="toy-motionfollower", estimator_seed=3, memory="cache", motion_norm="released")
    assert {"estimator_seed": 3, "memory": "cache", "motion_norm": "released"}.items() <= set_.model_dump(mode="json").items()
    assert settings_fingerprint(set_) == {"motion_norm": "released"}
    assert make_label("motionfollower", set_) == \
        "motionfollower(estimator_seed=3,memory=cache,model=toy-motionfollower,motion_norm=released)"
    # the released model keys its resolved settings: per-mode cfg, norm, estimator seed
    assert settings_fingerprint(MotionFollowerParams()) == {"motion_norm": "released", "estimator_seed": 0, "cfg": 7.0}
    assert settings_fingerprint(MotionFollowerParams(camera=True, estimator_seed=5))["cfg"] == 3.5
    assert settings_fingerprint(MotionFollowerParams(camera=True, estimator_seed=5))["estimator_seed"] == 5


# ---- MotionClone (issue 27) -----------------------------------------------------------------------

def test_reference_frames_are_the_released_floor_indices():
    """The release: np.linspace(0, total - 1, count, dtype=int). Expected values worked out by
    hand (position i·(total−1)/(count−1), rounded down)."""
    from motiongrid.methods.motionclone.guidance import released_frame_indices

    assert released_frame_indices(6, 4) == [0, 1, 3, 5]             # rounding: 0, 2, 3, 5
    assert released_frame_indices(10, 8) == [0, 1, 2, 3, 5, 6, 7, 9]  # rounding: 0, 1, 3, 4, 5, 6, 8, 9
    assert released_frame_indices(24, 16) == [0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 18, 19, 21, 23]
    assert released_frame_indices(16, 16) == list(range(16))
    assert released_frame_indices(5, 8) == [0, 0, 1, 1, 2, 2, 3, 4]   # a short clip repeats frames


def test_motionclone_reference_uses_the_released_frames():
    from types import SimpleNamespace

    from motiongrid.methods.motionclone.guidance import reference_latents

    frames = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 3, 8, 8) / 10   # frame i is i/10
    stub = SimpleNamespace(num_frames=4, height=8, width=8, encode_video=lambda x: x)
    picked = reference_latents(stub, frames)
    assert [round(float(f.mean()) * 10) for f in picked] == [0, 1, 3, 5]


def _attention_gradient(dtype, scale, positions=8192, frames=16, width=64, heads=8):
    """∇_h (scale · E) / scale through one recorded temporal attention in ``dtype``, E in fp32
    as in guidance (MotionClone's energy over top-1 entries of a reference map)."""
    from diffusers.models.attention_processor import Attention

    import motiongrid.methods.motionclone.guidance as mc

    torch.manual_seed(0)
    attn = Attention(query_dim=width, heads=heads, dim_head=width // heads).to(dtype)
    g = torch.Generator().manual_seed(1)
    h = torch.randn(positions, frames, width, generator=g).to(dtype).requires_grad_(True)
    ref_probs = torch.softmax(torch.randn(positions, heads, frames, frames, generator=g) * 3, -1)
    reference = {"m": mc.select_entries(ref_probs, "primary", 1)}
    rec = mc._Recorder()
    rec.names, rec.maps = frozenset({"m"}), {}
    mc.TemporalAttentionProcessor("m", rec)(attn, h)
    energy = mc.motion_energy(rec.maps, reference)
    (grad,) = torch.autograd.grad(energy * scale, h)
    return grad.double() / scale


def test_scaled_energy_keeps_the_half_precision_gradient():
    """The release differentiates λ·ramp·E (λ = 2000) in fp16; differentiating E and scaling
    afterwards leaves the gradient in fp16's subnormals (≈2Δ/entries per entry). The scaled
    gradient agrees with fp32's in direction; the unscaled one does not."""
    reference = _attention_gradient(torch.float32, 1.0)
    scaled = _attention_gradient(torch.float16, 2000.0)
    plain = _attention_gradient(torch.float16, 1.0)

    def cos(a):
        return float(F.cosine_similarity(a.flatten(), reference.flatten(), dim=0))

    assert cos(scaled) > 0.99 and float((scaled == 0).double().mean()) < 0.05
    assert cos(plain) < 0.99 or float((plain == 0).double().mean()) > 0.5


def test_guided_step_differentiates_the_scaled_energy(monkeypatch):
    """denoise_step hands λ·ramp to energy_and_grad (so the backward carries it) and does not
    multiply the gradient again."""
    import motiongrid.methods.motionclone.guidance as mc

    seen = {}

    def fake(backbone, x, t, cond, reference, scale=1.0):
        seen["scale"] = scale
        return torch.zeros_like(x), torch.tensor(1.0), torch.ones_like(x)
    monkeypatch.setattr(mc, "energy_and_grad", fake)
    from types import SimpleNamespace

    from diffusers import DDIMScheduler

    sched = DDIMScheduler(beta_schedule="linear", beta_start=0.00085, beta_end=0.012)
    bb = SimpleNamespace(scheduler=sched, dtype=torch.float32)
    x = torch.zeros(1, 4, 2, 2, 2)
    out, _ = mc.denoise_step(bb, x, 500, 400, None, None, 0.0, {"m": None}, weight=300.0, update="released")
    a, a_prev = sched.alphas_cumprod[500].double(), sched.alphas_cumprod[400].double()
    assert seen["scale"] == 300.0
    assert torch.allclose(out.double(), -(1 - a_prev).sqrt() * (1 - a).sqrt() * torch.ones_like(x).double(), atol=1e-6)
