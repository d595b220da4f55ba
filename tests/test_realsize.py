"""Real-size architectures with random weights (shape-only): one guided step of each method
runs at the real widths, heads and block structure on small latents (8 frames, 16×16) on the
CPU. Nothing here is a metric value."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


def test_motionclone_guided_step_at_real_size():
    from types import SimpleNamespace

    from diffusers import DDIMScheduler

    import motiongrid.methods.motionclone.guidance as mc
    from motiongrid.methods.animatediff import ANIMATEDIFF_SCHEDULER
    from motiongrid.methods.animatediff_released import motion_norm_of
    from motiongrid.methods.realsize import build_real_size

    unet = build_real_size("motionclone")["unet"]
    assert motion_norm_of(unet) == "released"
    assert sum(p.numel() for p in unet.parameters()) == pytest.approx(1.31e9, rel=0.05)   # SD1.5 0.86 B + v3 mm 0.45 B
    bb = SimpleNamespace(unet=unet, scheduler=DDIMScheduler(**ANIMATEDIFF_SCHEDULER), dtype=torch.float32,
                         device=torch.device("cpu"))
    names = mc.temporal_attention_names(unet, "up_blocks.1")
    assert len(names) == 6                                  # 3 motion modules × 2 attentions, as released
    g = torch.Generator().manual_seed(0)
    x_ref, x = (torch.randn(1, 4, 8, 16, 16, generator=g) for _ in range(2))
    cond, uncond = (torch.randn(1, 77, 768, generator=g) for _ in range(2))
    with torch.no_grad(), mc.record_temporal_attention(unet, names, after="stop") as maps:
        mc._unet(bb, x_ref, torch.tensor(400), uncond)
    reference = {n: mc.select_entries(m, "primary", 1) for n, m in maps.items()}
    assert maps[names[0]].shape == ((16 // 4) ** 2, 8, 8, 8)   # (h·w at up_blocks.1: latent / 4, heads, F, F)
    plain, _ = mc.denoise_step(bb, x, 980, 960, cond, uncond, 7.5)
    guided, energy = mc.denoise_step(bb, x, 980, 960, cond, uncond, 7.5, reference, 2000.0, "released")
    assert torch.isfinite(guided).all() and energy > 0
    assert not torch.allclose(guided, plain, atol=1e-6)


def test_motionfollower_guided_editing_step_at_real_size():
    from diffusers import DDIMScheduler

    from motiongrid.methods.motionfollower.model import EditBackbone
    from motiongrid.methods.motionfollower.real import SCHEDULER_CONFIG
    from motiongrid.methods.motionfollower.sampler import (
        EditInputsOnDevice,
        EditSampler,
        EditSchedule,
        ddim_update,
        timesteps,
    )
    from motiongrid.methods.realsize import build_real_size

    m = build_real_size("motionfollower", base_unet=False)     # the estimator's UNet: same architecture
    for p in m["pose_controller"].conv_out.parameters():      # as if trained: not the zero init
        p.data.normal_(0, 0.02)
    frames, size = 8, 128
    bb = EditBackbone(model_id="realsize", unet=m["unet"], scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
                      num_frames=frames, height=size, width=size, device=torch.device("cpu"), dtype=torch.float32,
                      fingerprint={}, pose_controller=m["pose_controller"], reference_controller=m["reference_controller"],
                      base_unet=m["base_unet"])
    bb.reference_config = lambda: {"channels": (320, 640, 1280, 1280), "num_res_blocks": 2, "downscale_factor": 8}
    g = torch.Generator().manual_seed(0)
    source = torch.rand(frames, 3, size, size, generator=g)
    poses = torch.rand(2, frames, 3, size, size, generator=g)
    S = torch.zeros(frames, size, size, dtype=torch.bool)
    S[:, 32:96, 16:64] = True
    T = torch.zeros_like(S)
    T[:, 32:96, 64:112] = True
    with torch.no_grad():
        inp = EditInputsOnDevice(torch.randn(frames, 1, 768, generator=g), bb.pose_features(poses[0]),
                                 bb.pose_features(poses[1]), bb.reference_features(source),
                                 bb.reference_features(source, estimator=True), S, T)
    sampler = EditSampler(bb, 50, 7.0, 4.0, EditSchedule.released(50))
    t, prev = timesteps(bb.scheduler, 50)[0]
    x = torch.randn(1, 4, frames, size // 8, size // 8, generator=g)
    info = {"guidance_calls": 0, "dropped_frame_terms": {}, "energy": []}
    R = sampler.recon_features(0, x, t, inp, {})
    assert [r.shape[1] for r in R] == [1280, 640]            # up_blocks[1], up_blocks[2] widths
    guidance = sampler.guidance(x, t, R, inp, info)
    assert torch.isfinite(guidance).all() and guidance.abs().sum() > 0
    with torch.no_grad():
        v = sampler._unet_pass(bb.unet, x, t, inp.context, inp.target_pose, inp.reference)
    plain = ddim_update(x, v, t, prev, bb.scheduler)
    guided = ddim_update(x, v, t, prev, bb.scheduler, guidance)
    assert torch.isfinite(guided).all() and not torch.allclose(guided, plain, atol=1e-6)
