"""The toy world's model: a tiny text-conditioned pixel-space video diffusion model trained on
the ``shapes`` clip set (docs/methods.md, "Toy world").

``model`` holds the network, its loading and the ``toy`` backbone; ``train`` the training loop;
``sample`` the quality numbers and the PNG strip. This file only names the shipped checkpoint
(in ``checkpoint/``); ``weights`` registers it with the weights manager (torch-free), ``cli``
holds the ``toy`` commands.
"""
from __future__ import annotations

from pathlib import Path


def toy_checkpoint_dir() -> Path:
    """Where the shipped checkpoint lives: package data beside this file."""
    return Path(__file__).resolve().parent / "checkpoint"


def toy_checkpoint_file() -> Path:
    return toy_checkpoint_dir() / "toy.safetensors"
