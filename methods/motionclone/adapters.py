"""The ``motionclone`` and ``unguided`` method adapters: backbone loading and caching of the
reference's motion representation; parameters are in ``params``, the algorithm in ``guidance``."""
from __future__ import annotations

from importlib.metadata import version

import torch

from motiongrid.bench import __version__
from motiongrid.bench.api import Method, ShapeOnly, ShapeSpec
from motiongrid.bench.cache import FeatureCache
from motiongrid.bench.clip import Clip
from motiongrid.bench.fingerprint import memo
from motiongrid.bench.memory_estimate import stage
from motiongrid.bench.registry import methods
from motiongrid.bench.video import Video
from motiongrid.methods.animatediff_released import set_motion_norm
from motiongrid.methods.backbone import Backbone, BackboneSpec, backbone_spec, load_backbone, shape_only_backbone
from motiongrid.methods.motionclone.guidance import (
    CALIBRATED_WEIGHTS,
    DEFAULT_WEIGHTS,
    RELEASED_CFG,
    RELEASED_PRESETS,
    RELEASED_STEPS,
    Guidance,
    Representation,
    Schedule,
    extract_motion_representation,
    guided_sample,
    released_schedule,
    representation_from_tensors,
    representation_to_tensors,
    temporal_attention_names,
    uniform_schedule,
)
from motiongrid.methods.motionclone.params import MotionCloneParams, SamplerParams


class _BackboneMethod(Method):
    """Shared by both adapters: backbones are loaded once per (model id, device) and shared,
    so a grid of unguided + motionclone cells holds one copy of the model."""
    _backbones: dict[tuple[str, str], Backbone] = {}

    def __init__(self) -> None:
        super().__init__()
        self.cache = FeatureCache()
        self.last_trace: list[dict] = []

    def prepare(self, device: torch.device, weights=None) -> None:
        self.device = torch.device(device)

    def load(self, params: SamplerParams) -> None:
        self.backbone(params.model)

    def shape_only(self, params: SamplerParams, spec: ShapeSpec) -> ShapeOnly:
        """The backbone at real size with random weights (motiongrid profile), served for
        ``params.model``; the cell's steps are the resolved schedule's."""
        bb, prompt = shape_only_backbone(params.model, spec.frames, spec.height, spec.width, spec.dtype,
                                         torch.device(torch.get_default_device()))
        self.cache = FeatureCache(enabled=False)   # shape-only features must never reach the cache
        self.use_backbone(bb)
        modules = [m for m in (bb.unet, getattr(bb, "vae", None), getattr(bb, "text_encoder", None),
                               getattr(bb, "prompt_encoder", None)) if m is not None]
        clip = Clip(id="shape-only", prompt=prompt, source_hash="shape-only",
                    loader=lambda: Video(torch.zeros(spec.frames, 3, spec.height, spec.width), 8.0))
        schedule = self.schedule(bb, params)
        steps, guided = len(schedule.timesteps), sum(s > 0 for s in schedule.scales)
        run = params
        if spec.sample_steps is not None and spec.sample_steps < steps:
            # per-step memory is the same at every step of a kind (latents are replaced, nothing
            # accumulates), so a few steps keeping one guided and one unguided step show the peak
            n = max(spec.sample_steps, 2 if 0 < guided < steps else 1)
            run = params.model_copy(update={"steps": n, "guided_steps": min(guided, max(1, n - 1)) if guided else 0})
        return ShapeOnly(modules, f"{params.model}: {type(bb.unet).__name__} {spec.frames}x{spec.height}x{spec.width}",
                         steps=steps, clip=clip, params=run,
                         sampled_steps=None if run is params else len(self.schedule(bb, run).timesteps))

    def use_backbone(self, bb: Backbone) -> None:
        """Serve ``bb`` for its model id (e.g. a toy checkpoint loaded from another path)."""
        self._backbones[(bb.model_id, str(self.device))] = bb

    def backbone(self, model: str) -> Backbone:
        key = (model, str(self.device))
        if key not in self._backbones:
            self._backbones[key] = load_backbone(model, self.device)
        return self._backbones[key]

    def fingerprint(self, params: SamplerParams) -> dict:
        """The weights' identity plus the resolved sampler defaults (they change the video),
        without loading the weights: from the backbone's spec unless it is loaded already. The
        settings are memoised by everything they depend on, so a re-run imports no diffusers."""
        bb = self._backbones.get((params.model, str(self.device))) or backbone_spec(params.model, self.device)
        if not isinstance(bb, BackboneSpec):
            return {**bb.fingerprint, **self.sampler_fingerprint(bb, params)}
        inputs = {"method": f"{type(self).__module__}.{type(self).__qualname__}",
                  "params": params.model_dump(mode="json"), "backbone": bb.fingerprint,
                  "scheduler": bb.scheduler_config, "motiongrid": __version__, "diffusers": version("diffusers"),
                  "defaults": [bb.default_steps, bb.default_cfg, bb.default_negative_prompt, bb.default_preset,
                               bb.default_motion_norm]}
        return {**bb.fingerprint, **memo("sampler-settings", inputs, lambda: self.sampler_fingerprint(bb, params))}

    def sampler_fingerprint(self, bb: Backbone | BackboneSpec, params: SamplerParams) -> dict:
        steps, cfg, negative = self.sampler_settings(bb, params)
        out = {"steps": steps, "cfg": cfg, "negative_prompt": negative, "schedule": self.schedule(bb, params).describe()}
        if self.motion_norm(bb, params) != "diffusers":    # keys made before the setting existed stay
            out["motion_norm"] = self.motion_norm(bb, params)
        return out

    @staticmethod
    def motion_norm(bb: Backbone | BackboneSpec, params: SamplerParams) -> str:
        return params.motion_norm or getattr(bb, "default_motion_norm", "diffusers")

    def use_motion_norm(self, bb: Backbone, params: SamplerParams) -> str:
        norm = self.motion_norm(bb, params)
        set_motion_norm(bb.unet, norm)
        return norm

    @staticmethod
    def preset(bb: Backbone, params: SamplerParams) -> dict:
        """The released configuration in force ({} when none): the parameter, else the backbone's."""
        return RELEASED_PRESETS.get(params.preset or getattr(bb, "default_preset", None) or "", {})

    def schedule(self, bb: Backbone, params: SamplerParams) -> Schedule:
        """The resolved timestep list and guidance scales (see the Params descriptions)."""
        preset = self.preset(bb, params)
        steps, _, _ = self.sampler_settings(bb, params)
        kind = params.schedule or ("released" if preset else "uniform")
        if params.guided_steps is not None:
            guided = params.guided_steps
        elif preset and steps == preset["steps"]:
            guided = preset["guided_steps"]
        else:
            guided = round(getattr(params, "guided_fraction", 0.5) * steps)
        if guided > steps:
            raise ValueError(f"guided_steps={guided} exceeds steps={steps}")
        ramp = getattr(params, "ramp_steps", None)
        if kind == "released":
            threshold = params.threshold or preset.get("threshold", RELEASED_PRESETS["camera"]["threshold"])
            return released_schedule(bb.scheduler, steps, guided, threshold, ramp)
        return uniform_schedule(bb.scheduler, steps, guided, ramp)

    @classmethod
    def sampler_settings(cls, bb: Backbone, params: SamplerParams) -> tuple[int, float, str]:
        preset = cls.preset(bb, params)
        steps = params.steps if params.steps is not None else preset.get(
            "steps", getattr(bb, "default_steps", RELEASED_STEPS))
        cfg = params.cfg if params.cfg is not None else getattr(bb, "default_cfg", RELEASED_CFG)
        negative = (params.negative_prompt if params.negative_prompt is not None
                    else getattr(bb, "default_negative_prompt", ""))
        return steps, cfg, negative

    def sample(self, clip: Clip, params: SamplerParams, seed: int, guidance: Guidance | None) -> Video:
        bb = self.backbone(params.model)
        self.use_motion_norm(bb, params)
        _, cfg, negative = self.sampler_settings(bb, params)
        prompt = clip.target_prompt or clip.prompt
        self.last_trace = []
        with stage("denoising"):
            latents = guided_sample(bb, prompt, seed, self.schedule(bb, params), cfg, negative, guidance,
                                    trace=self.last_trace)
        with stage("decode"):
            return Video(bb.decode_latents(latents).float().clamp(0, 1), clip.video.fps)


def _extract_in_stage(*args, **kwargs) -> Representation:
    with stage("extraction"):
        return extract_motion_representation(*args, **kwargs)


@methods.register("unguided")
class UnguidedMethod(_BackboneMethod):
    """The backbone's own sampling with the MotionClone sampler minus the motion guidance."""
    task = "baseline"
    Params = SamplerParams
    description = "AnimateDiff/toy text-to-video, same sampler, prompt and seed as motionclone, no motion guidance"

    def generate(self, clip: Clip, params: SamplerParams, seed: int) -> Video:
        return self.sample(clip, params, seed, None)


@methods.register("motionclone")
class MotionCloneMethod(_BackboneMethod):
    Params = MotionCloneParams
    description = "MotionClone: temporal-attention guidance (primary top-k or plain) from one reference pass"

    def representation(self, bb: Backbone, clip: Clip, p: MotionCloneParams, seed: int) -> Representation:
        """The reference's maps, noised at t_alpha with this seed's initial noise (as released:
        the extraction noise and x_T coincide), cached per (clip, settings, seed)."""
        names = temporal_attention_names(bb.unet, p.blocks)
        k = bb.num_frames if p.mask == "plain" else p.k
        if k > bb.num_frames:
            raise ValueError(f"k={k} exceeds the model's {bb.num_frames} frames")
        settings = {"model": bb.model_id, "fingerprint": bb.fingerprint, "t_alpha": p.t_alpha,
                    "blocks": names, "k": k, "size": [bb.num_frames, bb.height, bb.width],
                    "seed": seed, "noise": "generation's initial noise", "dtype": str(bb.dtype)}
        norm = self.use_motion_norm(bb, p)
        if norm != "diffusers":
            settings["motion_norm"] = norm
        tensors = self.cache.get_or_compute(
            clip.content_hash, "motionclone-temporal-attention", settings,
            lambda: representation_to_tensors(_extract_in_stage(
                bb, clip.frames, p.t_alpha, p.blocks, p.mask, p.k, seed=seed)))
        return representation_from_tensors(tensors)

    def generate(self, clip: Clip, params: MotionCloneParams, seed: int) -> Video:
        bb = self.backbone(params.model)
        weight = params.guidance_weight
        if weight is None:
            weight = CALIBRATED_WEIGHTS.get((bb.model_id, params.update), DEFAULT_WEIGHTS[params.update])
        guidance = Guidance(self.representation(bb, clip, params, seed), weight, params.update)
        return self.sample(clip, params, seed, guidance)
