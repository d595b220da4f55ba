"""Pure functions on frames that both metrics and methods use (methods may not import metrics).

``psnr_per_frame`` is the ``psnr`` metric's number (metrics/fidelity.py) and MotionFollower's
reconstruction check (methods/motionfollower/adapter.py): written once, here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:   # the constants are read by torch-free option models (metrics/options.py)
    import torch

IDENTICAL_MSE = 1e-10     # the field's scripts: a frame this close to its reference scores 100 dB
CAPPED_PSNR = 100.0


def psnr_per_frame(generated: torch.Tensor, reference: torch.Tensor, cap: bool = True) -> torch.Tensor:
    """(T,) PSNR in dB of frame pairs (T, ...) in [0, 1]: 10·log10(1/MSE) over each whole frame,
    in float64 (torchmetrics divides by a float32 ln 10, ~1e-6 dB off at 50 dB). ``cap``: a
    frame with MSE < 1e-10 scores 100 dB; else an identical frame is +inf."""
    import torch

    mse = (generated.double() - reference.double()).square().flatten(1).mean(1)
    values = 10 * torch.log10(1.0 / mse)                 # data_range 1; mse 0 gives +inf
    if cap:
        values = torch.where(mse < IDENTICAL_MSE, torch.full_like(values, CAPPED_PSNR), values)
    return values
