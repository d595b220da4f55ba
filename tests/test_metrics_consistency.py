"""subject_consistency: VBench's rule on hand-made features, and the torch.hub loading path
with a stand-in DINO repo and checkpoint in the real places (plumbing only)."""
from __future__ import annotations

import pytest
import torch
from metric_helpers import import_ok, save_dino_standin

from motiongrid.bench import weights
from motiongrid.bench.video import Video
from motiongrid.metrics.consistency import SubjectConsistency, vbench_subject_consistency


def test_vbench_rule_on_hand_made_features():
    same = torch.ones(5, 4)
    assert vbench_subject_consistency(same) == {"value": 1.0, "to_previous": 1.0, "to_first": 1.0}
    e = torch.eye(3)
    # frames 0, 1, 0: cos to previous 0, 0; to first 0, 1
    got = vbench_subject_consistency(torch.stack([e[0], e[1], e[0]]))
    assert got == {"value": pytest.approx(0.25), "to_previous": 0.0, "to_first": pytest.approx(0.5)}
    # opposite features are clamped to 0, not negative
    assert vbench_subject_consistency(torch.stack([e[0], -e[0]]))["value"] == 0.0


def test_missing_dino_names_the_fix(isolated):
    reason = SubjectConsistency().available()
    assert "motiongrid weights fetch dino-hub-repo" in reason


def test_dino_loads_through_torch_hub_from_the_local_copy(isolated):
    save_dino_standin(isolated / "transfer")
    import_ok(isolated / "transfer", "dino-hub-repo", "dino-vitb16")
    assert weights.locate("dino-vitb16").parent == isolated / "torch" / "hub" / "checkpoints"
    metric = SubjectConsistency()
    metric.prepare(torch.device("cpu"))
    still = torch.rand(1, 3, 40, 60).expand(5, 3, 40, 60)
    assert metric.score(Video(still.clone()), None)["value"] == pytest.approx(1.0)
    got = metric.score(Video(torch.rand(5, 3, 40, 60)), None)      # shape-only: random weights
    assert set(got) == {"value", "to_previous", "to_first"}
    assert metric.preprocessing()["resize"].startswith("short side 224")
