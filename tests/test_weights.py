"""Weights manager: registry, availability with fix commands, offline fail-fast, fetch from a
local mirror, import with checksum checks, verify, and the CLI."""
import hashlib
import time

import pytest

from motiongrid.bench import weights
from motiongrid.bench.cli import main


def _entry(tmp, name="test-file", sha=None, size=None, url=None, **kw):
    return weights.WeightFile(name=name, description="a test file", url=url or f"file://{tmp}/mirror/{name}.bin",
                              sha256=sha, size=size, target=lambda: tmp / "installed" / f"{name}.bin", **kw)


def test_builtin_entries_point_where_the_libraries_look(isolated):
    names = {e.name for e in weights.entries(load_all=False)}
    assert {"lpips-alexnet", "cleanfid-inception", "openclip-vit-b-32-openai", "cotracker3-offline",
            "cotracker-hub-repo"} <= names
    assert weights.get("lpips-alexnet").target() == isolated / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert weights.get("cotracker-hub-repo").target() == isolated / "torch" / "hub" / "facebookresearch_co-tracker_main"
    assert weights.get("cleanfid-inception").target().name == "inception-2015-12-05.pt"
    with pytest.raises(KeyError, match="unknown weight 'nope'"):
        weights.get("nope")
    with pytest.raises(ValueError, match="registered twice"):
        weights.register(weights.WeightFile(name="lpips-alexnet", description="other", url="x", target=lambda: isolated))


def test_missing_reports_reason_and_exact_fix(isolated):
    weights.register(_entry(isolated))
    reason = weights.available("test-file")
    assert "not found" in reason and "`motiongrid weights fetch test-file`" in reason
    assert "`motiongrid weights import DIR`" in reason
    with pytest.raises(weights.WeightsMissing, match="motiongrid weights fetch test-file"):
        weights.require("test-file")
    assert not weights.verify("test-file").ok


def test_fetch_offline_fails_fast(isolated, monkeypatch):
    start = time.perf_counter()
    with pytest.raises(weights.WeightsOffline, match="HF_HUB_OFFLINE.*weights import DIR"):
        weights.fetch("openclip-vit-b-32-openai")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(weights, "_probe", lambda host, timeout=5.0: f"cannot reach {host}")
    with pytest.raises(weights.WeightsOffline, match="cannot reach download.pytorch.org"):
        weights.fetch("lpips-alexnet")
    assert time.perf_counter() - start < 2.0


def test_fetch_from_mirror_checks_sha_then_import_installs(isolated):
    payload = b"weights!" * 100
    (isolated / "mirror").mkdir()
    (isolated / "mirror" / "test-file.bin").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    weights.register(_entry(isolated, sha=sha, size=len(payload)))
    # on the connected machine: into a transfer folder
    got = weights.fetch("test-file", into=isolated / "transfer")
    assert got == isolated / "transfer" / "test-file" / "test-file.bin" and got.read_bytes() == payload
    assert weights.available("test-file") is not None
    # on the air-gapped machine
    results = {r.name: r for r in weights.import_dir(isolated / "transfer")}
    assert results["test-file"].status == "installed"
    assert results["lpips-alexnet"].status == "absent"
    assert weights.require("test-file") == isolated / "installed" / "test-file.bin"
    check = weights.verify("test-file")
    assert check.ok and check.detail == "sha256 ok"
    assert {r.name: r.status for r in weights.import_dir(isolated / "transfer")}["test-file"] == "skipped"
    # a wrong checksum is refused by fetch too
    weights.register(_entry(isolated, sha="0" * 64), replace=True)
    with pytest.raises(weights.WeightsMissing, match="sha256"):
        weights.fetch("test-file", into=isolated / "t2")


def test_import_rejects_bad_files_and_accepts_flat_layout(isolated):
    weights.register(_entry(isolated, sha=hashlib.sha256(b"good").hexdigest()))
    flat = isolated / "flat"
    flat.mkdir()
    (flat / "test-file.bin").write_bytes(b"evil")
    assert {r.name: r for r in weights.import_dir(flat)}["test-file"].status == "rejected"
    (flat / "test-file.bin").write_bytes(b"good")
    assert {r.name: r for r in weights.import_dir(flat)}["test-file"].status == "installed"
    # the installed file is then corrupted: verify says so
    (isolated / "installed" / "test-file.bin").write_bytes(b"bad!")
    check = weights.verify("test-file")
    assert not check.ok and "does not match" in check.detail
    with pytest.raises(FileNotFoundError):
        weights.import_dir(isolated / "missing")


def test_dir_entry_needs_its_required_files(isolated):
    weights.register(weights.WeightFile(name="test-repo", description="repo", url="file:///x.zip", kind="dir",
                                        required=("hubconf.py",), target=lambda: isolated / "repos" / "r"))
    src = isolated / "transfer" / "test-repo" / "r"
    src.mkdir(parents=True)
    (src / "README").write_text("no hubconf")
    assert {r.name: r for r in weights.import_dir(isolated / "transfer")}["test-repo"].status == "absent"
    (src / "hubconf.py").write_text("dependencies = []\n")
    assert {r.name: r for r in weights.import_dir(isolated / "transfer")}["test-repo"].status == "installed"
    assert (isolated / "repos" / "r" / "hubconf.py").is_file() and weights.verify("test-repo").ok


def test_cli_list_fetch_verify_import(isolated, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "lpips-alexnet" in out and "missing" in out
    assert main(["weights", "fetch", "lpips-alexnet"]) == 1
    assert "weights import DIR" in capsys.readouterr().out
    assert main(["weights", "verify", "cleanfid-inception"]) == 1
    (isolated / "empty").mkdir()
    assert main(["weights", "import", str(isolated / "empty")]) == 0
    assert "absent" in capsys.readouterr().out
