"""Shared fixtures. Helpers that are plain functions live in metric_helpers.py."""
from __future__ import annotations

import pytest

from motiongrid.bench import registry


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Every weight/cache location under tmp_path; hub access off; registry restored after."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MOTIONGRID_CACHE", str(tmp_path / "mg"))
    monkeypatch.delenv("MOTIONGRID_WEIGHTS", raising=False)
    monkeypatch.setenv("MOTIONGRID_CLEANFID_DIR", str(tmp_path / "cleanfid"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    registry.weights.names()   # built-in entries registered before the snapshot, not dropped after it
    saved = dict(registry.weights._items)
    yield tmp_path
    registry.weights._items.clear()
    registry.weights._items.update(saved)


@pytest.fixture
def throwaway_methods():
    """Methods a test registers are removed from the global registry when it ends."""
    before = set(registry.methods.names())
    yield registry.methods
    for name in set(registry.methods.names()) - before:
        registry.methods.unregister(name)
