"""MotionFollower's sampler as the released inference code runs it (docs/methods.md), on any
``EditBackbone``: a reconstruction branch and an editing branch from the same noise, with score
guidance, replayed steps and a regional SDE.

Schedule (released, 50 DDIM steps; step index i counts from the noisiest step):
- guided: i < 30 and (i even or i < 10) — 20 steps;
- replay: i in {22, 24, 26, 28} run 3 times (re-noised back to t by one deterministic DDIM
  inversion step, conditional pass only), 28 guidance calls in all; only when guidance is on;
- regional SDE: 10 < i < 20, η = 0.4 inside the target mask T (with noise), 0 outside.
At S ≠ 50 steps, step i takes the role of released step ⌊50·i/S⌋ (``EditSchedule.released``).

Update (v-prediction): x̂0 = √ᾱ_t·x − √(1−ᾱ_t)·(v + g), the direction term from the UNGUIDED
v: ε = √ᾱ_t·v + √(1−ᾱ_t)·x, x_prev = √ᾱ_prev·x̂0 + √(1−ᾱ_prev−σ²)·ε + σ·z. The net move of
the guidance is −√ᾱ_prev·√(1−ᾱ_t)·g: descent on the energy.

Energy (estimator features at up_blocks[1], [2], each upsampled ×2 nearest to twice the size of
the last one; masks nearest at that size; cos over channels; mean over frames; levels summed
with weight 0.5, except the inpaint term):
- fg      = 0.5·4   / (1 + 4·mean_f cos(mean_T E, mean_S R))
- content = 0.5·6   / (1 + 4·mean_f mean_{A} cos(E, R))
- contrast= 0.5·1.2 · mean_f mean_{B} (1 + cos(E, R))/2
- inpaint = 1.2     / (1 + 4·mean_f (1 + cos(mean_{S∧¬T} E, mean_{¬S} R))/2)
with (A, B) = (S∧¬T, ¬S∧¬T) for ``mask_roles="released"`` and swapped for "dragon"
(DragonDiffusion's roles: keep the untouched background, push the vacated region away).
g = 0.04·[∇_x(1000·scale·fg) ⊙ T_lat + ∇_x(1000·scale·(content + contrast + inpaint)) ⊙ (1 − T_lat)].

Deviations, each deliberate: an empty mask region in a frame drops that frame from the term
(the released code takes the mean of nothing: NaN) and the count is returned; a term with no
frame left is 0. R (the reconstruction features of a step) is computed once per step, not
once per guidance call (same values). With the "shared" estimator R comes from the
reconstruction pass itself (the same UNet, inputs and controllers: identical features).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from motiongrid.methods.motionfollower.camera import CAMERA_FROM_RELEASED_STEP, CameraState, camera_mode
from motiongrid.methods.motionfollower.hooks import capturing_up_blocks, controlled, up_block_features
from motiongrid.methods.motionfollower.model import EditBackbone

RELEASED_STEPS = 50
FEATURE_BLOCKS = (1, 2)
LEVEL_WEIGHT = 0.5
W_FG, W_CONTENT, W_CONTRAST, W_INPAINT = 4.0, 6.0, 1.2, 1.2
GRADIENT_WEIGHT = 0.04
SDE_ETA = 0.4
REPLAYS = 3


@dataclass(frozen=True)
class EditSchedule:
    steps: int
    guided: frozenset[int]
    sde: frozenset[int]
    replay: dict[int, int] = field(default_factory=dict)

    @classmethod
    def released(cls, steps: int = RELEASED_STEPS, guided: Sequence[int] | None = None) -> EditSchedule:
        """The released sets (at 50 steps), mapped to ``steps``; ``guided`` overrides the
        guided set (replays stay on released replay steps that are guided)."""
        role = [RELEASED_STEPS * i // steps for i in range(steps)]
        g = {i for i, r in enumerate(role) if r < 30 and (r % 2 == 0 or r < 10)}
        sde = {i for i, r in enumerate(role) if 10 < r < 20}
        replay = {i: REPLAYS for i, r in enumerate(role) if 20 < r < 30 and r % 2 == 0}
        if guided is not None:
            bad = [i for i in guided if not 0 <= i < steps]
            if bad:
                raise ValueError(f"guided steps {bad} outside 0..{steps - 1}")
            g = set(guided)
        return cls(steps, frozenset(g), frozenset(sde), {i: n for i, n in replay.items() if i in g})


@dataclass
class EditInputsOnDevice:
    """Everything the branches need, computed once per cell."""
    context: torch.Tensor           # (F, seq, dim) conditional appearance context
    source_pose: torch.Tensor       # (F, C0, h, w) PoCtr(source poses)
    target_pose: torch.Tensor       # (F, C0, h, w) PoCtr(target poses)
    reference: list[torch.Tensor]   # ReCtr(source frames), one per down block
    estimator_reference: list[torch.Tensor]
    source_masks: torch.Tensor      # (F, H, W) bool, pixel size
    target_masks: torch.Tensor


@dataclass
class EditResult:
    video: torch.Tensor             # (F, 3, H, W) in [0, 1]
    reconstruction: torch.Tensor    # (F, 3, H, W): the reconstruction branch's output
    info: dict


# ---- the DDIM arithmetic -----------------------------------------------------------------------

def alphas(scheduler, t: int, prev: int) -> tuple[float, float]:
    a_t = float(scheduler.alphas_cumprod[t])
    a_p = float(scheduler.alphas_cumprod[prev]) if prev >= 0 else float(scheduler.final_alpha_cumprod)
    return a_t, a_p


def ddim_update(x: torch.Tensor, v: torch.Tensor, t: int, prev: int, scheduler, guidance: torch.Tensor | None = None,
                sde_mask: torch.Tensor | None = None, eta: float = SDE_ETA,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One released editing step (module doc). ``sde_mask`` (broadcastable to x): where η = eta."""
    a_t, a_p = alphas(scheduler, t, prev)
    v_guided = v if guidance is None else v + guidance
    x0 = math.sqrt(a_t) * x - math.sqrt(1 - a_t) * v_guided
    eps = math.sqrt(a_t) * v + math.sqrt(1 - a_t) * x
    out = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * eps
    if sde_mask is None or eta == 0:
        return out
    variance = (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
    std = eta * math.sqrt(variance)
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    inside = math.sqrt(a_p) * x0 + math.sqrt(max(0.0, 1 - a_p - std ** 2)) * eps + std * noise
    return out * (1 - sde_mask) + inside * sde_mask


def ddim_invert(x_prev: torch.Tensor, v: torch.Tensor, prev: int, t: int, scheduler) -> torch.Tensor:
    """Deterministic re-noising from ``prev`` back to ``t`` (v predicted at ``prev``)."""
    a_p, a_t = float(scheduler.alphas_cumprod[max(prev, 0)]), float(scheduler.alphas_cumprod[t])
    x0 = math.sqrt(a_p) * x_prev - math.sqrt(1 - a_p) * v
    eps = math.sqrt(a_p) * v + math.sqrt(1 - a_p) * x_prev
    return math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * eps


def timesteps(scheduler, steps: int) -> list[tuple[int, int]]:
    """(t, prev) per step with the scheduler's spacing (the released config: trailing)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(scheduler.config)
    sched.set_timesteps(steps)
    ts = [int(t) for t in sched.timesteps]
    stride = sched.config.num_train_timesteps // steps
    return [(t, t - stride) for t in ts]


# ---- the energy ----------------------------------------------------------------------------------

def _frames_mean(values: list[torch.Tensor | None]) -> tuple[torch.Tensor | None, int]:
    kept = [v for v in values if v is not None]
    return (torch.stack(kept).mean() if kept else None), len(values) - len(kept)


def _region_mean(feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """(C, H, W) features averaged over a (H, W) bool region -> (C,); None if empty."""
    n = int(mask.sum())
    return None if n == 0 else (feat * mask).flatten(1).sum(1) / n


def edit_energy(edit: list[torch.Tensor], recon: list[torch.Tensor], source_masks: torch.Tensor,
                target_masks: torch.Tensor, mask_roles: str = "released") -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The four terms (module doc) summed over feature levels; features (F, C, h, w) already
    at mask size; masks (F, h, w) bool. Returns (terms, dropped frame counts per term)."""
    S, T = source_masks, target_masks
    vacated, untouched = S & ~T, ~S & ~T
    content_region, contrast_region = (vacated, untouched) if mask_roles == "released" else (untouched, vacated)
    zero = edit[0].sum() * 0
    terms = {k: zero for k in ("fg", "content", "contrast", "inpaint")}
    dropped = dict.fromkeys(terms, 0)
    for E, R in zip(edit, recon):
        n = E.shape[0]
        fg, content, contrast, inpaint = [], [], [], []
        for f in range(n):
            e_t, r_s = _region_mean(E[f], T[f]), _region_mean(R[f], S[f])
            fg.append(None if e_t is None or r_s is None else F.cosine_similarity(e_t, r_s, dim=0))
            cos = F.cosine_similarity(E[f], R[f], dim=0)                       # (h, w)
            content.append(cos[content_region[f]].mean() if content_region[f].any() else None)
            contrast.append(((cos[contrast_region[f]] + 1) / 2).mean() if contrast_region[f].any() else None)
            e_v, r_bg = _region_mean(E[f], vacated[f]), _region_mean(R[f], ~S[f])
            inpaint.append(None if e_v is None or r_bg is None else (F.cosine_similarity(e_v, r_bg, dim=0) + 1) / 2)
        for name, values, form in (
                ("fg", fg, lambda s: LEVEL_WEIGHT * W_FG / (1 + 4 * s)),
                ("content", content, lambda s: LEVEL_WEIGHT * W_CONTENT / (1 + 4 * s)),
                ("contrast", contrast, lambda s: LEVEL_WEIGHT * W_CONTRAST * s),
                ("inpaint", inpaint, lambda s: W_INPAINT / (1 + 4 * s))):
            mean, n_dropped = _frames_mean(values)
            dropped[name] += n_dropped
            if mean is not None:
                terms[name] = terms[name] + form(mean)
    return terms, dropped


def _upsampled(features: list[torch.Tensor]) -> list[torch.Tensor]:
    size = (features[-1].shape[-2] * 2, features[-1].shape[-1] * 2)
    return [F.interpolate(f.float(), size=size, mode="nearest") for f in features]


def _masks_at(masks: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0] > 0.5


# ---- the sampler ---------------------------------------------------------------------------------

class EditSampler:
    """One cell: ``run(source_frames, inputs, seed)``; parameters as the adapter's."""

    def __init__(self, backbone: EditBackbone, steps: int, cfg: float, energy_scale: float,
                 schedule: EditSchedule, estimator: str = "released", mask_roles: str = "released",
                 camera: bool = False, memory: str = "released"):
        if memory not in ("released", "lean", "cache"):
            raise ValueError(f"memory must be 'released', 'lean' or 'cache', got {memory!r}")
        self.bb, self.steps, self.cfg, self.energy_scale = backbone, steps, cfg, energy_scale
        self.memory = memory
        self.schedule, self.estimator, self.mask_roles = schedule, estimator, mask_roles
        self.guidance_on = energy_scale != 0
        self.camera = camera
        self.camera_state: CameraState | None = None
        # camera mode acts from released step 20 on (step i plays released step ⌊50·i/S⌋)
        self.camera_start = next((i for i in range(steps) if RELEASED_STEPS * i // steps >= CAMERA_FROM_RELEASED_STEP), steps)

    def _camera(self, mode: str, i: int):
        if self.camera_state is None or i < self.camera_start:
            return nullcontext()
        return self.camera_state.use(mode, i)

    def _unet_pass(self, unet, x, t, context, pose, reference):
        with controlled(unet, pose, reference):
            return unet(x, t, encoder_hidden_states=context).sample

    def _estimator_unet(self):
        return self.bb.unet if self.estimator == "shared" else self.bb.base_unet

    def reconstruct(self, x_T: torch.Tensor, inp: EditInputsOnDevice, plan: list[tuple[int, int]]):
        """Conditional-only DDIM from x_T with the source poses; returns (final latent, the
        latents of the guided steps — what guidance reads —, R features per guided step or {})."""
        x, latents, recon_features = x_T, {}, {}
        guided = self.schedule.guided if self.guidance_on else frozenset()
        capture = self.estimator == "shared" and self.guidance_on
        for i, (t, prev) in enumerate(plan):
            if i in guided:
                latents[i] = x
            grabbed: dict = {}
            with torch.no_grad(), self._camera("save", i):
                if capture and i in self.schedule.guided:
                    with capturing_up_blocks(self.bb.unet, FEATURE_BLOCKS, grabbed):
                        v = self._unet_pass(self.bb.unet, x, t, inp.context, inp.source_pose, inp.reference)
                    recon_features[i] = [grabbed[k] for k in FEATURE_BLOCKS]
                else:
                    v = self._unet_pass(self.bb.unet, x, t, inp.context, inp.source_pose, inp.reference)
            x = ddim_update(x, v, t, prev, self.bb.scheduler)
        return x, latents, recon_features

    def recon_features(self, i: int, latent: torch.Tensor, t: int, inp: EditInputsOnDevice, cache: dict) -> list[torch.Tensor]:
        """R of step i: recomputed per guidance call and dropped after it, as released (memory
        "released"/"lean"), or kept per step ("cache"; the "shared" estimator's come from the
        reconstruction pass). The same values either way."""
        if i in cache:
            return cache[i]
        with torch.no_grad():
            R = up_block_features(self._estimator_unet(), latent, t, inp.context, inp.source_pose,
                                  inp.estimator_reference, FEATURE_BLOCKS)
        if self.memory == "cache":
            cache[i] = R
        return R

    @contextmanager
    def _estimator_trainable(self):
        """memory "released": the released estimator's parameters are not frozen, so autograd
        keeps what their gradients would need (more memory, same gradient to the latent)."""
        unet = self._estimator_unet()
        if self.memory != "released" or self.estimator != "released":
            yield
            return
        frozen = [p for p in unet.parameters() if not p.requires_grad]
        unet.requires_grad_(True)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(False)

    def guidance(self, x: torch.Tensor, t: int, R: list[torch.Tensor], inp: EditInputsOnDevice, info: dict,
                 only: frozenset[str] | None = None) -> torch.Tensor:
        """g for one step (module doc); ``only`` keeps just those terms (tests check each)."""
        with torch.enable_grad(), self._estimator_trainable():
            x = x.detach().requires_grad_(True)
            E = up_block_features(self._estimator_unet(), x, t, inp.context, inp.target_pose, inp.estimator_reference,
                                  FEATURE_BLOCKS)
            E, Rs = _upsampled(E), _upsampled(R)
            size = E[-1].shape[-2:]
            terms, dropped = edit_energy(E, Rs, _masks_at(inp.source_masks, size), _masks_at(inp.target_masks, size),
                                         self.mask_roles)
            for k, n in dropped.items():
                info["dropped_frame_terms"][k] = info["dropped_frame_terms"].get(k, 0) + n
            scale = 1000.0 * self.energy_scale
            if only is not None:
                terms = {k: (v if k in only else v.detach() * 0) for k, v in terms.items()}
            fg = terms["fg"] * scale
            bg = (terms["content"] + terms["contrast"] + terms["inpaint"]) * scale
            g_fg = torch.autograd.grad(fg, x, retain_graph=True, allow_unused=True)[0] if fg.requires_grad else None
            g_bg = torch.autograd.grad(bg, x, allow_unused=True)[0] if bg.requires_grad else None
        t_lat = self._latent_mask(inp.target_masks, x)
        zero = torch.zeros_like(x)
        g_fg = zero if g_fg is None else g_fg.detach()
        g_bg = zero if g_bg is None else g_bg.detach()
        info["energy"].append({k: float(v.detach()) for k, v in terms.items()})
        return GRADIENT_WEIGHT * (g_fg * t_lat + g_bg * (1 - t_lat))

    @staticmethod
    def _latent_mask(masks: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(F, H, W) bool -> (1, 1, F, h, w) float at the latent size (nearest)."""
        m = F.interpolate(masks[:, None].float(), size=like.shape[-2:], mode="nearest")[:, 0]
        return m[None, None].to(like.device, like.dtype)

    def edit(self, x_T: torch.Tensor, inp: EditInputsOnDevice, plan, recon_latents, recon_cache, generator, info):
        x = x_T
        ctx2 = torch.cat([torch.zeros_like(inp.context), inp.context])
        pose2 = torch.cat([inp.target_pose, inp.target_pose])
        ref2 = [torch.cat([r, r]) for r in inp.reference]
        sde_mask = self._latent_mask(inp.target_masks, x)
        for i, (t, prev) in enumerate(plan):
            guided = self.guidance_on and i in self.schedule.guided
            replays = self.schedule.replay.get(i, 1) if self.guidance_on else 1
            for r in range(replays):
                with torch.no_grad(), self._camera("inject", i):
                    if self.cfg > 1:
                        v_u, v_c = self._unet_pass(self.bb.unet, torch.cat([x, x]), t, ctx2, pose2, ref2).chunk(2)
                        v = v_u + self.cfg * (v_c - v_u)
                    else:
                        v = self._unet_pass(self.bb.unet, x, t, inp.context, inp.target_pose, inp.reference)
                g = None
                if guided:
                    R = self.recon_features(i, recon_latents[i], t, inp, recon_cache)
                    g = self.guidance(x, t, R, inp, info)
                    info["guidance_calls"] += 1
                x_prev = ddim_update(x, v, t, prev, self.bb.scheduler, g,
                                     sde_mask if i in self.schedule.sde else None, generator=generator)
                if r < replays - 1:    # re-noise back to t (the released code's last inversion is unused)
                    with torch.no_grad():
                        v_inv = self._unet_pass(self.bb.unet, x_prev, max(prev, 0), inp.context, inp.target_pose, inp.reference)
                    x = ddim_invert(x_prev, v_inv, prev, t, self.bb.scheduler)
            x = x_prev
        return x

    def run(self, x_T: torch.Tensor, inp: EditInputsOnDevice, generator: torch.Generator) -> EditResult:
        plan = timesteps(self.bb.scheduler, self.steps)
        info = {"guidance_calls": 0, "dropped_frame_terms": {}, "energy": []}
        with ExitStack() as stack:
            if self.camera:
                self.camera_state = CameraState(inp.source_masks, inp.target_masks, park=self.memory != "cache")
                stack.enter_context(camera_mode(self.bb.unet, self.camera_state))
            recon_final, recon_latents, recon_cache = self.reconstruct(x_T, inp, plan)
            x0 = self.edit(x_T, inp, plan, recon_latents, recon_cache, generator, info)
        self.camera_state = None
        return EditResult(self.bb.decode_latents(x0.detach()), self.bb.decode_latents(recon_final), info)
