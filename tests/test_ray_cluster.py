"""Issue 25: Ray clusters of more than one node, on one machine, and the address errors (issue 24).

Two clusters, one per test class (each lives for its class only):
- ``TestRayStartCLI`` starts a head and a worker node with the ``ray`` CLI, as a user does, by
  running the command block of docs/scaling.md; the driver is a ``motiongrid run`` subprocess.
- ``TestClusterUtils`` uses Ray's own ``ray.cluster_utils.Cluster`` (a head and added nodes, each
  its own raylet) and drives the runner in this process: cells spread over the nodes, the numbers
  of a local run, the feature cache computed once, a node removed mid-run, resume across executors.
Both clusters require token authentication, as Ray 2.60 sets up by default; the `ray start` one
listens on 127.0.0.1 only, the `Cluster` one where Ray's test clusters do (this machine's address).
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch
from ray_helpers import cells, drop

from motiongrid.bench import registry
from motiongrid.bench.cli import main
from motiongrid.bench.config import load_config
from motiongrid.bench.runner import Runner

ray = pytest.importorskip("ray", reason="Ray is the test extra's; pip install -e '.[test]'")
BIN = Path(sys.executable).parent
DOCS = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"

GRID = '''
name = "ray-cluster"
seeds = [0, 1]
metrics = ["psnr", "motion_fidelity"]
device = "cpu"
[clips]
set = "shapes"
limit = {clips}
options = {{ size = 32, frames = 6 }}
[[methods]]
name = "{method}"
[[methods]]
name = "static"
[metric_options.motion_fidelity]
tracker = "lk"   # reference tracks go through the feature cache
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refresh_ray_auth() -> None:
    """Ray reads RAY_AUTH_MODE and the token once per process; make it read the environment again."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture
def auth_env(monkeypatch, tmp_path):
    """A clean Ray authentication environment (no mode, no token, an empty home), restored after."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)   # as in a fresh `motiongrid run` process
    refresh_ray_auth()
    yield monkeypatch
    monkeypatch.undo()
    refresh_ray_auth()


def run_error(address: str, tmp_path: Path, capsys) -> tuple[int, str, float]:
    """`motiongrid run --executor ray --ray-address ADDRESS` in this process: (exit, stderr, seconds)."""
    (tmp_path / "grid.toml").write_text(GRID.format(clips=1, method="reference"))
    start = time.time()
    code = main(["run", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "run"), "--executor", "ray",
                 "--ray-address", address, "--quiet"])
    return code, capsys.readouterr().err.strip(), time.time() - start


def assert_one_line_error(code: int, err: str, seconds: float, *needles: str) -> None:
    assert code == 2 and len(err.splitlines()) == 1, err
    assert seconds < 20, f"took {seconds:.1f} s"   # TIMEOUT_S is 5 s per step
    for needle in needles:
        assert needle in err, err


# -- addresses that are not a reachable Ray head --------------------------------------------------------------

def test_nothing_listening_not_ray_and_address_forms_are_one_error_each(tmp_path, auth_env, capsys):
    port = free_port()   # closed again: nothing listens there
    assert_one_line_error(*run_error(f"127.0.0.1:{port}", tmp_path, capsys), f"nothing listens at Ray address 127.0.0.1:{port}",
                          f"ray start --head --port {port}")
    # a port that accepts and never answers, and a web server: something that is not a Ray head
    silent = socket.create_server(("127.0.0.1", 0))
    http = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        http_port = re.search(r"port (\d+)", http.stdout.readline()).group(1)
        for address in (f"127.0.0.1:{silent.getsockname()[1]}", f"127.0.0.1:{http_port}"):
            assert_one_line_error(*run_error(address, tmp_path, capsys), f"something listens at Ray address {address} but "
                                  "it is not a Ray head", "ray start --head --port")
    finally:
        silent.close()
        http.terminate()
        http.wait()
    assert_one_line_error(*run_error("ray://127.0.0.1:10001", tmp_path, capsys), "ray://127.0.0.1:10001", "Ray Client",
                          "HOST:PORT")
    for address in ("localhost", "http://127.0.0.1:6379", "127.0.0.1:port"):
        assert_one_line_error(*run_error(address, tmp_path, capsys), f"Ray address {address!r} is not HOST:PORT")
    assert_one_line_error(*run_error("no-such-host.invalid:6379", tmp_path, capsys),
                          "cannot reach Ray address no-such-host.invalid:6379")
    assert not (tmp_path / "run").exists()


# -- a head and a worker node started with the `ray` CLI, as docs/scaling.md says ------------------------------

def argv_of(command: str) -> list[str]:
    """A documented command line as the installed tools run it (`ray` as Ray's own CLI entry point)."""
    argv = shlex.split(command)
    if argv[0] == "ray" and not shutil.which("ray", path=str(BIN)):
        return [sys.executable, "-m", "ray.scripts.scripts", *argv[1:]]
    return [shutil.which(argv[0], path=str(BIN)) or argv[0], *argv[1:]]


def docs_commands() -> list[str]:
    """The command block of docs/scaling.md, comments dropped."""
    block = DOCS.read_text().split("```sh", 1)[1].split("\n", 1)[1].split("```", 1)[0]   # after the fence's marks
    return [line.split(" #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="class")
def cli_cluster(tmp_path_factory):
    """Run docs/scaling.md's commands up to `motiongrid run`; that one and `ray stop` are the test's.

    Substituted: a free port for 6379, 127.0.0.1 for HEAD_IP, a temporary folder for /shared,
    the printed token for TOKEN. Added to each `ray start`, for a test on a shared machine:
    --node-ip-address=127.0.0.1 (loopback only), --num-cpus=1, its own --temp-dir (so no other
    Ray on this machine finds this cluster) and --block, so that `ray stop` becomes ending
    these processes by pid: `ray stop` itself ends every Ray process of the user on the machine."""
    tmp = tmp_path_factory.mktemp("cli-cluster")
    short = Path(tempfile.mkdtemp(prefix="mgray", dir="/tmp"))   # Ray's socket paths must stay under 108 bytes
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(tmp / "home"), OMP_NUM_THREADS="1")
    subs = {"6379": str(port), "HEAD_IP": "127.0.0.1", "/shared": str(tmp / "shared")}
    nodes: list[subprocess.Popen] = []
    token, driver = None, None
    commands = docs_commands()
    assert commands[-1] == "ray stop" and sum(c.startswith("ray start") for c in commands) == 2, commands
    try:
        for command in commands[:-1]:
            for old, new in subs.items():
                command = command.replace(old, new)
            if command.startswith("export "):
                name, _, value = command.removeprefix("export ").partition("=")
                env[name] = token if value == "TOKEN" else value
            elif command.startswith("ray get-auth-token"):
                token = subprocess.run(argv_of(command), env=env, capture_output=True, text=True,
                                       check=True, timeout=120).stdout.strip()
            elif command.startswith("ray start"):
                log = tmp / f"node-{len(nodes)}.log"
                nodes.append(subprocess.Popen(
                    [*argv_of(command), "--node-ip-address=127.0.0.1", "--num-cpus=1", "--block",
                     f"--temp-dir={short / str(len(nodes))}", "--disable-usage-stats"],
                    env=env, stdout=log.open("w"), stderr=subprocess.STDOUT))
                _wait_for(log, "Ray runtime started", nodes[-1])
            elif command.startswith("motiongrid run"):
                driver = command
        assert token and driver and len(nodes) == 2
        yield {"env": env, "port": port, "token": token, "driver": driver, "tmp": tmp}
    finally:   # `ray stop`, for these nodes only
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        shutil.rmtree(short, ignore_errors=True)


class TestRayStartCLI:
    def test_the_documented_commands_run_a_grid_on_two_nodes_with_token_authentication(self, cli_cluster, tmp_path):
        env, tmp = cli_cluster["env"], cli_cluster["tmp"]
        grid = tmp / "my-grid.toml"
        grid.write_text(GRID.format(clips=2, method="reference"))
        argv = argv_of(cli_cluster["driver"].replace("configs/my-grid.toml", str(grid)))
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "done: 8 ok, 0 failed" in done.stdout
        out = Path(argv[argv.index("--out") + 1])
        assert out.is_relative_to(tmp / "shared") and len(cells(out)) == 8
        executor = json.loads((out / "run.json").read_text())["executor"]
        assert executor["nodes"] == 2 and executor["cluster_resources"]["CPU"] == 2
        # a worker on each node (the workers authenticated with their node's token, as the nodes did)
        assert len({w["node"] for w in executor["workers"]}) == 2, executor["workers"]
        # the shared feature cache (MOTIONGRID_CACHE from the docs) holds the 2 clips' reference tracks
        assert len(list((tmp / "shared" / "cache" / "motiongrid" / "features").glob("tracks-lk/*.safetensors"))) == 2

    def test_authentication_failures_are_one_error_each_that_says_how_to_fix(self, cli_cluster, tmp_path, auth_env,
                                                                             capsys):
        address = f"127.0.0.1:{cli_cluster['port']}"
        # no RAY_AUTH_MODE (and no token file): the head wants a token, none is sent
        assert_one_line_error(*run_error(address, tmp_path, capsys), f"the Ray cluster at {address} requires token "
                              "authentication and this process sends no token", "export RAY_AUTH_MODE=token",
                              "ray get-auth-token")
        auth_env.setenv("RAY_AUTH_MODE", "token")
        refresh_ray_auth()
        assert_one_line_error(*run_error(address, tmp_path, capsys), "RAY_AUTH_MODE=token but no Ray authentication token")
        auth_env.setenv("RAY_AUTH_TOKEN", "0" * 32)
        refresh_ray_auth()
        assert_one_line_error(*run_error(address, tmp_path, capsys), f"the Ray cluster at {address} rejected this process's "
                              "authentication token (from RAY_AUTH_TOKEN)")
        token_file = tmp_path / "token"
        token_file.write_text(cli_cluster["token"])
        auth_env.delenv("RAY_AUTH_TOKEN")
        auth_env.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
        refresh_ray_auth()
        from motiongrid.bench.ray_address import check_address

        check_address(address)   # the right token, from a file: the head answers
        assert not (tmp_path / "run").exists()


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while text not in log.read_text():
        if process.poll() is not None or time.time() > deadline:
            pytest.fail(f"`ray start` did not start ({process.returncode=}):\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


# -- ray.cluster_utils.Cluster: a head and two more nodes, each its own raylet ------------------------------------

PLUGIN = '''
import os, time
from motiongrid.bench import cache
from motiongrid.bench.api import Method
from motiongrid.bench.registry import methods
from motiongrid.bench.video import Video

@methods.register("node_copy")
class NodeCopy(Method):
    """The reference, after a pause; each start logged as (pid, node, clip, seed, time)."""
    resources = {"gpus": 0, "cpus": 1, "memory_gb": None}

    def generate(self, clip, params, seed):
        import ray
        with open(os.environ["NODE_LOG"], "a") as fh:
            fh.write(f"{os.getpid()} {ray.get_runtime_context().get_node_id()} {clip.id} {seed} {time.time()}\\n")
        time.sleep(0.5)
        return Video(clip.frames.clone(), clip.video.fps)

_get_or_compute = cache.FeatureCache.get_or_compute

def _logged(self, clip_hash, extractor, settings, compute):
    """Every computation of a cache entry, logged with the cache folder it goes to."""
    def computed():
        with open(os.environ["CACHE_LOG"], "a") as fh:
            fh.write(f"{self.root} {clip_hash} {extractor} {os.getpid()}\\n")
        return compute()
    return _get_or_compute(self, clip_hash, extractor, settings, computed)

cache.FeatureCache.get_or_compute = _logged
'''


@pytest.fixture(scope="class")
def cluster(tmp_path_factory):
    from ray.cluster_utils import Cluster

    from motiongrid.bench.cache import FeatureCache

    tmp = tmp_path_factory.mktemp("cluster-utils")
    get_or_compute = FeatureCache.get_or_compute   # the plugin wraps it to log computations
    (tmp / "clusterplugin.py").write_text(PLUGIN)
    with pytest.MonkeyPatch.context() as mp:
        # before the nodes start: their workers inherit this environment (plugin, logs, auth)
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")])))
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.setenv("NODE_LOG", str(tmp / "nodes.log"))
        mp.setenv("CACHE_LOG", str(tmp / "cache.log"))
        mp.setenv("RAY_AUTH_MODE", "token")
        mp.setenv("RAY_AUTH_TOKEN", os.urandom(16).hex())
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.syspath_prepend(str(tmp))
        refresh_ray_auth()
        importlib.import_module("clusterplugin")
        node = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
        # a lost node is noticed in about a second, not Ray's default 15 s
        config = {"health_check_period_ms": 300, "health_check_failure_threshold": 3}
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False,
                                                                "_system_config": config})
        try:
            workers = [cluster.add_node(**node) for _ in range(2)]
            cluster.wait_for_nodes()
            cluster.connect()
            yield {"cluster": cluster, "workers": workers, "tmp": tmp}
        finally:
            ray.shutdown()
            cluster.shutdown()
            registry.methods.unregister("node_copy")
            sys.modules.pop("clusterplugin", None)
            FeatureCache.get_or_compute = get_or_compute
    refresh_ray_auth()


class TestClusterUtils:
    def test_cells_spread_over_nodes_with_local_numbers_a_cache_computed_once_and_resume(
            self, cluster, tmp_path, monkeypatch, capsys):
        tmp = cluster["tmp"]
        (tmp_path / "grid.toml").write_text(GRID.format(clips=3, method="node_copy"))
        config, source = load_config(tmp_path / "grid.toml")
        before = torch.get_num_threads()
        torch.set_num_threads(1)   # the workers' thread count: CPU numbers are then bit-identical
        try:
            monkeypatch.setenv("MOTIONGRID_CACHE", str(tmp_path / "cache-local"))
            Runner(config, source, tmp_path / "local", progress=False).run()
        finally:
            torch.set_num_threads(before)
        local = cells(tmp_path / "local")
        assert len(local) == 12 and all(r[3] == "ok" for r in local.values())
        # the local run stopped before node_copy's cells: the cluster runs them, on a cold shared cache
        shutil.copytree(tmp_path / "local", tmp_path / "resumed")
        assert drop(tmp_path / "resumed", ("node_copy",)) == 6
        monkeypatch.setenv("MOTIONGRID_CACHE", str(tmp_path / "cache-ray"))
        (tmp / "nodes.log").unlink(missing_ok=True)
        summary = Runner(config, source, tmp_path / "resumed", progress=False, executor="ray").run()
        assert (summary.ok, summary.failed, summary.skipped) == (6, 0, 6)
        assert cells(tmp_path / "resumed") == local   # same keys, rows and numbers as the local run
        starts = [line.split() for line in (tmp / "nodes.log").read_text().splitlines()]
        assert len(starts) == 6 and len({s[1] for s in starts}) == 3, starts   # on all three nodes
        computed = [line.split() for line in (tmp / "cache.log").read_text().splitlines()
                    if line.startswith(str(tmp_path / "cache-ray"))]
        # one reference-track entry per clip, each computed once for the whole cluster
        assert sorted(c[1] for c in computed) == sorted({c[1] for c in computed}) and len(computed) == 3, computed
        runs = json.loads((tmp_path / "resumed" / "run.json").read_text())
        assert [i["executor"] for i in runs["invocations"]] == ["local", "ray"] and runs["executor"]["nodes"] == 3

    def test_a_node_removed_mid_run_loses_and_duplicates_no_cell(self, cluster, tmp_path, monkeypatch):
        """Its cells run again elsewhere: Ray restarts the node's worker on another node and retries them."""
        tmp, nodes = cluster["tmp"], cluster["workers"]
        (tmp_path / "grid.toml").write_text(GRID.format(clips=4, method="node_copy"))
        config, source = load_config(tmp_path / "grid.toml")
        out = tmp_path / "run"
        (tmp / "nodes.log").unlink(missing_ok=True)
        runner = Runner(config, source, out, progress=False, executor="ray")
        removed = {}

        def remove_a_node_mid_cell():
            deadline = time.time() + 120
            victim = nodes[-1]
            while time.time() < deadline and not removed:
                log = tmp / "nodes.log"
                lines = log.read_text().splitlines() if log.exists() else []
                mine = [line.split() for line in lines if line.split()[1] == victim.node_id]
                if mine and time.time() - float(mine[-1][4]) < 0.15:   # inside its cell's pause
                    cluster["cluster"].remove_node(victim, allow_graceful=False)
                    removed.update(node=victim.node_id, cell=tuple(mine[-1][2:4]))
                time.sleep(0.02)

        remover = threading.Thread(target=remove_a_node_mid_cell)
        remover.start()
        summary = runner.run()
        remover.join()
        assert removed, "no node was removed mid-cell"
        rows = cells(out)
        assert len(rows) == 16 and (summary.ok, summary.failed) == (16, 0), [r[4] for r in rows.values()]
        starts = [line.split() for line in (tmp / "nodes.log").read_text().splitlines()]
        again = [s for s in starts if tuple(s[2:4]) == removed["cell"]]
        assert len(again) == 2 and again[0][1] == removed["node"] != again[1][1], again   # retried on another node
        assert sorted(p.stem for p in (out / "videos").iterdir()) == sorted(rows)
