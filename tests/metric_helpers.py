"""Shared by the metric/weights/score tests: an isolated weights + cache environment, and
helpers that place small locally made weight files where `motiongrid weights import` puts them.
Values computed with such files check plumbing only, never a metric's number."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from motiongrid.bench import weights
from motiongrid.bench.clip import Clip
from motiongrid.bench.video import Video


def no_checksum(name: str) -> None:
    """A locally made file cannot match the real file's published digest; drop it for the test."""
    weights.register(dataclasses.replace(weights.get(name), sha256=None, size=None), replace=True)


def stage(transfer: Path, name: str) -> Path:
    """DIR/<name>/<target name>, the layout `weights fetch NAME --into DIR` writes."""
    path = transfer / name / weights.get(name).target().name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def import_ok(transfer: Path, *names: str) -> None:
    results = {r.name: r for r in weights.import_dir(transfer)}
    for name in names:
        assert results[name].status == "installed", results[name]
        assert weights.available(name) is None


def clip_of(frames: torch.Tensor, cid: str = "c", prompt: str = "a red square", tracks=None, vis=None) -> Clip:
    video = Video(frames)
    return Clip(id=cid, prompt=prompt, loader=lambda: video, source_hash=video.content_hash(),
                tracks=tracks, visibility=vis)


# ---- stand-in weight files in the real formats (plumbing only) ------------------------------

class _Layers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.proj = torch.nn.Conv2d(3, 2048, 4)

    def forward(self, x):
        return self.proj(self.pool(x))


class _FakeInception(torch.nn.Module):
    """Same TorchScript interface clean-fid's InceptionV3W uses: ``.layers(x)`` -> (B, 2048, 1, 1)."""

    def __init__(self):
        super().__init__()
        self.layers = _Layers()

    def forward(self, x, return_features: bool = False):
        return self.layers(x).flatten(1)


def save_inception_standin(path: Path) -> None:
    """A TorchScript file with the interface clean-fid's Inception wrapper calls."""
    torch.jit.save(torch.jit.script(_FakeInception().eval()), str(path))


def save_alexnet_standin(path: Path, seed: int = 0) -> dict:
    """A random torchvision AlexNet state dict, as LPIPS loads its backbone."""
    import torchvision

    torch.manual_seed(seed)
    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(state, path)
    return state


def save_raft_standin(path: Path, seed: int = 0) -> None:
    """A random torchvision RAFT-large state dict, as the flow metrics load it."""
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.optical_flow.raft_large(weights=None).state_dict(), path)


class _FakeI3D(torch.nn.Module):
    """The call StyleGAN-V's TorchScript I3D takes; its 400 'features' report what it was fed:
    [min, max, T, H, W, mean of each channel, 0...] (plumbing checks only)."""

    def forward(self, x, rescale: bool = False, resize: bool = False, return_features: bool = False):
        b = x.shape[0]
        stats = torch.stack([x.amin((1, 2, 3, 4)), x.amax((1, 2, 3, 4)),
                             torch.full((b,), float(x.shape[2])), torch.full((b,), float(x.shape[3])),
                             torch.full((b,), float(x.shape[4]))], 1)
        return torch.cat([stats, x.mean((2, 3, 4)), torch.zeros(b, 392)], 1)


def save_i3d_standin(path: Path) -> None:
    torch.jit.save(torch.jit.script(_FakeI3D().eval()), str(path))


def save_r3d50_standin(path: Path, seed: int = 0) -> dict:
    """A random 3D ResNet-50 saved as Hara et al.'s release is: {'state_dict'} with 'module.' keys."""
    from motiongrid.metrics.fvd import ResNet3d50

    torch.manual_seed(seed)
    state = ResNet3d50().state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return state


DINO_HUBCONF = '''
dependencies = ["torch"]
import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 4 * 4, 8)

    def forward(self, x):
        return self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))


def dino_vitb16(pretrained=True, **kwargs):
    model = Tiny()
    if pretrained:
        url = "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"
        model.load_state_dict(torch.hub.load_state_dict_from_url(url, map_location="cpu"))
    return model
'''


def save_dino_standin(transfer: Path, seed: int = 0) -> None:
    """A stand-in facebookresearch/dino hub repo (same entrypoint, loading its checkpoint the way
    the real hubconf does) and a checkpoint for it, staged for `weights import`."""
    repo = stage(transfer, "dino-hub-repo")
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "hubconf.py").write_text(DINO_HUBCONF)
    (repo / "vision_transformer.py").write_text("# stand-in\n")
    namespace: dict = {}
    exec(DINO_HUBCONF, namespace)
    torch.manual_seed(seed)
    torch.save(namespace["Tiny"]().state_dict(), stage(transfer, "dino-vitb16"))
