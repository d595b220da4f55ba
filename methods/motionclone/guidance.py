"""MotionClone's guidance (training-free motion cloning by temporal-attention guidance) and its unguided
baseline, on any video-diffusion :class:`Backbone` — the AnimateDiff backbone
(methods/animatediff.py) and the toy backbone (methods/toy/model.py).
See docs/methods.md (MotionClone) for the algorithm and the released code's settings.

Pipeline
  1. ``extract_motion_representation``: reference frames sampled uniformly to the backbone's
     frame count and resized, encoded, noised to ``t_alpha`` with a fixed seed, ONE UNet pass
     with the empty prompt; the temporal self-attention probabilities of the motion modules
     in ``blocks`` (each (B·h·w, heads, F, F), rows sum to 1) are recorded and reduced to the
     top-k values and key indices per (position, head, query frame). Plain control (M ≡ 1)
     is top-k with k = F: every entry, so one code path serves both masks.
  2. ``guided_sample``: DDIM (eta 0) with classifier-free guidance over a ``Schedule``
     (the released uneven timestep list, or diffusers' uniform spacing). On its first G
     guided steps (weight ramped up over the first ``ramp`` steps and down
     over the last ``ramp``, as the released code does with (i+1)/10 and (G−i)/10):
     energy g = Σ_maps mean over the selected entries (A_gen[..., idx] − A_ref_values)²,
     gradient w.r.t. the latent through the conditional branch only (the unconditional
     branch and everything after the last guided attention run without autograd), and the
     correction c = λ·ramp_i·√(1−ᾱ_t)·∇g applied in one of two forms (``update``):
       "released" (default): the released scheduler's form — x̂0 from the unguided ε_cfg, the
         correction only in the direction term: x_{t−1} = step(ε_cfg) − √(1−ᾱ_{t−1})·c.
       "eps": ε̂ = ε_cfg + c fed to the scheduler's ``step``, which recomputes x̂0 from ε̂
         (the model output is converted to ε and back, so ε- and v-prediction share it).
     Both descend g. Sign: g is a loss, so "eps" ADDS c (recomputing x̂0 from ε̂ turns +c into
     a move along −∇g) and "released" subtracts it in the direction term; the unit test that
     compares a guided and an unguided step from the same latent fails if either is flipped.

Conventions and defaults (and why)
  * CFG follows the released code: ε_cfg = ε_c + cfg·(ε_c − ε_u), so cfg = 7.5 is
    diffusers' guidance_scale 8.5. cfg = 0 means the conditional prediction alone.
  * Reduction: per-map mean over the selected entries (F.mse_loss), summed over maps — the
    released code's. It keeps the energy's scale independent of resolution, head count and
    k, so plain and primary (and k = 1, 2) are comparable at one weight. A sum would divide
    the useful λ by the entries per map (e.g. 32768 for AnimateDiff at 512², k = 1).
  * update "released" by default: (1) it is the released algorithm, so its λ = 2000 means
    what it meant there; (2) "eps" moves x_{t−1} by (√ᾱ_{t−1}·√(1−ᾱ_t)/√ᾱ_t − √(1−ᾱ_{t−1}))·c,
    which scales with the DDIM step (≈ 0.05 at 100 steps, vs ≈ 1 for "released"), so it needs
    a ~20× larger λ for the same effect — and near zero terminal SNR (the toy model's first
    trailing step, √ᾱ_999 ≈ 5e-5) that factor is ≈ 1e3: one step receives most of the
    guidance, its x̂0 is pushed far out and clipped. On the toy architecture (random
    weights, 25 steps) "eps" at λ = 1e3 did nearly all its energy reduction on that first
    step and at λ = 1e5 raised the energy 5×, while "released" lowered it monotonically in λ.
  * λ defaults: "released" 2000 (released configs); "eps" 4e4, which gives the same summed
    displacement Σ_i ramp_i·|∂x_{t−1}/∂ε|·√(1−ᾱ_t) over the default AnimateDiff schedule as
    the released camera config. Per-backbone calibrations go in CALIBRATED_WEIGHTS.
  * Timesteps: the released list (``released_timesteps``: G guided steps packed over
    threshold … 999, the rest over 0 … threshold − 1, each step targeting the next entry) with
    the released presets camera (100 / 50 / 700) and object (300 / 180 / 600); AnimateDiff
    defaults to camera. diffusers' uniform spacing (``schedule="uniform"``) would put the 50
    guided steps at t ≥ 500, ~38 % of the guidance weight below 700. Ramps: min(10, G/5)
    steps, the released 10 for G ≥ 50. The toy backbone keeps uniform spacing by default
    (its λ was calibrated there).
  * The reference is noised at t_alpha with the generation's own initial noise of the cell's
    seed, as released (so x_T and the extraction noise coincide).
  * steps / cfg / negative prompt default to the backbone's (``default_steps``,
    ``default_cfg`` in the convention above, ``default_negative_prompt``), else the released
    100 / 7.5 / "". AnimateDiff uses the released values and negative prompt.

Model ids (``model`` parameter): see methods/backbone.py ("animatediff", "toy",
"animatediff:<local diffusers SD1.5 folder>").
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from motiongrid.bench.memory_estimate import stage
from motiongrid.bench.video import VideoError, resize_frames
from motiongrid.methods.backbone import Backbone

# ---- released settings ------------------------------------------------------------------

RELEASED_STEPS = 100
RELEASED_CFG = 7.5
# Default λ per update form (module docstring: "released" is the released 2000, "eps" the
# same summed displacement); CALIBRATED_WEIGHTS[(model id, update)] overrides per backbone.
DEFAULT_WEIGHTS = {"released": 2000.0, "eps": 4e4}
# toy: from the configs/toy-full.toml sweep {2000, 8000, 32000}: primary control's motion
# fidelity rises with λ but SSIM falls past 8000 (artifacts); 8000 is the best trade-off.
CALIBRATED_WEIGHTS: dict[tuple[str, str], float] = {("toy", "released"): 8000.0}
MAX_RAMP = 10                 # released warm-up / cool-down length
# The released t2v configurations (configs/t2v_camera.yaml, t2v_object.yaml): DDIM steps, guided
# steps, and the timestep above which the guided steps are packed (int((1 − s)·1000) for the
# YAML's guidance_scale s = 0.3 / 0.4).
RELEASED_PRESETS = {"camera": {"steps": 100, "guided_steps": 50, "threshold": 700},
                    "object": {"steps": 300, "guided_steps": 180, "threshold": 600}}


# ---- recording temporal attention -------------------------------------------------------

class _MapsComplete(Exception):
    """Raised by the last recorded attention to end an extraction pass early."""


class _Recorder:
    """Shared by the motion-module processors of one UNet; records only while active."""

    def __init__(self):
        self.names: frozenset[str] = frozenset()
        self.maps: dict[str, torch.Tensor] | None = None
        self.after = "continue"

    def record(self, name: str, probs: torch.Tensor) -> None:
        self.maps[name] = probs
        if len(self.maps) == len(self.names):
            if self.after == "stop":
                raise _MapsComplete
            if self.after == "no_grad":  # nothing downstream of the last map feeds the energy
                torch.set_grad_enabled(False)


class TemporalAttentionProcessor:
    """Attention of a motion module. Computes like diffusers' AttnProcessor2_0 (SDPA); when its
    attention is being recorded it forms softmax(QKᵀ·scale) explicitly in fp32, keeps it
    (with its graph, for the energy gradient) and uses it for the output."""

    def __init__(self, name: str, recorder: _Recorder):
        self.name = name
        self.recorder = recorder

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, seq, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, seq, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if self.name in self.recorder.names:
            scores = query.float() @ key.float().transpose(-1, -2) * attn.scale
            if attention_mask is not None:
                scores = scores + attention_mask.float()
            probs = scores.softmax(dim=-1)  # (B·h·w, heads, F, F)
            out = probs.to(value.dtype) @ value
            self.recorder.record(self.name, probs)
        else:
            out = torch.nn.functional.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False, scale=attn.scale)

        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _recorder_for(unet: torch.nn.Module) -> _Recorder:
    """Install recording processors on every motion-module attention (once per UNet)."""
    rec = getattr(unet, "_motionclone_recorder", None)
    if rec is None:
        rec = _Recorder()
        procs = dict(unet.attn_processors)  # a fresh dict: set_attn_processor pops from it
        motion = [n for n in procs if "motion_modules" in n]
        if not motion:
            raise ValueError(f"{type(unet).__name__} has no attention inside 'motion_modules'; "
                             f"MotionClone needs a video UNet with temporal attention (UNetMotionModel)")
        for n in motion:
            procs[n] = TemporalAttentionProcessor(n.removesuffix(".processor"), rec)
        unet.set_attn_processor(procs)
        unet.requires_grad_(False)  # gradients flow to the latent only
        unet._motionclone_recorder = rec
    return rec


def temporal_attention_names(unet: torch.nn.Module, blocks: str) -> list[str]:
    """Motion-module attention names under the comma-separated module prefixes ``blocks``."""
    _recorder_for(unet)
    every = [n.removesuffix(".processor") for n in unet.attn_processors if "motion_modules" in n]
    prefixes = [p.strip() for p in blocks.split(",") if p.strip()]
    if not prefixes:
        raise ValueError("blocks is empty; give comma-separated module prefixes such as 'up_blocks.1'")
    chosen = set()
    for prefix in prefixes:
        hits = [n for n in every if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            known = sorted({n.split(".motion_modules")[0] for n in every})
            raise ValueError(f"blocks: {prefix!r} contains no motion-module attention; "
                             f"blocks with temporal attention: {', '.join(known)}")
        chosen.update(hits)
    return [n for n in every if n in chosen]


@contextmanager
def record_temporal_attention(unet: torch.nn.Module, names: list[str], after: str = "continue"):
    """Yield a dict that fills with {name: probs} during UNet calls inside the block.
    after="no_grad": the rest of the forward runs without autograd once the last map is in;
    after="stop": the forward ends there (extraction needs nothing else)."""
    rec = _recorder_for(unet)
    grad_mode = torch.is_grad_enabled()
    maps: dict[str, torch.Tensor] = {}
    rec.names, rec.maps, rec.after = frozenset(names), maps, after
    try:
        yield maps
    except _MapsComplete:
        pass
    finally:
        rec.names, rec.maps, rec.after = frozenset(), None, "continue"
        torch.set_grad_enabled(grad_mode)


# ---- motion representation and energy ---------------------------------------------------

Representation = dict[str, tuple[torch.Tensor, torch.Tensor]]  # name -> (values, key indices)


def select_entries(probs: torch.Tensor, mask: Literal["primary", "plain"], k: int = 1
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and key-frame indices kept per (position, head, query frame): the top-k for
    primary control, every entry (k = F) for plain control."""
    frames = probs.shape[-1]
    if mask == "plain":
        k = frames
    elif mask != "primary":
        raise ValueError(f"mask must be 'primary' or 'plain', got {mask!r}")
    if not 1 <= k <= frames:
        raise ValueError(f"k={k} must lie in 1..{frames} (the number of frames)")
    values, indices = probs.topk(k, dim=-1)
    return values, indices.to(torch.uint8 if frames <= 255 else torch.int16)


def entry_mask(indices: torch.Tensor, frames: int) -> torch.Tensor:
    """The mask M (bool, same shape as the maps) that ``indices`` select."""
    mask = torch.zeros(*indices.shape[:-1], frames, dtype=torch.bool, device=indices.device)
    return mask.scatter_(-1, indices.long(), True)


def motion_energy(maps: dict[str, torch.Tensor], reference: Representation) -> torch.Tensor:
    """Σ over maps of the mean squared difference at the reference's selected entries."""
    total = None
    for name, (values, indices) in reference.items():
        if name not in maps:
            raise KeyError(f"no generated attention map for {name!r}; recorded: {sorted(maps)}")
        gen = maps[name]
        picked = gen.gather(-1, indices.to(gen.device).long())
        term = (picked - values.to(gen.device, gen.dtype)).square().mean()
        total = term if total is None else total + term
    return total


def _unet(backbone: Backbone, latents: torch.Tensor, t, context: torch.Tensor) -> torch.Tensor:
    frames = latents.shape[2]
    out = backbone.unet(latents.to(backbone.dtype), t,
                        encoder_hidden_states=context.repeat_interleave(frames, dim=0)).sample
    return out.float()


def released_frame_indices(total: int, count: int) -> list[int]:
    """The release's reference frames: ``np.linspace(0, total − 1, count, dtype=int)``, i.e.
    uniform positions rounded DOWN (6 → 4 frames: 0, 1, 3, 5; rounding would give 0, 2, 3, 5)."""
    if total <= 0:
        raise VideoError("cannot sample frames from an empty video")
    return np.linspace(0, total - 1, count, dtype=int).tolist()


def reference_latents(backbone: Backbone, frames: torch.Tensor) -> torch.Tensor:
    """Clip frames (T,3,H,W in [0,1]) -> backbone input: the released frame sampling, resize, encode."""
    picked = frames[released_frame_indices(frames.shape[0], backbone.num_frames)]
    picked = resize_frames(picked, (backbone.height, backbone.width))
    return backbone.encode_video(picked).float()


@torch.no_grad()
def extract_motion_representation(backbone: Backbone, frames: torch.Tensor, t_alpha: int = 400,
                                  blocks: str = "up_blocks.1", mask: str = "primary", k: int = 1,
                                  noise: torch.Tensor | None = None, seed: int = 0) -> Representation:
    """MotionClone's representation of a reference clip: one UNet pass at t_alpha (empty
    prompt), the temporal attention of ``blocks`` reduced by ``select_entries``. ``noise`` is
    the generation's own initial noise, as the released code uses (default: ``initial_noise``
    of ``seed``)."""
    train_steps = backbone.scheduler.config.num_train_timesteps
    if not 0 <= t_alpha < train_steps:
        raise ValueError(f"t_alpha={t_alpha} must lie in 0..{train_steps - 1}")
    names = temporal_attention_names(backbone.unet, blocks)
    x0 = reference_latents(backbone, frames)
    if noise is None:
        noise = initial_noise(backbone, seed)
    if tuple(noise.shape) != tuple(x0.shape):
        raise ValueError(f"extraction noise {tuple(noise.shape)} does not match the reference latents {tuple(x0.shape)}")
    noise = noise.to(x0.device, x0.dtype)
    t = torch.tensor([t_alpha], dtype=torch.long)
    noisy = backbone.scheduler.add_noise(x0, noise, t.to(x0.device))
    empty = backbone.encode_prompt([""])
    with record_temporal_attention(backbone.unet, names, after="stop") as maps:
        _unet(backbone, noisy, t.to(x0.device), empty)
    return {name: select_entries(maps[name], mask, k) for name in names}


def representation_to_tensors(rep: Representation) -> dict[str, torch.Tensor]:
    out = {}
    for name, (values, indices) in rep.items():
        out[f"{name}|values"], out[f"{name}|indices"] = values, indices
    return out


def representation_from_tensors(tensors: dict[str, torch.Tensor]) -> Representation:
    names = sorted({key.rsplit("|", 1)[0] for key in tensors})
    return {n: (tensors[f"{n}|values"], tensors[f"{n}|indices"]) for n in names}


# ---- guided sampling --------------------------------------------------------------------

def ramp_scales(guided: int, steps: int, ramp: int | None = None) -> list[float]:
    """Per-step weight multipliers: the released warm-up (i+1)/R and cool-down (G−i)/R over the
    first G = ``guided`` steps, 0 afterwards. Default R: the released 10, at most a fifth of G
    (the released configs ramp 10 of 50 or 180 guided steps)."""
    if ramp is None:
        ramp = max(1, min(MAX_RAMP, guided // 5))
    scales = []
    for i in range(steps):
        s = 0.0
        if i < guided:
            s = 1.0
            if i < ramp:
                s *= (i + 1) / ramp
            if i > guided - ramp:
                s *= (guided - i) / ramp
        scales.append(s)
    return scales


def released_timesteps(steps: int, guided_steps: int, threshold: int, train_steps: int = 1000) -> list[int]:
    """The released sampler's uneven list: ``guided_steps`` timesteps spread evenly (rounded,
    endpoints included) over threshold … T−1, then the other steps over 0 … threshold−1, both
    descending. Camera (100, 50, 700): 999, 993, …, 706, 700, 699, 685, …, 14, 0."""
    if not 0 < guided_steps <= steps:
        raise ValueError(f"guided_steps={guided_steps} must lie in 1..steps ({steps})")
    if not 0 < threshold < train_steps:
        raise ValueError(f"threshold={threshold} must lie in 1..{train_steps - 1}")
    if guided_steps > train_steps - threshold or steps - guided_steps > threshold:
        raise ValueError(f"{guided_steps} guided steps above t={threshold} and {steps - guided_steps} below "
                         f"do not fit in distinct timesteps")
    guided = np.linspace(threshold, train_steps - 1, guided_steps).round()[::-1]
    rest = np.linspace(0, threshold - 1, steps - guided_steps).round()[::-1]
    return [int(t) for t in np.concatenate([guided, rest])]


@dataclass
class Schedule:
    """The sampler's steps: timestep i goes to prev[i] (−1: the final ᾱ), with weight scales[i]."""
    timesteps: list[int]
    prev: list[int]
    scales: list[float]
    kind: str

    def describe(self) -> dict:
        guided = [t for t, s in zip(self.timesteps, self.scales) if s > 0]
        return {"kind": self.kind, "steps": len(self.timesteps), "guided_steps": len(guided),
                "guided_t": [min(guided), max(guided)] if guided else None}


def uniform_schedule(scheduler, steps: int, guided: int, ramp: int | None = None) -> Schedule:
    """diffusers' own DDIM spacing (the scheduler's ``timestep_spacing``); each step targets
    t − T/N, as ``DDIMScheduler.step`` does."""
    scheduler.set_timesteps(steps)
    ts = [int(t) for t in scheduler.timesteps]
    jump = scheduler.config.num_train_timesteps // steps
    return Schedule(ts, [t - jump for t in ts], ramp_scales(guided, steps, ramp), "uniform")


def released_schedule(scheduler, steps: int, guided: int, threshold: int, ramp: int | None = None) -> Schedule:
    """The released list (``released_timesteps``); each step targets the next entry, the last
    goes to the final ᾱ."""
    ts = released_timesteps(steps, guided, threshold, scheduler.config.num_train_timesteps)
    return Schedule(ts, ts[1:] + [-1], ramp_scales(guided, steps, ramp), "released")


def ddim_step(scheduler, out: torch.Tensor, t: int, prev: int, x: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from t to ``prev`` (−1: the final ᾱ): the arithmetic of
    diffusers' ``DDIMScheduler.step`` with the target timestep given, so uneven lists work."""
    cfg = scheduler.config
    acp = scheduler.alphas_cumprod
    a = acp[int(t)].to(x.device)
    a_prev = (acp[prev] if prev >= 0 else scheduler.final_alpha_cumprod).to(x.device)
    b = 1 - a
    if cfg.prediction_type == "epsilon":
        x0, eps = (x - b.sqrt() * out) / a.sqrt(), out
    elif cfg.prediction_type == "sample":
        x0 = out
        eps = (x - a.sqrt() * x0) / b.sqrt()
    elif cfg.prediction_type == "v_prediction":
        x0, eps = a.sqrt() * x - b.sqrt() * out, a.sqrt() * out + b.sqrt() * x
    else:
        raise ValueError(f"unsupported prediction_type {cfg.prediction_type!r}")
    if cfg.thresholding:
        raise ValueError("dynamic thresholding is not supported by motiongrid's DDIM step")
    if cfg.clip_sample:
        x0 = x0.clamp(-cfg.clip_sample_range, cfg.clip_sample_range)
    return (a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps).to(x.dtype)


def _alpha_bar(scheduler, t) -> torch.Tensor:
    return scheduler.alphas_cumprod[int(t)].double()


def _to_eps(out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "epsilon":
        return out
    if kind == "v_prediction":
        return (a.sqrt() * out + (1 - a).sqrt() * x).float()
    if kind == "sample":
        return ((x - a.sqrt() * out) / (1 - a).sqrt()).float()
    raise ValueError(f"unsupported prediction_type {kind!r}")


def _from_eps(eps: torch.Tensor, x: torch.Tensor, a: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "epsilon":
        return eps
    if kind == "v_prediction":
        return ((eps - (1 - a).sqrt() * x) / a.sqrt()).float()
    return ((x - (1 - a).sqrt() * eps) / a.sqrt()).float()  # "sample"


def energy_and_grad(backbone: Backbone, latents: torch.Tensor, t, context: torch.Tensor,
                    reference: Representation, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Conditional-branch pass with autograd up to the last guided attention map: returns the
    model output (detached), the energy and the gradient of ``scale``·energy w.r.t. ``latents``.
    The scaled energy is differentiated, as released (λ·ramp·E): through a half-precision UNet
    the plain energy's gradient (≈ 2Δ/entries per attention entry, ~1e-6 at 512²) falls into
    fp16's subnormals or to zero; scaled by λ = 2000 it does not. The energy stays fp32."""
    x = latents.detach().requires_grad_(True)
    with torch.enable_grad():
        with stage("guidance forward"), record_temporal_attention(backbone.unet, list(reference), after="no_grad") as maps:
            out = _unet(backbone, x, t, context)
        energy = motion_energy(maps, reference)
        with stage("guidance backward"):
            (grad,) = torch.autograd.grad(energy * scale, x)
    return out.detach(), energy.detach(), grad.float()


def _alpha_bar_prev(scheduler, prev: int) -> torch.Tensor:
    return (scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod).double()


def denoise_step(backbone: Backbone, latents: torch.Tensor, t, prev: int, cond: torch.Tensor,
                 uncond: torch.Tensor, cfg: float, reference: Representation | None = None, weight: float = 0.0,
                 update: Literal["released", "eps"] = "released") -> tuple[torch.Tensor, float | None]:
    """One DDIM step from ``latents`` at timestep ``t`` to ``prev`` (``ddim_step``). With a
    reference and weight > 0 the step is motion-guided with correction c = λ√(1−ᾱ_t)∇g:
    update="eps": ε̂ = ε_cfg + c, and x̂0 is recomputed from ε̂;
    update="released": the released scheduler's form, x̂0 from ε_cfg and x_prev −= √(1−ᾱ_prev)·c.
    CFG (both forms): out_c + cfg·(out_c − out_u), the released convention."""
    sched = backbone.scheduler
    x = sched.scale_model_input(latents, t)
    if reference is None or weight <= 0:
        with torch.no_grad():
            if cfg == 0:
                out = _unet(backbone, x, t, cond)
            else:  # one batched pass for both branches
                out_u, out_c = _unet(backbone, x.expand(2, *x.shape[1:]), t, torch.cat([uncond, cond])).chunk(2)
                out = out_c + cfg * (out_c - out_u)
        return ddim_step(sched, out, t, prev, latents), None

    with torch.no_grad():
        out_u = _unet(backbone, x, t, uncond) if cfg != 0 else None
    out_c, energy, grad = energy_and_grad(backbone, x, t, cond, reference, scale=weight)   # ∇(λ·ramp·g)
    out = out_c if out_u is None else out_c + cfg * (out_c - out_u)
    a = _alpha_bar(sched, t).to(x.device)
    correction = ((1 - a).sqrt() * grad).float()
    if update == "released":
        a_prev = _alpha_bar_prev(sched, prev).to(x.device)
        return ddim_step(sched, out, t, prev, latents) - ((1 - a_prev).sqrt() * correction).float(), float(energy)
    if update != "eps":
        raise ValueError(f"update must be 'eps' or 'released', got {update!r}")
    if a > 0:  # at exactly zero SNR ε is fixed by x_t: there is nothing to correct
        kind = sched.config.prediction_type
        out = _from_eps(_to_eps(out, x, a, kind) + correction, x, a, kind)
    return ddim_step(sched, out, t, prev, latents), float(energy)


def initial_noise(backbone: Backbone, seed: int) -> torch.Tensor:
    """Seeded on the CPU so a seed gives the same video on every device."""
    noise = torch.randn((1, *backbone.latent_shape()), generator=torch.Generator("cpu").manual_seed(seed))
    return noise.to(backbone.device) * backbone.scheduler.init_noise_sigma


@dataclass
class Guidance:
    reference: Representation
    weight: float
    update: Literal["released", "eps"] = "released"


def guided_sample(backbone: Backbone, prompt: str, seed: int, schedule: Schedule, cfg: float,
                  negative_prompt: str = "", guidance: Guidance | None = None,
                  trace: list | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """DDIM sampling (η = 0) over ``schedule`` from ``noise`` (default: ``initial_noise(seed)``);
    motion-guided where ``schedule.scales`` > 0 and ``guidance`` is given. Returns the final
    latents. ``trace`` (a list) receives one dict per step."""
    _recorder_for(backbone.unet)  # same attention processors for guided and unguided runs
    cond = backbone.encode_prompt([prompt])
    uncond = backbone.encode_prompt([negative_prompt])
    latents = initial_noise(backbone, seed) if noise is None else noise.to(backbone.device)
    for i, (t, prev) in enumerate(zip(schedule.timesteps, schedule.prev)):
        weight = guidance.weight * schedule.scales[i] if guidance is not None else 0.0
        latents, energy = denoise_step(backbone, latents, t, prev, cond, uncond, cfg,
                                       guidance.reference if guidance is not None else None, weight,
                                       guidance.update if guidance is not None else "released")
        if trace is not None:
            trace.append({"step": i, "t": int(t), "prev": int(prev), "weight": weight, "energy": energy})
    return latents
