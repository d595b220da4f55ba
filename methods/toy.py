"""The toy world: a tiny text-conditioned pixel-space video diffusion model trained on ``shapes``.

Real motion-cloning backbones need a GPU and downloaded weights; this one is small enough to
train on two CPU cores in about 1.5 hours and ships with the package (``motiongrid/toy/``), so a
default ``motiongrid run`` means something on a laptop and in CI.

World: one circle or square of one of four colours translating 1–2 px/frame over a flat dark
background, 8 frames × 24×24. Prompts name only colour, shape and background
("a red circle on a dark background"), so any motion in a sample comes from guidance.

Model: diffusers ``UNetMotionModel`` (spatial UNet + AnimateDiff-style temporal attention in
``motion_modules``), pixel space (3 channels in, 3 out), cross-attention to a learned word-level
prompt encoder. v-prediction on a squared-cosine DDPM schedule (1000 steps); sampled with DDIM
(trailing spacing, x̂0 clipped to [-1, 1], final step to ᾱ = 1) and classifier-free guidance
(10% of training prompts are dropped to "").

Training data is rendered on the fly with ``motiongrid.datasets.shapes``. Everything random in
step ``k`` (clip specs, label dropout, timesteps, noise) is drawn from generators seeded by
``(seed, k)``, so a run is reproducible from its seed and a resumed run continues with exactly
the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from motiongrid.datasets.shapes import COLOURS, FLAT_BACKGROUND, PRESETS, ShapesOptions, random_spec, render_clip
from motiongrid.datasets.video import from_minus_one_one, to_minus_one_one
from motiongrid.methods.backbone import Backbone, register_backbone

# ---- the toy world ----------------------------------------------------------------------------

TOY_SIZE = 24
TOY_FRAMES = 8

# ShapesOptions-compatible: the clips the toy model is trained on (and that toy benchmarks use);
# defined once, as the `shapes` clip set's "toy" preset, so configs can name it.
TOY_CLIP_OPTIONS: dict = dict(PRESETS["toy"])
assert (TOY_CLIP_OPTIONS["size"], TOY_CLIP_OPTIONS["frames"]) == (TOY_SIZE, TOY_FRAMES)


def toy_shapes_options(**overrides) -> ShapesOptions:
    opts = {**TOY_CLIP_OPTIONS, **overrides}
    for key in ("kinds", "colours", "motions", "radius", "speed"):
        opts[key] = tuple(opts[key])
    return ShapesOptions(**opts)


def toy_prompt(colour: str, kind: str) -> str:
    """The prompt shapes writes for a toy clip (flat background, motion not described)."""
    return f"a {colour} {kind} on a dark background"


# ---- model configuration -----------------------------------------------------------------------

def default_unet_config(size: int = TOY_SIZE, frames: int = TOY_FRAMES) -> dict:
    """UNetMotionModel config: 24 -> 12 -> 6; no spatial attention at full resolution (it
    cost 2.5x the step time in an earlier trial); temporal attention in every block."""
    return {
        "sample_size": size,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownBlockMotion", "CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion"),
        "up_block_types": ("CrossAttnUpBlockMotion", "CrossAttnUpBlockMotion", "UpBlockMotion"),
        "block_out_channels": (16, 32, 64),
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "cross_attention_dim": 64,
        "num_attention_heads": 4,
        "motion_num_attention_heads": 4,
        "motion_max_seq_length": max(16, frames),
        "use_motion_mid_block": True,
    }


def default_schedule_config() -> dict:
    """Shared by the training DDPM schedule and the sampling DDIM scheduler."""
    return {
        "num_train_timesteps": 1000,
        "beta_schedule": "squaredcos_cap_v2",  # ᾱ at t=999 ≈ 0: sampling starts from pure noise
        "prediction_type": "v_prediction",
    }


# DDIM at sampling time: trailing spacing so the first step is t=999 (what training saw as pure
# noise); clip x̂0 to the pixel range; the last step lands on ᾱ=1 (a clean image).
SAMPLER_CONFIG = {"timestep_spacing": "trailing", "clip_sample": True, "clip_sample_range": 1.0,
                  "set_alpha_to_one": True, "steps_offset": 0}
DEFAULT_SAMPLING_STEPS = 25
DEFAULT_CFG = 1.0  # out_c + cfg·(out_c − out_u). Chosen on seeds 10–12 (not the tests'): 1.5 and 3 gave noisier backgrounds and wrong colours


@dataclass
class TrainConfig:
    batch_size: int = 8
    lr: float = 1e-3
    min_lr_fraction: float = 0.1      # cosine decay to this fraction of lr at the last step
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    label_dropout: float = 0.1        # share of prompts replaced by "" (classifier-free guidance)
    checkpoint_every: int = 250
    eval_every: int = 250             # EMA sample-quality numbers into eval.jsonl (0: never)


# ---- prompt encoder ----------------------------------------------------------------------------

def toy_vocabulary(colours: Sequence[str], kinds: Sequence[str]) -> list[str]:
    """The words toy prompts use, in a fixed order (index 0 is padding)."""
    return ["<pad>", "a", "on", "dark", "background", *colours, *kinds]


class PromptEncoder(nn.Module):
    """Word-level prompts -> (B, max_tokens, dim) learned embeddings (+ learned positions).

    The empty prompt "" is all padding: it is the unconditional input for classifier-free
    guidance. Words outside the vocabulary are an error (the model never saw them)."""

    def __init__(self, vocab: Sequence[str], dim: int, max_tokens: int = 8):
        super().__init__()
        if len(set(vocab)) != len(vocab) or vocab[0] != "<pad>":
            raise ValueError(f"prompt vocabulary must be unique words starting with '<pad>', got {list(vocab)}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_tokens = max_tokens
        self.dim = dim
        self.tokens = nn.Embedding(len(self.vocab), dim)
        self.positions = nn.Parameter(torch.zeros(max_tokens, dim))
        nn.init.normal_(self.tokens.weight, std=0.5)
        nn.init.normal_(self.positions, std=0.1)

    def config(self) -> dict:
        return {"vocab": self.vocab, "dim": self.dim, "max_tokens": self.max_tokens}

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        if isinstance(prompts, str):
            raise TypeError("encode a list of prompts, not a single string")
        rows = []
        for prompt in prompts:
            words = prompt.lower().replace(",", " ").split()
            unknown = [w for w in words if w not in self.index or w == "<pad>"]
            if unknown:
                raise ValueError(f"prompt {prompt!r}: words {unknown} are not in the toy model's vocabulary "
                                 f"{self.vocab[1:]} (toy prompts look like {toy_prompt('red', 'circle')!r})")
            if len(words) > self.max_tokens:
                raise ValueError(f"prompt {prompt!r}: {len(words)} words, the toy model takes at most {self.max_tokens}")
            ids = [self.index[w] for w in words] + [0] * (self.max_tokens - len(words))
            rows.append(ids)
        return torch.tensor(rows, dtype=torch.long)

    def forward(self, prompts: Sequence[str]) -> torch.Tensor:
        ids = self.tokenize(prompts).to(self.tokens.weight.device)
        return self.tokens(ids) + self.positions


# ---- building and saving -----------------------------------------------------------------------

def build_model(unet_config: dict, prompt_config: dict) -> tuple[nn.Module, PromptEncoder]:
    from diffusers import UNetMotionModel

    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in unet_config.items()}
    unet = UNetMotionModel(**cfg)
    encoder = PromptEncoder(prompt_config["vocab"], prompt_config["dim"], prompt_config["max_tokens"])
    if encoder.dim != cfg["cross_attention_dim"]:
        raise ValueError(f"prompt encoder dim {encoder.dim} != UNet cross_attention_dim {cfg['cross_attention_dim']}")
    return unet, encoder


def count_parameters(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _combined_state(unet: nn.Module, encoder: nn.Module) -> dict[str, torch.Tensor]:
    state = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    state.update({f"prompt_encoder.{k}": v for k, v in encoder.state_dict().items()})
    return {k: v.detach().float().contiguous().cpu() for k, v in state.items()}


def _split_state(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    unet = {k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")}
    enc = {k[len("prompt_encoder."):]: v for k, v in state.items() if k.startswith("prompt_encoder.")}
    return unet, enc


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def toy_checkpoint_dir() -> Path:
    """Where the shipped checkpoint lives: the package data folder ``motiongrid/toy``."""
    import motiongrid

    return Path(motiongrid.__file__).resolve().parent / "toy"


def toy_checkpoint_file() -> Path:
    return toy_checkpoint_dir() / "toy.safetensors"


def _register_weights() -> None:
    from motiongrid import weights

    path = toy_checkpoint_file()
    weights.register(weights.WeightFile(
        name="toy",
        description="toy world video diffusion model (EMA weights, ships with motiongrid)",
        target=toy_checkpoint_file,
        # It ships inside the package; the URL only names that place (there is no download).
        url=path.as_uri(),
        used_by=("methods.toy",),
    ))


_register_weights()


def toy_weights_path() -> Path:
    """The shipped toy checkpoint through the weights manager, with a toy-specific fix."""
    from motiongrid import weights

    try:
        return Path(weights.require("toy"))
    except weights.WeightsMissing:
        # the manager's generic fix (fetch/import) does not apply to a file the package ships
        raise weights.WeightsMissing(
            f"toy model checkpoint missing: {toy_checkpoint_file()} not found. It ships with motiongrid "
            f"(package data motiongrid/toy/); reinstall motiongrid, or retrain and export it: "
            f"`motiongrid toy train --out DIR --export {toy_checkpoint_dir()}`"
        ) from None


def load_toy(path: str | os.PathLike | None = None, device: torch.device | str = "cpu"
             ) -> tuple[nn.Module, PromptEncoder, dict, Path]:
    """Load (unet, prompt_encoder, config, weights_path) from ``toy.safetensors`` + ``toy.json``
    beside it (default: the shipped checkpoint)."""
    from safetensors.torch import load_file

    weights_path = Path(path) if path is not None else toy_weights_path()
    if weights_path.is_dir():
        weights_path = weights_path / "toy.safetensors"
    config_path = weights_path.with_suffix(".json")
    if not weights_path.is_file():
        raise FileNotFoundError(f"toy checkpoint {weights_path} not found")
    if not config_path.is_file():
        raise FileNotFoundError(f"toy checkpoint {weights_path}: its config {config_path.name} is missing beside it")
    config = json.loads(config_path.read_text())
    unet, encoder = build_model(config["unet"], config["prompt_encoder"])
    unet_state, enc_state = _split_state(load_file(str(weights_path)))
    unet.load_state_dict(unet_state)
    encoder.load_state_dict(enc_state)
    unet.eval().requires_grad_(False).to(device)
    encoder.eval().requires_grad_(False).to(device)
    return unet, encoder, config, weights_path


def make_ddim_scheduler(schedule: dict):
    from diffusers import DDIMScheduler

    return DDIMScheduler(**schedule, **SAMPLER_CONFIG)


# ---- the backbone --------------------------------------------------------------------------------

@dataclass
class ToyBackbone(Backbone):
    """Pixel-space backbone: the "latents" are the frames in [-1, 1], laid out (1, 3, F, H, W).

    ``encode_prompt`` returns (B, seq, dim); the UNet wants it repeated per frame
    (``repeat_interleave(num_frames, 0)``), as for the AnimateDiff backbone.
    The scheduler is DDIM with v-prediction, squared-cosine betas, trailing spacing."""
    prompt_encoder: nn.Module = field(default=None)
    config: dict = field(default_factory=dict)
    # sampler defaults the method adapters read (MotionClone / unguided)
    default_steps: int = DEFAULT_SAMPLING_STEPS
    default_cfg: float = DEFAULT_CFG
    default_negative_prompt: str = ""

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.prompt_encoder(list(prompts)).to(self.device, self.dtype)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        expected = (self.num_frames, 3, self.height, self.width)
        if tuple(frames.shape) != expected:
            raise ValueError(f"toy backbone: expected frames {expected} (F, 3, H, W) in [0, 1], got {tuple(frames.shape)}")
        return to_minus_one_one(frames).permute(1, 0, 2, 3).unsqueeze(0).to(self.device, self.dtype)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 5 or latents.shape[0] != 1 or latents.shape[1] != 3:
            raise ValueError(f"toy backbone: expected latents (1, 3, F, H, W), got {tuple(latents.shape)}")
        return from_minus_one_one(latents[0].permute(1, 0, 2, 3).float()).cpu()

    def latent_shape(self) -> tuple[int, int, int, int]:
        return (3, self.num_frames, self.height, self.width)


@register_backbone("toy")
def load_toy_backbone(model_id: str = "toy", device: torch.device | str = "cpu",
                      path: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32,
                      **_ignored) -> ToyBackbone:
    """The shipped toy model (or the checkpoint at ``path``) as a Backbone."""
    device = torch.device(device)
    unet, encoder, config, weights_path = load_toy(path, device)
    if dtype != torch.float32:
        unet.to(dtype=dtype)
    clip = config["clip_options"]
    return ToyBackbone(
        model_id=model_id, unet=unet, scheduler=make_ddim_scheduler(config["schedule"]),
        num_frames=int(clip["frames"]), height=int(clip["size"]), width=int(clip["size"]),
        device=device, dtype=dtype,
        fingerprint={"model": "toy", "file": weights_path.name, "sha256": sha256_file(weights_path),
                     "sampler": dict(SAMPLER_CONFIG)},
        prompt_encoder=encoder, config=config,
    )


# ---- unguided sampling (reference rows, tests; guidance lives in motionclone) ----------------

@torch.no_grad()
def sample_unguided(backbone: Backbone, prompts: Sequence[str], seed: int, steps: int = DEFAULT_SAMPLING_STEPS,
                    cfg: float = DEFAULT_CFG) -> list[torch.Tensor]:
    """Plain DDIM + classifier-free guidance, batched; one (F, 3, H, W) video in [0, 1] per
    prompt. The noise of prompt i is drawn from ``seed + i`` so a video does not depend on
    what else is in the batch."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(backbone.scheduler.config)
    scheduler.set_timesteps(steps)
    n, f = len(prompts), backbone.num_frames
    shape = backbone.latent_shape()
    x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(seed + i)) for i in range(n)])
    x = x.to(backbone.device, backbone.dtype)
    cond = backbone.encode_prompt(list(prompts))
    uncond = backbone.encode_prompt([""] * n)
    context = torch.cat([uncond, cond]).repeat_interleave(f, dim=0)
    for t in scheduler.timesteps:
        out = backbone.unet(torch.cat([x, x]), t, encoder_hidden_states=context).sample
        out_u, out_c = out.chunk(2)
        pred = out_c + cfg * (out_c - out_u) if cfg != 0 else out_c
        x = scheduler.step(pred, t, x).prev_sample
    return [backbone.decode_latents(x[i:i + 1]) for i in range(n)]


# ---- sample quality numbers ---------------------------------------------------------------------

def quality(video: torch.Tensor, colour: str, fg_threshold: float = 0.3, margin: int = 2) -> dict:
    """Numbers for "is this a clean toy clip of the prompted colour".

    Foreground: pixels whose colour is farther than ``fg_threshold`` (max over channels) from
    the flat background. Background: everything more than ``margin`` px from any foreground
    pixel (so anti-aliased edges do not count). Returns the mean |background − FLAT_BACKGROUND|
    (over pixels and channels), the foreground share of the frame, and whether the mean
    foreground colour is nearest the prompted one among the toy colours."""
    bg = torch.tensor(FLAT_BACKGROUND, dtype=video.dtype).view(1, 3, 1, 1)
    dist = (video - bg).abs().amax(dim=1, keepdim=True)               # (F,1,H,W)
    fg = dist > fg_threshold
    near = torch.nn.functional.max_pool2d(fg.float(), 2 * margin + 1, stride=1, padding=margin) > 0
    background = ~near
    bg_err = ((video - bg).abs() * background).sum() / (background.sum() * 3).clamp(min=1)
    out = {"bg_error": float(bg_err), "fg_fraction": float(fg.float().mean()),
           "colour_ok": False, "fg_colour": None, **_object_track(fg[:, 0])}
    if fg.any():
        mean = (video * fg).sum(dim=(0, 2, 3)) / fg.sum()
        out["fg_colour"] = [round(float(c), 3) for c in mean]
        names = TOY_CLIP_OPTIONS["colours"]
        d = [float(((mean - torch.tensor(COLOURS[c])) ** 2).sum()) for c in names]
        out["colour_ok"] = names[int(np.argmin(d))] == colour
    return out


def _object_track(fg: torch.Tensor) -> dict:
    """Per-frame connected components of the foreground mask (F,H,W) and the mean per-frame
    step of the largest component's centroid (px): "one object" and "it moves"."""
    from scipy import ndimage

    counts, centres = [], []
    for mask in fg.numpy():
        labels, n = ndimage.label(mask)
        counts.append(n)
        if n:
            sizes = ndimage.sum(mask, labels, range(1, n + 1))
            centres.append(ndimage.center_of_mass(mask, labels, int(np.argmax(sizes)) + 1))
        else:
            centres.append(None)
    steps = [float(np.hypot(*np.subtract(b, a))) for a, b in zip(centres, centres[1:]) if a is not None and b is not None]
    return {"components": float(np.mean(counts)), "step_px": float(np.mean(steps)) if steps else float("nan")}


QUALITY_PROMPTS = [("red", "circle"), ("green", "square"), ("blue", "circle"), ("yellow", "square")]


def quality_report(backbone: Backbone, seeds: Sequence[int] = (0,), steps: int = DEFAULT_SAMPLING_STEPS,
                   cfg: float = DEFAULT_CFG) -> dict:
    rows = []
    prompts = [toy_prompt(c, k) for c, k in QUALITY_PROMPTS]
    for seed in seeds:
        videos = sample_unguided(backbone, prompts, seed * 1000, steps, cfg)
        rows += [quality(v, c) for v, (c, _) in zip(videos, QUALITY_PROMPTS)]
    return {"bg_error_mean": float(np.mean([r["bg_error"] for r in rows])),
            "bg_error_max": float(np.max([r["bg_error"] for r in rows])),
            "fg_fraction_mean": float(np.mean([r["fg_fraction"] for r in rows])),
            "colour_ok": float(np.mean([r["colour_ok"] for r in rows])),
            "components": float(np.mean([r["components"] for r in rows])),
            "step_px": float(np.nanmean([r["step_px"] for r in rows])), "n": len(rows)}


@torch.no_grad()
def timestep_errors(backbone: Backbone, timesteps: Sequence[int] = (10, 50, 200, 400, 700, 950),
                    clips: int = 8, seed: int = 4321) -> list[dict]:
    """Per-timestep diagnostics on held-out toy clips (conditional branch): mean |x̂0 − x0| in
    [0, 1] units, and the spread of the implied noise prediction (1 when calibrated) — the
    earlier trial failed at low noise, where ε̂ had spread 0.6."""
    refs = toy_reference_clips(clips, seed=seed, clip_options=getattr(backbone, "config", {}).get("clip_options"))
    x0 = torch.cat([backbone.encode_video(f) for f, _ in refs])
    context = backbone.encode_prompt([p for _, p in refs]).repeat_interleave(backbone.num_frames, dim=0)
    acp = backbone.scheduler.alphas_cumprod
    kind = backbone.scheduler.config.prediction_type
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for t in timesteps:
        a = acp[t].to(x0.dtype)
        noise = torch.randn(x0.shape, generator=gen)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        out = backbone.unet(xt, torch.full((len(refs),), t), encoder_hidden_states=context).sample
        if kind == "v_prediction":
            x0_hat, eps_hat = a.sqrt() * xt - (1 - a).sqrt() * out, (1 - a).sqrt() * xt + a.sqrt() * out
        elif kind == "epsilon":
            eps_hat = out
            x0_hat = (xt - (1 - a).sqrt() * out) / a.sqrt()
        else:
            x0_hat = out
            eps_hat = (xt - a.sqrt() * out) / (1 - a).sqrt()
        rows.append({"t": int(t), "x0_abs_error": float((x0_hat.clamp(-1, 1) - x0).abs().mean() / 2),
                     "eps_std": float(eps_hat.std()), "eps_mse": float((eps_hat - noise).square().mean())})
    return rows


# ---- training -------------------------------------------------------------------------------------

def _step_generators(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Everything random in one step comes from these, so runs replay and resume exactly."""
    rng = np.random.default_rng([seed, step])
    gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, step, 1]).integers(0, 2**62)))
    return rng, gen


def make_batch(opts: ShapesOptions, rng: np.random.Generator, batch_size: int, label_dropout: float
               ) -> tuple[torch.Tensor, list[str]]:
    """(B, 3, F, H, W) in [-1, 1] and the prompts ("" where dropped)."""
    videos, prompts = [], []
    for _ in range(batch_size):
        spec = random_spec(rng, opts)
        frames, _, _ = render_clip(spec, opts)
        videos.append(to_minus_one_one(frames).permute(1, 0, 2, 3))
        prompts.append("" if rng.random() < label_dropout else spec.prompt())
    return torch.stack(videos), prompts


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def _ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    torch._foreach_lerp_(ema, params, 1 - decay)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".part")
    write(tmp)
    os.replace(tmp, path)


class _Trainer:
    def __init__(self, out_dir: Path, steps: int, seed: int, cfg: TrainConfig, unet_config: dict,
                 clip_options: dict, prompt_tokens: int):
        from diffusers import DDPMScheduler

        self.out, self.steps, self.seed, self.cfg = out_dir, steps, seed, cfg
        self.clip_options = dict(clip_options)
        self.opts = toy_shapes_options(**clip_options)
        self.schedule = default_schedule_config()
        self.noise = DDPMScheduler(**self.schedule)
        vocab = toy_vocabulary(self.opts.colours, self.opts.kinds)
        self.prompt_config = {"vocab": vocab, "dim": unet_config["cross_attention_dim"], "max_tokens": prompt_tokens}
        self.unet_config = unet_config
        torch.manual_seed(seed)                     # initial weights
        self.unet, self.encoder = build_model(unet_config, self.prompt_config)
        self.params = [p for m in (self.unet, self.encoder) for p in m.parameters()]
        self.ema = [p.detach().clone() for p in self.params]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0

    # -- checkpoints
    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def config_dict(self) -> dict:
        return {"format": "motiongrid-toy/1", "unet": self.unet_config, "prompt_encoder": self.prompt_config,
                "schedule": self.schedule, "sampler": SAMPLER_CONFIG, "clip_options": self.clip_options,
                "train": {**self.cfg.__dict__, "seed": self.seed, "steps": self.steps}}

    def save_checkpoint(self) -> None:
        state = {"step": self.step, "model": _combined_state(self.unet, self.encoder),
                 "ema": [e.clone() for e in self.ema], "optimizer": self.opt.state_dict(),
                 "config": self.config_dict(),
                 # RNG: batches/noise of step k come from generators seeded by (seed, k); nothing
                 # else is random, so step + seed is the whole RNG state.
                 "rng": {"scheme": "per-step (seed, step)", "seed": self.seed}}
        _write_atomic(self.ckpt_path, lambda p: torch.save(state, p))

    def load_checkpoint(self) -> None:
        state = torch.load(self.ckpt_path, map_location="cpu", weights_only=False)
        saved = state["config"]
        mine = self.config_dict()
        for key in ("unet", "prompt_encoder", "schedule", "clip_options"):
            if json.dumps(saved[key], sort_keys=True, default=list) != json.dumps(mine[key], sort_keys=True, default=list):
                raise ValueError(f"cannot resume from {self.ckpt_path}: its {key} config differs from this run's")
        if saved["train"]["seed"] != self.seed:
            raise ValueError(f"cannot resume from {self.ckpt_path}: it was trained with seed {saved['train']['seed']}, not {self.seed}")
        unet_state, enc_state = _split_state(state["model"])
        self.unet.load_state_dict(unet_state)
        self.encoder.load_state_dict(enc_state)
        with torch.no_grad():
            for e, s in zip(self.ema, state["ema"]):
                e.copy_(s)
        self.opt.load_state_dict(state["optimizer"])
        self.step = int(state["step"])

    # -- one step
    def train_step(self) -> dict:
        cfg = self.cfg
        rng, gen = _step_generators(self.seed, self.step)
        x0, prompts = make_batch(self.opts, rng, cfg.batch_size, cfg.label_dropout)
        b, f = x0.shape[0], x0.shape[2]
        t = torch.randint(0, self.noise.config.num_train_timesteps, (b,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        xt = self.noise.add_noise(x0, noise, t)
        target = self.noise.get_velocity(x0, noise, t)
        lr = _lr_at(self.step, self.steps, cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr
        context = self.encoder(prompts).repeat_interleave(f, dim=0)
        pred = self.unet(xt, t, encoder_hidden_states=context).sample
        loss = torch.nn.functional.mse_loss(pred, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        # EMA warm-up: early on the average follows the weights closely
        decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
        _ema_update(self.ema, [p.detach() for p in self.params], decay)
        self.step += 1
        return {"step": self.step, "loss": float(loss.detach()), "lr": lr, "grad_norm": float(grad_norm)}

    # -- EMA weights as a standalone model
    def ema_modules(self) -> tuple[nn.Module, PromptEncoder]:
        unet, encoder = build_model(self.unet_config, self.prompt_config)
        with torch.no_grad():
            for p, e in zip([p for m in (unet, encoder) for p in m.parameters()], self.ema):
                p.copy_(e)
        return unet.eval().requires_grad_(False), encoder.eval().requires_grad_(False)


LOG_FIELDS = ["step", "loss", "lr", "grad_norm", "seconds"]


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def export_checkpoint(unet: nn.Module, encoder: nn.Module, config: dict, log_path: Path, dest: Path) -> Path:
    """Write toy.safetensors (+ toy.json, train_log.csv, loss.png) into ``dest``."""
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    weights = dest / "toy.safetensors"
    _write_atomic(weights, lambda p: save_file(_combined_state(unet, encoder), str(p), metadata={"format": "motiongrid-toy/1"}))
    config = {**config, "parameters": count_parameters(unet, encoder), "sha256": sha256_file(weights)}
    _write_atomic(dest / "toy.json", lambda p: p.write_text(json.dumps(config, indent=2, default=list) + "\n"))
    if log_path.exists() and log_path.resolve() != (dest / "train_log.csv").resolve():
        shutil.copyfile(log_path, dest / "train_log.csv")
    plot_loss(_read_log(log_path), dest / "loss.png")
    return weights


def plot_loss(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    window = max(1, min(100, len(loss) // 20))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, color="0.8", lw=0.6, label="per step")
    ax.plot(steps[window - 1:], smooth, color="C0", lw=1.5, label=f"mean of {window}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("v-prediction MSE")
    ax.set_title("toy model training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def train(out_dir: str | os.PathLike, steps: int = 4000, seed: int = 0, *, resume: bool = True,
          max_minutes: float | None = None, export: str | os.PathLike | None = None,
          config: TrainConfig | None = None, unet_config: dict | None = None,
          clip_options: dict | None = None, prompt_tokens: int = 8, progress: bool = True,
          stop_after: int | None = None) -> dict:
    """Train the toy model into ``out_dir`` (checkpoint.pt, train_log.csv, eval.jsonl, and at the
    end export/ with the EMA weights). Resumes from ``out_dir/checkpoint.pt`` when ``resume``.

    ``steps`` sets the schedule (warm-up + cosine decay); ``max_minutes`` stops earlier (the
    export still happens); ``stop_after`` stops after that many steps in this call without
    exporting (tests use it to interrupt a run). Returns a summary dict."""
    cfg = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip_options = {**TOY_CLIP_OPTIONS, **(clip_options or {})}
    unet_config = unet_config or default_unet_config(clip_options["size"], clip_options["frames"])
    trainer = _Trainer(out, steps, seed, cfg, unet_config, clip_options, prompt_tokens)
    log_path = out / "train_log.csv"
    if resume and trainer.ckpt_path.exists():
        trainer.load_checkpoint()
        # drop log rows written after the checkpoint: those steps are redone identically
        rows = [r for r in _read_log(log_path) if int(r["step"]) <= trainer.step]
    else:
        rows = []
    with open(log_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)

    start = time.monotonic()
    first_step = trainer.step
    losses: list[float] = []
    stopped = "steps"
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("toy train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[info]}")]
    with Progress(*columns, disable=not progress) as bar, open(log_path, "a", newline="") as fh:
        task = bar.add_task("train", total=steps, completed=trainer.step, info="")
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        while trainer.step < steps:
            if max_minutes is not None and time.monotonic() - start > max_minutes * 60:
                stopped = "time"
                break
            if stop_after is not None and trainer.step - first_step >= stop_after:
                stopped = "interrupted"
                break
            t0 = time.monotonic()
            row = trainer.train_step()
            row["seconds"] = round(time.monotonic() - t0, 3)
            losses.append(row["loss"])
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
            fh.flush()
            recent = float(np.mean(losses[-50:]))
            bar.update(task, completed=trainer.step, info=f"loss {recent:.4f} lr {row['lr']:.2e} {row['seconds']:.2f}s/step")
            if trainer.step % cfg.checkpoint_every == 0 or trainer.step == steps:
                trainer.save_checkpoint()
            if cfg.eval_every and trainer.step % cfg.eval_every == 0:
                _log_eval(trainer, out)
    if stopped != "interrupted" and trainer.step > first_step:
        trainer.save_checkpoint()
    summary = {"step": trainer.step, "steps": steps, "stopped": stopped, "losses": losses,
               "minutes": (time.monotonic() - start) / 60}
    if stopped == "interrupted":
        return summary
    unet, encoder = trainer.ema_modules()
    cfgd = trainer.config_dict()
    cfgd["train"]["trained_steps"] = trainer.step
    dests = [out / "export"] + ([Path(export)] if export else [])
    for dest in dests:
        export_checkpoint(unet, encoder, cfgd, log_path, dest)
    summary["exported"] = [str(d) for d in dests]
    return summary


def _log_eval(trainer: _Trainer, out: Path) -> None:
    """Sample-quality numbers of the current EMA weights (one batch of 4 prompts)."""
    unet, encoder = trainer.ema_modules()
    opts = trainer.opts
    backbone = ToyBackbone(model_id="toy-train", unet=unet, scheduler=make_ddim_scheduler(trainer.schedule),
                           num_frames=opts.frames, height=opts.size, width=opts.size,
                           device=torch.device("cpu"), dtype=torch.float32, fingerprint={},
                           prompt_encoder=encoder)
    if not all(c in opts.colours for c, _ in QUALITY_PROMPTS):
        return
    report = quality_report(backbone, seeds=(0,))
    with open(out / "eval.jsonl", "a") as fh:
        fh.write(json.dumps({"step": trainer.step, **report}) + "\n")


def export_run(run_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Export the EMA weights of ``run_dir/checkpoint.pt`` (e.g. a run stopped early)."""
    run = Path(run_dir)
    ckpt = run / "checkpoint.pt"
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} not found: is {run} a `motiongrid toy train` output folder?")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    config = state["config"]
    unet, encoder = build_model(config["unet"], config["prompt_encoder"])
    with torch.no_grad():
        for p, e in zip([p for m in (unet, encoder) for p in m.parameters()], state["ema"]):
            p.copy_(e)
    config["train"]["trained_steps"] = int(state["step"])
    return export_checkpoint(unet, encoder, config, run / "train_log.csv", Path(dest))


# ---- the PNG strip -----------------------------------------------------------------------------

# A row maker takes (backbone, reference clip frames (F,3,H,W), prompt, seed) and returns a
# video (F,3,H,W) in [0,1]. Guided rows (MotionClone plain/primary) are added by passing more
# row makers to ``sample_strip`` — see ``strip_rows``.
RowMaker = Callable[[Backbone, torch.Tensor, str, int], torch.Tensor]


def _unguided_row(backbone: Backbone, reference: torch.Tensor, prompt: str, seed: int) -> torch.Tensor:
    return sample_unguided(backbone, [prompt], seed)[0]


def _adapter_row(method: str, **params) -> RowMaker:
    """A row from a registered adapter (the same code path as `motiongrid run`)."""
    def row(backbone: Backbone, reference: torch.Tensor, prompt: str, seed: int) -> torch.Tensor:
        from motiongrid.datasets.clip import Clip
        from motiongrid.datasets.video import Video, hash_frames
        from motiongrid.registry import methods

        adapter = methods.get(method)()
        adapter.prepare(backbone.device)
        adapter.use_backbone(backbone)
        clip = Clip(id="strip", prompt=prompt, loader=lambda: Video(reference, 8.0), source_hash=hash_frames(reference))
        return adapter.generate(clip, adapter.Params(model=backbone.model_id, **params), seed).frames
    return row


def strip_rows() -> dict[str, RowMaker]:
    """The rows of ``motiongrid toy sample`` after the reference row, in order."""
    return {"unguided": _unguided_row,
            "motionclone plain": _adapter_row("motionclone", mask="plain"),
            "motionclone primary k=1": _adapter_row("motionclone", mask="primary", k=1)}


def toy_reference_clips(count: int, seed: int = 1234, clip_options: dict | None = None
                        ) -> list[tuple[torch.Tensor, str]]:
    """``count`` toy clips (frames, prompt). Seeded by (seed, 10**6 + i): training draws step
    k's clips from (train seed, k) with k < 10**6, so these are never training clips."""
    opts = toy_shapes_options(**(clip_options or {}))
    out = []
    for i in range(count):
        spec = random_spec(np.random.default_rng([seed, 10**6 + i]), opts)
        out.append((render_clip(spec, opts)[0], spec.prompt()))
    return out


def sample_strip(backbone: Backbone, out_png: str | os.PathLike, clips: int = 3, seed: int = 0,
                 rows: dict[str, RowMaker] | None = None, scale: int = 4) -> Path:
    """A PNG: for each clip a block of rows (reference, then each row maker), frames left to
    right, upscaled ``scale``× with nearest neighbour, one labelled row per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows if rows is not None else strip_rows()
    refs = toy_reference_clips(clips, clip_options=getattr(backbone, "config", {}).get("clip_options"))
    labels, images = [], []
    for ci, (frames, prompt) in enumerate(refs):
        videos = {"reference": frames}
        for name, maker in rows.items():
            videos[name] = maker(backbone, frames, prompt, seed + ci)
        for name, video in videos.items():
            strip = torch.cat(list(video.clamp(0, 1)), dim=2)          # (3, H, F*W)
            images.append(strip.permute(1, 2, 0).numpy())
            labels.append(f"{name}" + (f" — {prompt}" if name == "reference" else ""))
    fig, axes = plt.subplots(len(images), 1, figsize=(images[0].shape[1] * scale / 100 + 0.2,
                                                      len(images) * (images[0].shape[0] * scale / 100 + 0.3)), dpi=100)
    for ax, img, label in zip(np.atleast_1d(axes), images, labels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label, fontsize=8, loc="left")
        ax.axis("off")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


# ---- CLI --------------------------------------------------------------------------------------------

def _cmd_train(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    summary = train(args.out, steps=args.steps, seed=args.seed, resume=args.resume, max_minutes=args.max_minutes,
                    export=args.export, progress=not args.quiet)
    print(f"trained to step {summary['step']}/{summary['steps']} ({summary['stopped']}), "
          f"{summary['minutes']:.1f} min; exported to {', '.join(summary.get('exported', []))}")
    return 0


def _cmd_export(args) -> int:
    path = export_run(args.run, args.to)
    print(f"exported {path} (+ toy.json, train_log.csv, loss.png)")
    return 0


def _cmd_sample(args) -> int:
    backbone = load_toy_backbone("toy", "cpu", path=args.checkpoint)
    path = sample_strip(backbone, args.out, clips=args.clips, seed=args.seed)
    print(f"wrote {path}")
    return 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("toy", help="train or sample the toy world's video diffusion model")
    sub = p.add_subparsers(dest="toy_command", required=True, metavar="{train,export,sample}")
    t = sub.add_parser("train", help="train the toy model (resumes from DIR/checkpoint.pt)")
    t.add_argument("--out", required=True, help="run folder (checkpoint.pt, train_log.csv, export/)")
    t.add_argument("--steps", type=int, default=4000, help="total steps; sets the LR schedule (default 4000, as shipped)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-minutes", type=float, help="stop (and export) after this many minutes of this invocation")
    t.add_argument("--resume", action=argparse_bool(), default=True,
                   help="continue from DIR/checkpoint.pt if present (default; --no-resume starts over)")
    t.add_argument("--export", help="also export the final EMA weights into this folder (e.g. bench/toy)")
    t.add_argument("--threads", type=int, help="torch intra-op threads")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)
    e = sub.add_parser("export", help="export a run's EMA weights (toy.safetensors, toy.json, log, loss.png)")
    e.add_argument("run", help="a `toy train` output folder")
    e.add_argument("--to", required=True, help="destination folder, e.g. bench/toy")
    e.set_defaults(func=_cmd_export)
    s = sub.add_parser("sample", help="write a PNG strip: reference and generated rows per clip")
    s.add_argument("--out", required=True, help="PNG file")
    s.add_argument("--clips", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--checkpoint", help="toy.safetensors to use (default: the shipped one)")
    s.set_defaults(func=_cmd_sample)


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction
