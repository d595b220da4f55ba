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

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from motiongrid.bench.fingerprint import file_sha256
from motiongrid.bench.video import from_minus_one_one, to_minus_one_one
from motiongrid.datasets.shapes import PRESETS, ShapesOptions
from motiongrid.methods.backbone import Backbone, BackboneSpec, register_backbone, register_backbone_spec
from motiongrid.methods.toy import toy_checkpoint_dir, toy_checkpoint_file

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
# out_c + cfg·(out_c − out_u). Chosen on seeds 10–12 (not the tests'): 1.5 and 3 gave noisier
# backgrounds and wrong colours.
DEFAULT_CFG = 1.0


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


def toy_weights_path() -> Path:
    """The shipped toy checkpoint through the weights manager, with a toy-specific fix."""
    from motiongrid.bench import weights

    try:
        return Path(weights.require("toy"))
    except weights.WeightsMissing:
        # the manager's generic fix (fetch/import) does not apply to a file the package ships
        raise weights.WeightsMissing(
            f"toy model checkpoint missing: {toy_checkpoint_file()} not found. It ships with motiongrid "
            f"(package data motiongrid/methods/toy/checkpoint/); reinstall motiongrid, or retrain and export it: "
            f"`motiongrid toy train --out DIR --export {toy_checkpoint_dir()}`"
        ) from None


def toy_checkpoint(path: str | os.PathLike | None = None) -> tuple[Path, dict]:
    """(weights path, config) of ``toy.safetensors`` + ``toy.json`` beside it (default: the
    shipped checkpoint), reading no tensors."""
    weights_path = Path(path) if path is not None else toy_weights_path()
    if weights_path.is_dir():
        weights_path = weights_path / "toy.safetensors"
    config_path = weights_path.with_suffix(".json")
    if not weights_path.is_file():
        raise FileNotFoundError(f"toy checkpoint {weights_path} not found")
    if not config_path.is_file():
        raise FileNotFoundError(f"toy checkpoint {weights_path}: its config {config_path.name} is missing beside it")
    return weights_path, json.loads(config_path.read_text())


def toy_fingerprint(weights_path: Path) -> dict:
    """What identifies the toy model's output: the weights' digest and the sampler config."""
    return {"model": "toy", "file": weights_path.name, "sha256": file_sha256(weights_path),
            "sampler": dict(SAMPLER_CONFIG)}


def load_toy(path: str | os.PathLike | None = None, device: torch.device | str = "cpu"
             ) -> tuple[nn.Module, PromptEncoder, dict, Path]:
    """Load (unet, prompt_encoder, config, weights_path) from ``toy.safetensors`` + ``toy.json``
    beside it (default: the shipped checkpoint)."""
    from safetensors.torch import load_file

    weights_path, config = toy_checkpoint(path)
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
        fingerprint=toy_fingerprint(weights_path), prompt_encoder=encoder, config=config,
    )


@register_backbone_spec("toy")
def toy_backbone_spec(model_id: str = "toy", device: torch.device | str = "cpu",
                      path: str | os.PathLike | None = None, **_ignored) -> BackboneSpec:
    """The toy backbone's identity and sampler defaults, without loading its weights."""
    weights_path, config = toy_checkpoint(path)
    return BackboneSpec(model_id=model_id, fingerprint=toy_fingerprint(weights_path),
                        scheduler_config=config["schedule"], make_scheduler=make_ddim_scheduler,
                        default_steps=ToyBackbone.default_steps, default_cfg=ToyBackbone.default_cfg,
                        default_negative_prompt=ToyBackbone.default_negative_prompt)


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


def shape_only_backbone(model_id: str, frames: int, height: int, width: int, dtype: torch.dtype,
                        device: torch.device) -> ToyBackbone:
    """The toy architecture with random weights for ``motiongrid profile`` (shape-only), on the
    current default device. Its real size is the shipped checkpoint's config."""
    _, config = toy_checkpoint()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        unet, encoder = build_model(config["unet"], config["prompt_encoder"])
    finally:
        torch.set_default_dtype(previous)
    unet.eval().requires_grad_(False)
    encoder.eval().requires_grad_(False)
    return ToyBackbone(model_id=model_id, unet=unet, scheduler=make_ddim_scheduler(config["schedule"]),
                       num_frames=frames, height=height, width=width, device=device, dtype=dtype,
                       fingerprint={"shape_only": True}, prompt_encoder=encoder, config=config)


SHAPE_ONLY_PROMPT = toy_prompt("red", "circle")
