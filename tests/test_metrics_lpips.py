"""LPIPS: missing backbone detected without a download attempt; with a locally made AlexNet
state dict placed by `weights import`, the real lpips/torchvision loading path runs on it."""
import pytest
import torch
import torchvision
from metric_helpers import clip_of, import_ok, no_checksum, stage

from motiongrid.bench import weights
from motiongrid.bench.api import MetricUnavailable
from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import ShapesOptions, generate_clips
from motiongrid.metrics.lpips import LPIPS


@pytest.fixture
def no_download(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("a download was attempted")
    # load_state_dict_from_url reads a cached file itself and only calls this to download
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)


def test_missing_backbone_is_reported_without_download(isolated, no_download):
    m = LPIPS()
    reason = m.available()
    assert "alexnet-owt-7be5be79.pth" in reason
    assert "motiongrid weights fetch lpips-alexnet" in reason and "motiongrid weights import DIR" in reason
    frames = torch.rand(2, 3, 32, 32)
    with pytest.raises(MetricUnavailable, match="lpips-alexnet"):
        m.score(Video(frames), clip_of(frames))


def test_import_checks_the_published_hash_prefix(isolated):
    transfer = isolated / "transfer"
    stage(transfer, "lpips-alexnet").write_bytes(b"not alexnet")
    result = {r.name: r for r in weights.import_dir(transfer)}["lpips-alexnet"]
    assert result.status == "rejected" and "sha256" in result.detail
    assert weights.available("lpips-alexnet") is not None


def test_lpips_runs_on_imported_backbone(isolated, no_download):
    transfer = isolated / "transfer"
    torch.manual_seed(0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(state, stage(transfer, "lpips-alexnet"))
    no_checksum("lpips-alexnet")   # our random file cannot carry the real file's hash prefix
    import_ok(transfer, "lpips-alexnet")

    m = LPIPS()
    assert m.available() is None
    clip = generate_clips(ShapesOptions(count=1, size=32, frames=3))[0]
    same = m.score(Video(clip.frames.clone()), clip)
    other = m.score(Video((clip.frames * 0.5).contiguous()), clip)
    # the backbone in use is the file we placed, not a download and not a random init
    assert torch.equal(m.model.net.slice1[0].weight.cpu(), state["features.0.weight"])
    assert same == pytest.approx(0.0, abs=1e-6) and other > 0     # plumbing, not a real LPIPS value
    assert m.preprocessing()["range"].startswith("[-1,1]")
