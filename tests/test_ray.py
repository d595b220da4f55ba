"""Issue 13: a grid on a Ray cluster stores the same cells and numbers as a local run, resumes
across executors, and loses or duplicates no cell when a worker process is killed.

One local Ray instance (2 CPUs, no dashboard) serves the whole module; workers find the test's
plugin methods through PYTHONPATH, set before Ray starts."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from ray_helpers import cells as _cells
from ray_helpers import drop as _drop

from motiongrid.bench import registry
from motiongrid.bench.cli import main
from motiongrid.bench.config import load_config
from motiongrid.bench.runner import Runner

PLUGIN = '''
import os, signal, time
from pathlib import Path
from motiongrid.bench.api import Method
from motiongrid.bench.video import Video
from motiongrid.bench.registry import methods

@methods.register("slow_copy")
class SlowCopy(Method):
    """The reference, after a second: long enough to be killed mid-cell. Each start is logged
    (pid, clip, seed) so the test can tell which cell a killed worker had in hand."""
    resources = {"gpus": 0, "cpus": 1, "memory_gb": None}

    def generate(self, clip, params, seed):
        with open(os.environ["SLOW_COPY_LOG"], "a") as fh:
            fh.write(f"{os.getpid()} {clip.id} {seed} {time.time()}\\n")
        time.sleep(1.0)
        return Video(clip.frames.clone(), clip.video.fps)

@methods.register("crash_first")
class CrashFirst(Method):
    """Kills its own worker process on the first clip, seed 0, every time: a cell that can never succeed."""
    def generate(self, clip, params, seed):
        if clip.id.startswith("shapes-000") and seed == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return Video(clip.frames.clone(), clip.video.fps)
'''

SLOW_GRID = '''
name = "ray-faults"
seeds = [0, 1]
metrics = ["psnr"]
device = "cpu"
[clips]
set = "shapes"
limit = 4
options = { size = 24, frames = 4 }
[[methods]]
name = "slow_copy"
[[methods]]
name = "crash_first"
'''


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray", reason="Ray is the test extra's; pip install -e '.[test]'")
    plugins = tmp_path_factory.mktemp("plugins")
    (plugins / "rayplugin.py").write_text(PLUGIN)
    with pytest.MonkeyPatch.context() as mp:
        # before ray.init: the workers Ray starts inherit this environment
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")])))
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.setenv("SLOW_COPY_LOG", str(plugins / "starts.log"))
        mp.syspath_prepend(str(plugins))
        importlib.import_module("rayplugin")   # registers slow_copy and crash_first here too
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()
            for name in ("slow_copy", "crash_first"):
                registry.methods.unregister(name)
            sys.modules.pop("rayplugin", None)


@pytest.fixture
def one_thread():
    """The local run with the workers' thread count: then CPU numbers are bit-identical."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ray_stores_the_same_cells_and_numbers_as_local_and_resumes_across_executors(
        ray_cluster, one_thread, tmp_path, monkeypatch, capsys):
    from motiongrid.methods.motionclone import adapters

    # the local runs load the toy model into this process: keep it from later tests (a corrupt-checkpoint test)
    monkeypatch.setattr(adapters._BackboneMethod, "_backbones", {})
    default = ["run", "--limit", "1", "--device", "cpu", "--quiet"]   # the default toy grid, first clip
    # separate feature caches: the Ray run recomputes the motion representations itself
    monkeypatch.setenv("MOTIONGRID_CACHE", str(tmp_path / "cache-local"))
    assert main([*default, "--out", str(tmp_path / "local")]) == 0
    monkeypatch.setenv("MOTIONGRID_CACHE", str(tmp_path / "cache-ray"))
    assert main([*default, "--out", str(tmp_path / "ray"), "--executor", "ray"]) == 0
    local, on_ray = _cells(tmp_path / "local"), _cells(tmp_path / "ray")
    assert len(local) == 6 and all(r[3] == "ok" for r in local.values())
    assert on_ray == local   # same keys; status, metrics (as stored JSON), notes, artifacts: bit for bit
    run = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert run["executor"]["name"] == "ray" and run["executor"]["cluster_resources"]["CPU"] == 2
    assert len(run["executor"]["workers"]) == 2 and {w["threads"] for w in run["executor"]["workers"]} == {1}

    # a local run dir resumes on Ray, and a Ray run dir locally: only the missing cells run
    shutil.copytree(tmp_path / "local", tmp_path / "local-then-ray")
    assert _drop(tmp_path / "local-then-ray", ("static", "reference")) == 2
    shutil.copytree(tmp_path / "ray", tmp_path / "ray-then-local")
    assert _drop(tmp_path / "ray-then-local", ("static", "unguided(model=toy)")) == 2
    capsys.readouterr()
    assert main([*default, "--out", str(tmp_path / "local-then-ray"), "--executor", "ray"]) == 0
    assert main([*default, "--out", str(tmp_path / "ray-then-local")]) == 0
    out = capsys.readouterr().out
    assert out.count("done: 2 ok, 0 failed, 4 already finished") == 2, out
    assert _cells(tmp_path / "local-then-ray") == local and _cells(tmp_path / "ray-then-local") == local
    invocations = json.loads((tmp_path / "local-then-ray" / "run.json").read_text())["invocations"]
    assert [i["executor"] for i in invocations] == ["local", "ray"]


def test_a_killed_worker_loses_and_duplicates_no_cell(ray_cluster, tmp_path, monkeypatch):
    from motiongrid.bench import ray_executor

    monkeypatch.setattr(ray_executor, "RETRIES", 1)   # one retry: the always-crashing cell dies twice
    starts = Path(os.environ["SLOW_COPY_LOG"])
    starts.unlink(missing_ok=True)
    (tmp_path / "grid.toml").write_text(SLOW_GRID)
    config, source = load_config(tmp_path / "grid.toml")
    out = tmp_path / "run"
    runner = Runner(config, source, out, progress=False, executor="ray")
    killed = {}

    def kill_a_worker_mid_cell():
        """SIGKILL worker 0 (its pid from Ray) while it is inside a slow cell, once 2 cells are stored."""
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            pids = [w.get("pid") for w in runner.executor.worker_info if w.get("pid")]
            stored = len(_cells(out)) if (out / "results.sqlite").exists() else 0
            lines = starts.read_text().split("\n")[:-1] if starts.exists() else []
            mine = [line.split() for line in lines if pids and line.startswith(f"{pids[0]} ")]
            if stored >= 2 and mine and time.time() - float(mine[-1][3]) < 0.5:   # mid-sleep
                os.kill(pids[0], signal.SIGKILL)
                killed.update(pid=pids[0], cell=tuple(mine[-1][1:3]))
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker_mid_cell)
    killer.start()
    summary = runner.run()
    killer.join()
    assert killed, "no worker was killed mid-cell"
    rows = list(_cells(out).values())
    assert len(rows) == 16 and len({r[:3] for r in rows}) == 16            # every cell exactly once
    failed = [r for r in rows if r[3] == "failed"]
    assert (summary.ok, summary.failed) == (15, 1)
    # the cell that kills its worker every time: retried, then stored as failed with the reason
    assert failed[0][0] == "crash_first" and failed[0][1].startswith("shapes-000") and failed[0][2] == 0
    assert "worker process died while running this cell (2 attempts" in failed[0][4]
    # the cell the killed worker had in hand was started again elsewhere and stored once, ok
    again = [line.split() for line in starts.read_text().splitlines() if tuple(line.split()[1:3]) == killed["cell"]]
    assert len(again) == 2 and again[0][0] == str(killed["pid"]) != again[1][0]
    assert sorted(p.stem for p in (out / "videos").iterdir()) == sorted(k for k, r in _cells(out).items() if r[3] == "ok")


def test_without_ray_the_ray_executor_is_one_error_with_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)   # import ray -> ImportError, as when it is not installed
    assert main(["run", "--limit", "1", "--out", str(tmp_path / "run"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs Ray" in err and "pip install -e '.[ray]'" in err
    assert not (tmp_path / "run").exists()
    (tmp_path / "grid.toml").write_text(SLOW_GRID.replace('device = "cpu"', 'executor = "ray"'))
    assert main(["run", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "run")]) == 2   # the config's choice
    assert "pip install -e '.[ray]'" in capsys.readouterr().err
    assert main(["run", "--limit", "1", "--out", str(tmp_path / "run"), "--workers", "2"]) == 2
    assert "--workers need the ray executor (--executor ray)" in capsys.readouterr().err


def test_ctrl_c_stores_the_running_cells_and_the_same_command_resumes(ray_cluster, tmp_path, capsys):
    """SIGINT to the driver stops handing out cells, lets the running ones finish and stores them
    (exit 130, the resume command names the executor); the same command completes every cell
    exactly once. (kill -9 of the driver: the write path is the local runner's, tests/test_resume.py.)"""
    (tmp_path / "grid.toml").write_text(SLOW_GRID.replace('[[methods]]\nname = "crash_first"\n', ""))
    out = tmp_path / "run"
    argv = ["run", str(tmp_path / "grid.toml"), "--out", str(out), "--quiet", "--executor", "ray"]

    def a_cell_is_stored() -> bool:
        try:
            return (out / "results.sqlite").exists() and bool(_cells(out))
        except sqlite3.OperationalError:   # the file exists before its tables do
            return False

    def interrupt_once_a_cell_is_stored():
        deadline = time.time() + 60
        while time.time() < deadline and not a_cell_is_stored():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)   # handled in the main thread, where the driver runs

    sender = threading.Thread(target=interrupt_once_a_cell_is_stored)
    sender.start()
    assert main(argv) == 130
    sender.join()
    err = capsys.readouterr().err
    assert "stopped by SIGINT" in err and "resume with: motiongrid run" in err and "--executor=ray" in err
    first = _cells(out)
    assert 2 <= len(first) < 8    # the other worker's running cell was stored too, and no new one started
    assert sorted(p.stem for p in (out / "videos").iterdir()) == sorted(first)   # no orphan video, no .part
    assert main(argv) == 0
    assert f"{len(first)} already finished" in capsys.readouterr().out
    rows = _cells(out)
    assert len(rows) == 8 and len({r[:3] for r in rows.values()}) == 8 and all(r[3] == "ok" for r in rows.values())
    assert sorted(p.stem for p in (out / "videos").iterdir()) == sorted(rows)


def test_an_unreachable_cluster_is_one_error_at_once(tmp_path, monkeypatch, capsys):
    ray = pytest.importorskip("ray", reason="Ray is the test extra's; pip install -e '.[test]'")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)   # as in a fresh process
    start = time.time()
    assert main(["run", "--limit", "1", "--out", str(tmp_path / "run"), "--executor", "ray",
                 "--ray-address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert time.time() - start < 30 and len(err.splitlines()) == 1
    assert "nothing listens at Ray address 127.0.0.1:1" in err and "ray start --head --port 1" in err


def test_a_cache_entry_wanted_by_several_workers_at_once_is_computed_once(tmp_path):
    """Reference-side preparation once per clip, not once per worker: the first to miss computes
    while holding the entry's lock; the others wait for it and read its result."""
    from motiongrid.bench.cache import FeatureCache

    calls, start = [], threading.Barrier(3)

    def compute():
        calls.append(1)
        time.sleep(0.3)
        return {"x": torch.arange(4.0)}

    def want(results, i):
        cache = FeatureCache(tmp_path)   # one per worker, as each process has its own
        start.wait()
        results[i] = cache.get_or_compute("clip", "extractor", {"k": 1}, compute)["x"]

    results = [None] * 3
    threads = [threading.Thread(target=want, args=(results, i)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(torch.equal(r, torch.arange(4.0)) for r in results)
