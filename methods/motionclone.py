"""MotionClone (training-free motion cloning by temporal-attention guidance) and its unguided
baseline, on any video-diffusion :class:`Backbone` — the AnimateDiff backbone defined here
(SD1.5 + AnimateDiff v3 motion adapter, latent space) and the toy backbone (methods/toy.py).
See docs/methods.md (MotionClone) for the algorithm and the released code's settings.

Pipeline
  1. ``extract_motion_representation``: reference frames sampled uniformly to the backbone's
     frame count and resized, encoded, noised to ``t_alpha`` with a fixed seed, ONE UNet pass
     with the empty prompt; the temporal self-attention probabilities of the motion modules
     in ``blocks`` (each (B·h·w, heads, F, F), rows sum to 1) are recorded and reduced to the
     top-k values and key indices per (position, head, query frame). Plain control (M ≡ 1)
     is top-k with k = F: every entry, so one code path serves both masks.
  2. ``guided_sample``: DDIM (eta 0) with classifier-free guidance. On the first
     ``guided_fraction`` of the steps (weight ramped up over the first ``ramp`` steps and down
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
  * guided_fraction 0.5 with ramps of min(10, guided/5) steps: at the released 100 steps
    that is the released camera config's 50 guided steps with 10-step ramps. Released code
    packs those 50 steps into t ≥ 700 (custom spacing); diffusers' DDIM spaces uniformly, so
    here they cover t ≥ 500 (0.3 would keep t ≥ 700 but with 30 steps, 61 % of the summed
    guidance of "released").
  * steps / cfg / negative prompt default to the backbone's (``default_steps``,
    ``default_cfg`` in the convention above, ``default_negative_prompt``), else the released
    100 / 7.5 / "". AnimateDiff uses the released values and negative prompt.

Model ids (``model`` parameter): "animatediff" (the released combination through the weights
manager), "toy" (methods/toy.py), a local diffusers SD1.5 directory (unet, vae, text_encoder,
tokenizer; motion_adapter/ optional, else the registered v3 adapter), or a hub id already in
the Hugging Face cache.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from motiongrid import weights
from motiongrid.api import Method, Params
from motiongrid.cache import FeatureCache
from motiongrid.datasets.clip import Clip
from motiongrid.datasets.video import (Video, from_minus_one_one, resize_frames, sample_frame_indices,
                                       to_minus_one_one)
from motiongrid.methods.backbone import Backbone, load_backbone, register_backbone
from motiongrid.registry import methods

# ---- released settings ------------------------------------------------------------------

RELEASED_STEPS = 100
RELEASED_CFG = 7.5
RELEASED_NEGATIVE_PROMPT = ("bad anatomy, extra limbs, ugly, deformed, noisy, blurry, distorted, out of "
                            "focus,  poorly drawn face, poorly drawn hands, missing fingers")
# AnimateDiff's inference scheduler (the motion module was trained with this "linear" schedule).
ANIMATEDIFF_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                             beta_schedule="linear", steps_offset=1, clip_sample=False)
ANIMATEDIFF_FRAMES = 16
# Default λ per update form (module docstring: "released" is the released 2000, "eps" the
# same summed displacement); CALIBRATED_WEIGHTS[(model id, update)] overrides per backbone.
DEFAULT_WEIGHTS = {"released": 2000.0, "eps": 4e4}
# toy: from the configs/toy-full.toml sweep {2000, 8000, 32000}: primary control's motion
# fidelity rises with λ but SSIM falls past 8000 (artifacts); 8000 is the best trade-off.
CALIBRATED_WEIGHTS: dict[tuple[str, str], float] = {("toy", "released"): 8000.0}
EXTRACTION_SEED = 0           # noise for the t_alpha pass; fixed so the cache key needs no seed
MAX_RAMP = 10                 # released warm-up / cool-down length

# ---- weights (offline-first, through the weights manager) -------------------------------

ADAPTER_WEIGHTS = "animatediff-motion-adapter-v3"
BASE_WEIGHTS = "realistic-vision-v6"
VAE_WEIGHTS = "sd-vae-ft-mse"

weights.register(weights.WeightFile(
    name=ADAPTER_WEIGHTS,
    description="AnimateDiff v3 motion module (v3_sd15_mm) in diffusers MotionAdapter format",
    repo_id="guoyww/animatediff-motion-adapter-v1-5-3", kind="hf_repo",
    allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
    required=("config.json", "diffusion_pytorch_model.safetensors"),
    target=lambda: weights.weights_home() / "animatediff-motion-adapter-v1-5-3",
    used_by=("methods.motionclone",),
))
weights.register(weights.WeightFile(
    # MotionClone's realisticVisionV60B1_v51VAE, as the author's diffusers-format repo; its VAE
    # is not included ("noVAE"), the baked-in v51VAE is sd-vae-ft-mse (next entry).
    name=BASE_WEIGHTS,
    description="Realistic Vision v6.0 B1 (SD1.5 community checkpoint) in diffusers format",
    repo_id="SG161222/Realistic_Vision_V6.0_B1_noVAE", kind="hf_repo",
    allow_patterns=("model_index.json", "unet/*", "text_encoder/*", "tokenizer/*", "scheduler/*"),
    required=("unet/config.json", "text_encoder/config.json", "tokenizer"),
    target=lambda: weights.weights_home() / "Realistic_Vision_V6.0_B1_noVAE",
    used_by=("methods.motionclone",),
))
weights.register(weights.WeightFile(
    name=VAE_WEIGHTS,
    description="SD VAE ft-MSE (the VAE baked into realisticVisionV60B1_v51VAE)",
    repo_id="stabilityai/sd-vae-ft-mse", kind="hf_repo",
    allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
    required=("config.json", "diffusion_pytorch_model.safetensors"),
    target=lambda: weights.weights_home() / "sd-vae-ft-mse",
    used_by=("methods.motionclone",),
))


# ---- AnimateDiff backbone ---------------------------------------------------------------

@dataclass
class AnimateDiffBackbone(Backbone):
    vae: torch.nn.Module = None
    text_encoder: torch.nn.Module = None
    tokenizer: object = None
    default_steps: int = RELEASED_STEPS
    default_cfg: float = RELEASED_CFG
    default_negative_prompt: str = RELEASED_NEGATIVE_PROMPT

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        length = min(self.tokenizer.model_max_length, self.text_encoder.config.max_position_embeddings)
        ids = self.tokenizer(list(prompts), padding="max_length", max_length=length, truncation=True,
                             return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0]

    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        pixels = to_minus_one_one(frames).to(self.device, self.dtype)
        # distribution mean, not a sample: the representation must not depend on VAE noise
        latents = torch.cat([self.vae.encode(chunk).latent_dist.mode() for chunk in pixels.split(8)])
        latents = latents.float() * self.vae.config.scaling_factor
        return latents.permute(1, 0, 2, 3).unsqueeze(0)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        z = (latents[0].permute(1, 0, 2, 3) / self.vae.config.scaling_factor).to(self.dtype)
        pixels = torch.cat([self.vae.decode(chunk).sample for chunk in z.split(8)])
        return from_minus_one_one(pixels.float()).cpu()

    def latent_shape(self) -> tuple[int, int, int, int]:
        s = self.vae_scale
        return (self.unet.config.in_channels, self.num_frames, self.height // s, self.width // s)


def _dir_digest(path: Path) -> str:
    """Cheap identity of a model folder: file names and sizes, plus the JSON configs' text."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        h.update(f"{rel}:{f.stat().st_size}\n".encode())
        if f.suffix == ".json":
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _from_hf_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id: the caller explains
        return None


def _resolve_animatediff(model_id: str) -> dict[str, Path]:
    """Folders for base / adapter / vae, or WeightsMissing with the fix command. Never calls
    diffusers, so a missing file is reported here rather than deep inside from_pretrained."""
    if model_id == "animatediff":
        return {"base": weights.require(BASE_WEIGHTS), "adapter": weights.require(ADAPTER_WEIGHTS),
                "vae": weights.require(VAE_WEIGHTS)}
    base = Path(model_id).expanduser()
    if not base.is_dir():
        base = _from_hf_cache(model_id)
        if base is None:
            raise weights.WeightsMissing(
                f"model {model_id!r} is not a registered model ('animatediff', 'toy'), not a local "
                f"directory and not in the Hugging Face cache. Fix: pass a local diffusers SD1.5 "
                f"folder, or download it on a connected machine (`huggingface-cli download {model_id}`)")
    missing = [p for p in ("unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer")
               if not (base / p).exists()]
    if missing:
        raise weights.WeightsMissing(
            f"model folder {base} lacks {', '.join(missing)}; expected a diffusers SD1.5 layout "
            f"(unet/, vae/, text_encoder/, tokenizer/, optional motion_adapter/)")
    adapter = base / "motion_adapter"
    return {"base": base, "adapter": adapter if adapter.is_dir() else weights.require(ADAPTER_WEIGHTS),
            "vae": base / "vae"}


@register_backbone("animatediff")
def load_animatediff(model_id: str, device, num_frames: int = ANIMATEDIFF_FRAMES, **_) -> AnimateDiffBackbone:
    """AnimateDiff: SD1.5 UNet + MotionAdapter -> UNetMotionModel, VAE, CLIP text encoder,
    DDIM with AnimateDiff's schedule. fp16 on CUDA, fp32 elsewhere."""
    device = torch.device(device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    paths = _resolve_animatediff(model_id)

    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    base = paths["base"]
    unet2d = UNet2DConditionModel.from_pretrained(base, subfolder="unet", torch_dtype=dtype)
    adapter = MotionAdapter.from_pretrained(paths["adapter"], torch_dtype=dtype)
    unet = UNetMotionModel.from_unet2d(unet2d, adapter).to(device, dtype).eval()
    del unet2d, adapter
    vae = AutoencoderKL.from_pretrained(paths["vae"], torch_dtype=dtype).to(device).eval()
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", torch_dtype=dtype).to(device).eval()
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)  # guidance differentiates w.r.t. the latent only
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    size = unet.config.sample_size * scale
    fingerprint = {"model": model_id, "dtype": str(dtype).removeprefix("torch."), "num_frames": num_frames,
                   **{k: _dir_digest(p) for k, p in paths.items()}}
    if model_id == "animatediff":
        fingerprint["sources"] = [weights.get(n).source for n in (BASE_WEIGHTS, ADAPTER_WEIGHTS, VAE_WEIGHTS)]
    return AnimateDiffBackbone(
        model_id=model_id, unet=unet, scheduler=DDIMScheduler(**ANIMATEDIFF_SCHEDULER),
        num_frames=num_frames, height=size, width=size, device=device, dtype=dtype,
        fingerprint=fingerprint, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer)


def save_tiny_animatediff(base_dir: str | Path, adapter_dir: str | Path | None = None,
                          vae_dir: str | Path | None = None, size: int = 32, seed: int = 0) -> Path:
    """Write a tiny random-weight AnimateDiff (diffusers layout) for tests and benchmarks:
    UNet (16, 32) + MotionAdapter (2 heads), 2-level VAE (size px -> size/2 latents), 2-layer
    CLIP text encoder with a byte-level tokenizer (no merges) built in code."""
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    base = Path(base_dir)
    torch.manual_seed(seed)
    UNet2DConditionModel(
        sample_size=size // 2, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8).save_pretrained(base / "unet")
    MotionAdapter(block_out_channels=(16, 32), motion_layers_per_block=1, motion_num_attention_heads=2,
                  motion_norm_num_groups=8, motion_max_seq_length=32
                  ).save_pretrained(adapter_dir or base / "motion_adapter")
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                  norm_num_groups=8, sample_size=size).save_pretrained(vae_dir or base / "vae")
    chars = list(bytes_to_unicode().values())  # one token per byte (and per word-final byte)
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=16, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"])).save_pretrained(base / "text_encoder")
    tokenizer.save_pretrained(base / "tokenizer")
    return base


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


def reference_latents(backbone: Backbone, frames: torch.Tensor) -> torch.Tensor:
    """Clip frames (T,3,H,W in [0,1]) -> backbone input: uniform frame sampling, resize, encode."""
    picked = frames[sample_frame_indices(frames.shape[0], backbone.num_frames)]
    picked = resize_frames(picked, (backbone.height, backbone.width))
    return backbone.encode_video(picked).float()


@torch.no_grad()
def extract_motion_representation(backbone: Backbone, frames: torch.Tensor, t_alpha: int = 400,
                                  blocks: str = "up_blocks.1", mask: str = "primary", k: int = 1,
                                  seed: int = EXTRACTION_SEED) -> Representation:
    """MotionClone's representation of a reference clip: one UNet pass at t_alpha (empty
    prompt), the temporal attention of ``blocks`` reduced by ``select_entries``."""
    train_steps = backbone.scheduler.config.num_train_timesteps
    if not 0 <= t_alpha < train_steps:
        raise ValueError(f"t_alpha={t_alpha} must lie in 0..{train_steps - 1}")
    names = temporal_attention_names(backbone.unet, blocks)
    x0 = reference_latents(backbone, frames)
    noise = torch.randn(x0.shape, generator=torch.Generator("cpu").manual_seed(seed)).to(x0.device)
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

def guidance_schedule(steps: int, guided_fraction: float, ramp: int | None = None) -> list[float]:
    """Per-step weight multipliers: the released warm-up (i+1)/R and cool-down (G−i)/R over the
    first G = round(guided_fraction·steps) steps, 0 afterwards. Default R: the released 10,
    at most a fifth of G (the released camera config ramps 10 of 50 guided steps)."""
    guided = round(guided_fraction * steps)
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
                    reference: Representation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Conditional-branch pass with autograd up to the last guided attention map: returns the
    model output (detached), the energy and its gradient w.r.t. ``latents``."""
    x = latents.detach().requires_grad_(True)
    with torch.enable_grad():
        with record_temporal_attention(backbone.unet, list(reference), after="no_grad") as maps:
            out = _unet(backbone, x, t, context)
        energy = motion_energy(maps, reference)
        (grad,) = torch.autograd.grad(energy, x)
    return out.detach(), energy.detach(), grad


def _alpha_bar_prev(scheduler, t) -> torch.Tensor:
    """ᾱ of the step's target timestep, by DDIM's own rule (t − T/N, or the final ᾱ)."""
    prev = int(t) - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    return (scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod).double()


def denoise_step(backbone: Backbone, latents: torch.Tensor, t, cond: torch.Tensor, uncond: torch.Tensor,
                 cfg: float, reference: Representation | None = None, weight: float = 0.0,
                 update: Literal["released", "eps"] = "released") -> tuple[torch.Tensor, float | None]:
    """One DDIM step from ``latents`` at timestep ``t`` (scheduler.set_timesteps already called).
    With a reference and weight > 0 the step is motion-guided with correction c = λ√(1−ᾱ_t)∇g:
    update="eps": ε̂ = ε_cfg + c through scheduler.step (x̂0 recomputed from ε̂);
    update="released": the released scheduler's form, x̂0 from ε_cfg and x_{t−1} −= √(1−ᾱ_{t−1})·c."""
    sched = backbone.scheduler
    x = sched.scale_model_input(latents, t)
    if reference is None or weight <= 0:
        with torch.no_grad():
            if cfg == 0:
                out = _unet(backbone, x, t, cond)
            else:  # one batched pass for both branches
                out_u, out_c = _unet(backbone, x.expand(2, *x.shape[1:]), t, torch.cat([uncond, cond])).chunk(2)
                out = out_c + cfg * (out_c - out_u)
        return sched.step(out, t, latents).prev_sample, None

    with torch.no_grad():
        out_u = _unet(backbone, x, t, uncond) if cfg != 0 else None
    out_c, energy, grad = energy_and_grad(backbone, x, t, cond, reference)
    out = out_c if out_u is None else out_c + cfg * (out_c - out_u)
    a = _alpha_bar(sched, t).to(x.device)
    correction = (weight * (1 - a).sqrt() * grad).float()
    if update == "released":
        a_prev = _alpha_bar_prev(sched, t).to(x.device)
        return sched.step(out, t, latents).prev_sample - ((1 - a_prev).sqrt() * correction).float(), float(energy)
    if update != "eps":
        raise ValueError(f"update must be 'eps' or 'released', got {update!r}")
    if a > 0:  # at exactly zero SNR ε is fixed by x_t: there is nothing to correct
        kind = sched.config.prediction_type
        out = _from_eps(_to_eps(out, x, a, kind) + correction, x, a, kind)
    return sched.step(out, t, latents).prev_sample, float(energy)


def initial_noise(backbone: Backbone, seed: int) -> torch.Tensor:
    """Seeded on the CPU so a seed gives the same video on every device."""
    noise = torch.randn((1, *backbone.latent_shape()), generator=torch.Generator("cpu").manual_seed(seed))
    return noise.to(backbone.device) * backbone.scheduler.init_noise_sigma


@dataclass
class Guidance:
    reference: Representation
    weight: float
    scales: list[float]  # per step; 0 = unguided step
    update: Literal["released", "eps"] = "released"


def guided_sample(backbone: Backbone, prompt: str, seed: int, steps: int, cfg: float,
                  negative_prompt: str = "", guidance: Guidance | None = None,
                  trace: list | None = None) -> torch.Tensor:
    """DDIM sampling (eta 0) from seeded noise; motion-guided where ``guidance.scales`` > 0.
    Returns the final latents. ``trace`` (a list) receives one dict per step."""
    if guidance is not None and len(guidance.scales) != steps:
        raise ValueError(f"guidance has {len(guidance.scales)} step scales for {steps} steps")
    _recorder_for(backbone.unet)  # same attention processors for guided and unguided runs
    sched = backbone.scheduler
    sched.set_timesteps(steps, device=backbone.device)
    cond = backbone.encode_prompt([prompt])
    uncond = backbone.encode_prompt([negative_prompt])
    latents = initial_noise(backbone, seed)
    for i, t in enumerate(sched.timesteps):
        weight = guidance.weight * guidance.scales[i] if guidance is not None else 0.0
        latents, energy = denoise_step(backbone, latents, t, cond, uncond, cfg,
                                       guidance.reference if guidance is not None else None, weight,
                                       guidance.update if guidance is not None else "released")
        if trace is not None:
            trace.append({"step": i, "t": int(t), "weight": weight, "energy": energy})
    return latents


# ---- method adapters --------------------------------------------------------------------

class SamplerParams(Params):
    model: str = Field("animatediff", description="'animatediff', 'toy', a local diffusers folder or a cached hub id")
    steps: int | None = Field(None, ge=1, description="DDIM steps; None = the backbone's default")
    cfg: float | None = Field(None, ge=0, description="ε_c + cfg·(ε_c − ε_u); None = the backbone's default")
    negative_prompt: str | None = Field(None, description="unconditional prompt; None = the backbone's default")


class MotionCloneParams(SamplerParams):
    mask: Literal["primary", "plain"] = "primary"
    k: int = Field(1, ge=1, description="top-k key frames kept per row (primary control)")
    guidance_weight: float | None = Field(None, ge=0, description="λ; None = the default for the model and update")
    update: Literal["released", "eps"] = Field("released", description="how the correction enters the DDIM step")
    guided_fraction: float = Field(0.5, ge=0, le=1, description="first fraction of the DDIM steps guided")
    ramp_steps: int | None = Field(None, ge=1, description="warm-up/cool-down length; None = min(10, guided/5)")
    t_alpha: int = Field(400, ge=0, description="timestep of the reference's single UNet pass")
    blocks: str = Field("up_blocks.1", description="comma-separated module prefixes whose temporal attention is guided")


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

    def use_backbone(self, bb: Backbone) -> None:
        """Serve ``bb`` for its model id (e.g. a toy checkpoint loaded from another path)."""
        self._backbones[(bb.model_id, str(self.device))] = bb

    def backbone(self, model: str) -> Backbone:
        key = (model, str(self.device))
        if key not in self._backbones:
            self._backbones[key] = load_backbone(model, self.device)
        return self._backbones[key]

    def fingerprint(self, params: SamplerParams) -> dict:
        """The weights' identity plus the resolved sampler defaults (they change the video)."""
        bb = self.backbone(params.model)
        steps, cfg, negative = self.sampler_settings(bb, params)
        return {**bb.fingerprint, "steps": steps, "cfg": cfg, "negative_prompt": negative}

    @staticmethod
    def sampler_settings(bb: Backbone, params: SamplerParams) -> tuple[int, float, str]:
        steps = params.steps if params.steps is not None else getattr(bb, "default_steps", RELEASED_STEPS)
        cfg = params.cfg if params.cfg is not None else getattr(bb, "default_cfg", RELEASED_CFG)
        negative = (params.negative_prompt if params.negative_prompt is not None
                    else getattr(bb, "default_negative_prompt", ""))
        return steps, cfg, negative

    def sample(self, clip: Clip, params: SamplerParams, seed: int, guidance: Guidance | None) -> Video:
        bb = self.backbone(params.model)
        steps, cfg, negative = self.sampler_settings(bb, params)
        prompt = clip.target_prompt or clip.prompt
        self.last_trace = []
        latents = guided_sample(bb, prompt, seed, steps, cfg, negative, guidance, trace=self.last_trace)
        return Video(bb.decode_latents(latents).float().clamp(0, 1), clip.video.fps)


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

    def representation(self, bb: Backbone, clip: Clip, p: MotionCloneParams) -> Representation:
        names = temporal_attention_names(bb.unet, p.blocks)
        k = bb.num_frames if p.mask == "plain" else p.k
        if k > bb.num_frames:
            raise ValueError(f"k={k} exceeds the model's {bb.num_frames} frames")
        settings = {"model": bb.model_id, "fingerprint": bb.fingerprint, "t_alpha": p.t_alpha,
                    "blocks": names, "k": k, "size": [bb.num_frames, bb.height, bb.width],
                    "seed": EXTRACTION_SEED, "dtype": str(bb.dtype)}
        tensors = self.cache.get_or_compute(
            clip.content_hash, "motionclone-temporal-attention", settings,
            lambda: representation_to_tensors(extract_motion_representation(
                bb, clip.frames, p.t_alpha, p.blocks, p.mask, p.k)))
        return representation_from_tensors(tensors)

    def generate(self, clip: Clip, params: MotionCloneParams, seed: int) -> Video:
        bb = self.backbone(params.model)
        steps, _, _ = self.sampler_settings(bb, params)
        weight = params.guidance_weight
        if weight is None:
            weight = CALIBRATED_WEIGHTS.get((bb.model_id, params.update), DEFAULT_WEIGHTS[params.update])
        guidance = Guidance(self.representation(bb, clip, params), weight,
                            guidance_schedule(steps, params.guided_fraction, params.ramp_steps), params.update)
        return self.sample(clip, params, seed, guidance)
