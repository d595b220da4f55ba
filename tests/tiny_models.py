"""Tiny random-weight models in the real on-disk formats, for tests and benchmarks that check
plumbing (never a value)."""
from __future__ import annotations

from pathlib import Path

import torch


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


def toy_edit_backbone(seed: int = 0, pose_gain: float = 0.05):
    """A ToyEditBackbone from the shipped toy UNet and freshly initialised toy controllers
    (seeded; PoCtr's zero output conv replaced by small random weights so poses matter).
    Plumbing and algebra only: an untrained controller says nothing about quality."""
    import copy

    import torch

    from motiongrid.methods.motionfollower.model import ToyEditBackbone, toy_controllers
    from motiongrid.methods.toy.model import load_toy, make_ddim_scheduler

    unet, encoder, config, _ = load_toy(None, "cpu")
    base = copy.deepcopy(unet)          # the estimator's base UNet: same weights, separate module
    torch.manual_seed(seed)
    pose, ref = toy_controllers(config["unet"])
    torch.nn.init.normal_(pose.conv_out.weight, std=pose_gain)
    for m in (pose, ref):
        m.eval().requires_grad_(False)
    clip = config["clip_options"]
    return ToyEditBackbone(model_id="toy-edit-test", unet=unet, pose_controller=pose, reference_controller=ref,
                           base_unet=base, scheduler=make_ddim_scheduler(config["schedule"]),
                           num_frames=int(clip["frames"]), height=int(clip["size"]), width=int(clip["size"]),
                           device=torch.device("cpu"), dtype=torch.float32, fingerprint={"model": "toy-edit-test"},
                           default_steps=25, default_cfg=1.0, prompt_encoder=encoder, config=config)


def save_tiny_ldm_single_file(base_dir: str | Path, path: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write the tiny diffusers SD folder of ``save_tiny_animatediff`` as ONE original-format
    (LDM/CompVis) ``.safetensors`` file, the layout of civitai checkpoints such as
    ``realisticVisionV60B1_v51VAE.safetensors``: ``model.diffusion_model.*`` (UNet, input/middle/
    output blocks), ``first_stage_model.*`` (VAE, encoder.down / decoder.up in reverse order,
    mid attention as 1×1 convs) and ``cond_stage_model.transformer.text_model.*`` (CLIP). The
    key names follow the CompVis code, written here from its layout, not by diffusers."""
    import json

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    base = Path(base_dir)
    out: dict[str, torch.Tensor] = {}
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    lpb = unet.config.layers_per_block
    resnet = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    up_has_attention = {i: bool(b.attentions) if hasattr(b, "attentions") else False
                        for i, b in enumerate(unet.up_blocks)}
    for key, value in unet.state_dict().items():
        p = key.split(".")
        if ".".join(p[:-1]) in fixed:
            ldm = f"{fixed['.'.join(p[:-1])]}.{p[-1]}"
        elif p[0] in ("down_blocks", "up_blocks") and p[2] in ("resnets", "attentions"):
            # CompVis numbers layers across blocks: down block i layer j -> input_blocks
            # i(lpb+1)+j+1 (slot 0 after conv_in), up block i layer j -> output_blocks i(lpb+1)+j
            i, kind, j = int(p[1]), p[2], int(p[3])
            rest = ".".join(p[4:]) if kind == "attentions" else f"{resnet[p[4]]}.{p[5]}"
            first = ("input_blocks", 1) if p[0] == "down_blocks" else ("output_blocks", 0)
            ldm = f"{first[0]}.{i * (lpb + 1) + j + first[1]}.{1 if kind == 'attentions' else 0}.{rest}"
        elif p[0] == "down_blocks":   # downsampler: its own input block after the block's layers
            ldm = f"input_blocks.{(int(p[1]) + 1) * (lpb + 1)}.0.op.{p[-1]}"
        elif p[0] == "up_blocks":     # upsampler: inside the block's last output block
            i = int(p[1])
            ldm = f"output_blocks.{i * (lpb + 1) + lpb}.{2 if up_has_attention[i] else 1}.conv.{p[-1]}"
        elif p[0] == "mid_block":
            j = int(p[2])
            ldm = (f"middle_block.1.{'.'.join(p[3:])}" if p[1] == "attentions"
                   else f"middle_block.{2 * j}.{resnet[p[3]]}.{p[4]}")
        else:
            raise AssertionError(f"unexpected UNet key {key}")
        out[f"model.diffusion_model.{ldm}"] = value

    vae = AutoencoderKL.from_pretrained(base / "vae")
    levels = len(vae.config.block_out_channels)
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}
    for key, value in vae.state_dict().items():
        p = key.split(".")
        side = p[0]
        if p[1] in ("down_blocks", "up_blocks"):
            i = int(p[2]) if p[1] == "down_blocks" else levels - 1 - int(p[2])
            level = f"{side}.{'down' if p[1] == 'down_blocks' else 'up'}.{i}"
            if p[3] in ("downsamplers", "upsamplers"):
                ldm = f"{level}.{'downsample' if p[3] == 'downsamplers' else 'upsample'}.conv.{p[-1]}"
            else:
                name = "nin_shortcut" if p[5] == "conv_shortcut" else p[5]
                ldm = f"{level}.block.{p[4]}.{name}.{p[-1]}"
        elif p[1] == "mid_block" and p[2] == "resnets":
            ldm = f"{side}.mid.block_{int(p[3]) + 1}.{'.'.join(p[4:])}"
        elif p[1] == "mid_block":
            ldm = f"{side}.mid.attn_1.{attention[p[4]]}.{p[-1]}"
            value = value[:, :, None, None] if value.ndim == 2 else value   # CompVis: 1×1 convs
        else:
            ldm = {"conv_norm_out": f"{side}.norm_out"}.get(p[1], ".".join(p[:-1])) + f".{p[-1]}"
        out[f"first_stage_model.{ldm}"] = value

    text = CLIPTextModel.from_pretrained(base / "text_encoder")
    for key, value in text.state_dict().items():
        key = key if key.startswith("text_model.") else f"text_model.{key}"
        out[f"cond_stage_model.transformer.{key}"] = value
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in out.items()}, str(path),
              metadata={"format": "pt", "note": json.dumps("tiny test checkpoint")})
    return Path(path)


def save_tiny_sd15_configs(base_dir: str | Path, out_dir: str | Path) -> Path:
    """The ``sd15-configs`` layout for the tiny SD folder: model_index.json, each component's
    config and the tokenizer, no weights (what the SD1.5 repo's configs are for the real size)."""
    import json
    import shutil

    from diffusers import PNDMScheduler

    base, out = Path(base_dir), Path(out_dir)
    for sub in ("unet", "vae", "text_encoder"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base / sub / "config.json", out / sub / "config.json")
    shutil.copytree(base / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    PNDMScheduler(skip_prk_steps=True).save_pretrained(out / "scheduler")   # SD1.5's own scheduler
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"],
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"], "requires_safety_checker": True}))
    return out
