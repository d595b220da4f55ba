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
