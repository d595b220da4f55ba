"""Shared by the metric/weights/score tests: an isolated weights + cache environment, and
helpers that place small locally made weight files where `motiongrid weights import` puts them.
Values computed with such files check plumbing only, never a metric's number."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from motiongrid import weights
from motiongrid.datasets.clip import Clip
from motiongrid.datasets.video import Video


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Every weight/cache location under tmp_path; hub access off; registry restored after."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MOTIONGRID_CACHE", str(tmp_path / "mg"))
    monkeypatch.delenv("MOTIONGRID_WEIGHTS", raising=False)
    monkeypatch.setenv("MOTIONGRID_CLEANFID_DIR", str(tmp_path / "cleanfid"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    saved = dict(weights._REGISTRY)
    yield tmp_path
    weights._REGISTRY.clear()
    weights._REGISTRY.update(saved)


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
