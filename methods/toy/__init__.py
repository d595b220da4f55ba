"""The toy world's model: a tiny text-conditioned pixel-space video diffusion model trained on
the ``shapes`` clip set (docs/methods.md, "Toy world").

``model`` holds the network, its loading and the ``toy`` backbone; ``train`` the training loop;
``sample`` the quality numbers and the PNG strip. This file only names the shipped checkpoint
(in ``checkpoint/``) for the weights manager, so listing weights imports no torch.
"""
from __future__ import annotations

from pathlib import Path

from motiongrid.bench import weights


def toy_checkpoint_dir() -> Path:
    """Where the shipped checkpoint lives: package data beside this file."""
    return Path(__file__).resolve().parent / "checkpoint"


def toy_checkpoint_file() -> Path:
    return toy_checkpoint_dir() / "toy.safetensors"


weights.register(weights.WeightFile(
    name="toy",
    description="toy world video diffusion model (EMA weights, ships with motiongrid)",
    target=toy_checkpoint_file,
    # It ships inside the package; the URL only names that place (there is no download).
    url=toy_checkpoint_file().as_uri(),
    used_by=("methods.toy",),
))
