"""``lpips``: learned perceptual distance to the reference (the ``lpips`` package, v0.1, AlexNet).

Convention: aligned frame pairs scaled to [-1, 1] with ``to_minus_one_one`` (LPIPS' expected
input; feeding [0, 1] is a known silent error), no resizing beyond ``align``; one distance per
frame pair; video value = mean over frames. Lower is better.

Weights: the AlexNet backbone is torchvision's ``alexnet-owt-7be5be79.pth`` in
``$TORCH_HOME/hub/checkpoints`` (weights entry ``lpips-alexnet``); LPIPS' linear layers ship in
the package. ``available()`` checks both WITHOUT constructing the network, because
``lpips.LPIPS`` would otherwise start a download — or, with ``pnet_rand``, run on random
weights. Neither ever happens here.
"""
from __future__ import annotations

from pathlib import Path

import torch

from motiongrid.bench import weights
from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video, to_minus_one_one
from motiongrid.metrics._common import BaseMetric, align

WEIGHT = "lpips-alexnet"


def linear_layers_path(version: str = "0.1", net: str = "alex") -> Path | None:
    """The package's own linear-layer weights (where lpips.LPIPS looks for them)."""
    try:
        import lpips
    except ImportError:
        return None
    return Path(lpips.__file__).parent / "weights" / f"v{version}" / f"{net}.pth"


@metrics.register("lpips")
class LPIPS(BaseMetric):
    ideal = 0.0

    def available(self) -> str | None:
        lin = linear_layers_path()
        if lin is None:
            return "lpips: the lpips package is not installed. Fix: `pip install lpips`"
        if not lin.is_file():
            return f"lpips: the package's linear layers {lin} are missing. Fix: `pip install --force-reinstall lpips`"
        reason = weights.available(WEIGHT)
        return f"lpips: {reason}" if reason else None

    def load(self) -> None:
        import lpips

        weights.require(WEIGHT)  # checked again right before torchvision would download
        self.model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=False,
                                 verbose=False).eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)

    def preprocessing(self) -> dict:
        return {"library": "lpips", "net": "alex", "version": "0.1", "range": "[-1,1] via to_minus_one_one",
                "reduce": "mean over frames", "resample": self.options["resample"],
                "backbone": str(weights.locate(WEIGHT) or "missing")}

    @torch.no_grad()
    def frame_values(self, generated: Video, clip: Clip) -> torch.Tensor:
        self.ensure_prepared()
        pair = align(self.name, generated, clip, self.options["resample"])
        out = []
        for sl in self.batches(pair.generated.shape[0]):
            g = to_minus_one_one(pair.generated[sl].to(self.device))
            r = to_minus_one_one(pair.reference[sl].to(self.device))
            out.append(self.model(g, r, normalize=False).flatten().double().cpu())
        return torch.cat(out)

    def score(self, generated: Video, clip: Clip) -> float:
        return float(self.frame_values(generated, clip).mean())
