"""Fast to resume (issue 14): cell keys need no loaded model, so a finished grid re-runs
without loading (or even building the scheduler of) any model, and its keys are the ones a
loaded model gives (stores made before stay finished)."""
from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

from motiongrid.bench import fingerprint, weights
from motiongrid.bench.config import parse_config
from motiongrid.bench.grid import cell_key
from motiongrid.bench.runner import Runner
from motiongrid.methods.baselines import ReferenceBaseline
from motiongrid.methods.motionclone import adapters
from motiongrid.methods.motionclone.params import SamplerParams
from motiongrid.methods.toy import model as toy
from motiongrid.methods.toy import toy_checkpoint_file

GRID = {
    "seeds": [0], "metrics": ["psnr"], "device": "cpu",
    "clips": {"set": "shapes", "limit": 1, "options": {"preset": "toy", "seed": 1000, "count": 2}},
    "methods": [{"name": "reference"}, {"name": "unguided", "params": {"model": "toy", "steps": 2}},
                {"name": "motionclone", "params": {"model": "toy", "steps": 2, "mask": "plain"}}],
}


def _runner(out):
    return Runner(parse_config(GRID), "test", out, progress=False)


@pytest.fixture
def fresh_process(monkeypatch, tmp_path):
    """No backbone loaded yet, and a cache of our own (as a new process on a new machine)."""
    monkeypatch.setenv("MOTIONGRID_CACHE", str(tmp_path / "cache"))

    def reset():
        monkeypatch.setattr(adapters._BackboneMethod, "_backbones", {})
    reset()
    return reset


def test_rerun_of_a_finished_grid_loads_no_model(tmp_path, monkeypatch, fresh_process):
    first = _runner(tmp_path / "run").run()
    assert (first.ok, first.failed) == (3, 0)

    fresh_process()
    loaded, schedulers, prepared = [], [], []
    monkeypatch.setattr(adapters, "load_backbone", lambda *a, **k: loaded.append(a))
    monkeypatch.setattr(toy, "make_ddim_scheduler", lambda *a, **k: schedulers.append(a))
    monkeypatch.setattr(ReferenceBaseline, "prepare", lambda self, *a: prepared.append(a))
    runner = _runner(tmp_path / "run")
    again = runner.run()
    assert (again.total, again.skipped, again.ok, again.failed) == (3, 3, 0, 0)   # every cell recognised
    assert loaded == [] and schedulers == [] and prepared == []                  # and nothing loaded
    assert runner.method_info == {}


def test_keys_from_the_spec_equal_keys_from_the_loaded_model(fresh_process):
    """Stores keyed with a loaded backbone's fingerprint (every store before 0.2.x) stay valid."""
    params = SamplerParams(model="toy", steps=7, guided_steps=3)
    method = adapters.MotionCloneMethod()
    unloaded = method.fingerprint(params)
    assert adapters._BackboneMethod._backbones == {}
    method.load(params)
    assert list(adapters._BackboneMethod._backbones) == [("toy", "cpu")]
    assert method.fingerprint(params) == unloaded
    assert unloaded["sha256"] == _sha256(toy_checkpoint_file())


def test_changed_weight_bytes_change_the_fingerprint_and_the_key(isolated, tmp_path, fresh_process):
    copy = tmp_path / "ckpt" / "toy.safetensors"
    copy.parent.mkdir()
    shutil.copy(toy_checkpoint_file(), copy)
    shutil.copy(toy_checkpoint_file().with_suffix(".json"), copy.with_suffix(".json"))
    weights.register(dataclasses.replace(weights.get("toy"), target=lambda: copy), replace=True)
    params = SamplerParams(model="toy", steps=2)
    before = adapters.UnguidedMethod().fingerprint(params)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF                                   # same path, same size, other bytes
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))
    after = adapters.UnguidedMethod().fingerprint(params)
    assert after["sha256"] != before["sha256"] and after["sha256"] == _sha256(copy)
    keys = []
    for fp in (before, after):
        runner = _runner(tmp_path / "run")
        variant = runner.variants[1]
        keys.append(cell_key(variant, runner.clips[0], 0, runner.metric_spec, fp))
    assert keys[0] != keys[1]


def test_digest_cache_is_keyed_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTIONGRID_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 100)
    first = fingerprint.file_sha256(f)
    assert first == _sha256(f)
    stamp = (f.stat().st_atime_ns, f.stat().st_mtime_ns)
    f.write_bytes(b"b" * 100)
    os.utime(f, ns=stamp)                            # same size and mtime: the cached digest (not re-read)
    assert fingerprint.file_sha256(f) == first
    os.utime(f, ns=(stamp[0], stamp[1] + 10**9))     # mtime changed: re-hashed
    assert fingerprint.file_sha256(f) == _sha256(f) != first
    f.write_bytes(b"b" * 101)
    os.utime(f, ns=(stamp[0], stamp[1] + 10**9))     # size changed, mtime as cached: re-hashed
    assert fingerprint.file_sha256(f) == _sha256(f)


def test_memo_recomputes_only_for_new_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTIONGRID_CACHE", str(tmp_path / "cache"))
    calls = []
    compute = lambda: calls.append(1) or {"steps": len(calls)}
    assert fingerprint.memo("t", {"a": 1}, compute) == {"steps": 1}
    assert fingerprint.memo("t", {"a": 1}, compute) == {"steps": 1}
    assert fingerprint.memo("t", {"a": 2}, compute) == {"steps": 2}
    assert len(calls) == 2


def _sha256(path) -> str:
    """The reference digest, by hashlib directly (not the code under test)."""
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()
