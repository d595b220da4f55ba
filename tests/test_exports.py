"""`motiongrid export --to json|hf-dataset|tensorboard|mlflow`, each read back with the target's
own reader (json, `datasets.load_dataset`, TensorBoard's EventAccumulator, MlflowClient against a
real tracking server), and `motiongrid run` ending with its report."""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from synthetic_run import make_run

from motiongrid.bench.cli import main
from motiongrid.reports.data import load_run
from motiongrid.reports.export import export_frame, store_digest
from motiongrid.reports.trackers import DIGEST_TAG, label_values

FAILED = ("static", "circle_down", 1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run", fail={FAILED})


def _digest_of_files(run_dir):
    return {p.name: p.read_bytes() for p in (run_dir / "results.sqlite", run_dir / "run.json")}


def test_json_is_self_describing_and_matches_parquet(run_dir, tmp_path):
    before = _digest_of_files(run_dir)
    out = tmp_path / "run.json"
    assert main(["export", str(run_dir), "--to", "json", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())  # strict JSON: no NaN/Infinity tokens
    assert doc["schema"] == "motiongrid.run-export" and doc["schema_version"] == 1
    assert doc["run"] == json.loads((run_dir / "run.json").read_text())
    frame = export_frame(run_dir)
    assert [r["key"] for r in doc["rows"]] == list(frame["key"])
    assert set(doc["columns"]) == set(frame.columns)
    kinds = doc["columns"]
    assert kinds["psnr"] == {"kind": "metric", "metric": "psnr", "higher_is_better": True}
    assert kinds["fid.unstable"]["kind"] == "diagnostic" and kinds["param.k"]["kind"] == "param"
    assert kinds["time.generate"]["kind"] == "resource"
    # values: the same as parquet's; a missing value is null, inf is the string "Infinity"
    by_key = {r["key"]: r for r in doc["rows"]}
    for rec in frame.to_dict(orient="records"):
        row = by_key[rec["key"]]
        v = rec["psnr"]
        if math.isnan(v):
            assert row["psnr"] is None and row["status"] == "failed"
        elif math.isinf(v):
            assert row["psnr"] == "Infinity" and row["label"] == "reference"
        else:
            assert row["psnr"] == v
    failed = [r for r in doc["rows"] if r["status"] == "failed"]
    assert [(r["label"], r["clip_id"], r["seed"]) for r in failed] == [FAILED]
    assert doc["store_digest"] == store_digest(run_dir)
    assert _digest_of_files(run_dir) == before  # the run dir is only read


def _python_elsewhere(code: str, cwd) -> subprocess.CompletedProcess:
    """A fresh interpreter outside the checkout: there `import datasets` is Hugging Face's, not
    the project's folder of the same name (which the checkout's sys.path[0] would shadow it with)."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf-home")}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_hf_dataset_loads_with_datasets(run_dir, tmp_path):
    out = tmp_path / "ds"
    assert main(["export", str(run_dir), "--to", "hf-dataset", "--out", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "path: data/cells.parquet" in card
    assert "psnr" in card and "0123456789abcdef" in card  # conventions and provenance
    assert "<script>" not in card.split("```json")[0]  # raw only in the fenced config
    code = (f"import datasets, json; ds = datasets.load_dataset({str(out)!r}, split='train'); "
            "print(json.dumps({'n': ds.num_rows, 'keys': sorted(ds['key']), 'cols': ds.column_names}))")
    res = _python_elsewhere(code, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    frame = export_frame(run_dir)
    assert got["n"] == len(frame) and got["keys"] == sorted(frame["key"])
    assert {"psnr", "param.k", "status", "reason"} <= set(got["cols"])


def test_tensorboard_scalars_read_back(run_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    assert main(["export", str(run_dir), "--to", "tensorboard", "--out", str(out)]) == 0
    data = load_run(run_dir)
    values = label_values(data)
    marker = json.loads((out / "motiongrid-export.json").read_text())
    assert marker[DIGEST_TAG] == store_digest(run_dir)
    label = "motionclone(k=2,guidance_weight=1000)"
    acc = EventAccumulator(str(out / marker["labels"][label]), size_guidance={"images": 0, "tensors": 0}).Reload()
    psnr = [e.value for e in acc.Scalars("psnr")]
    ok = [r for r in data.rows if r["label"] == label and r["status"] == "ok"]
    assert psnr == pytest.approx([sum(r["metrics"]["psnr"] for r in ok) / len(ok)], rel=1e-6)
    assert values[label]["psnr"] == pytest.approx(psnr[0], rel=1e-6)
    text = acc.Tensors("cells/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.count("\n") == len(ok) + 1 and "square_right" in text  # header, rule, one line per cell
    img = acc.Images("preview/0")[0]
    assert img.encoded_image_string[:6] == b"GIF89a"
    # the same store again: nothing written; into a folder of another export: a clear error
    n_files = len(list(out.rglob("*")))
    assert main(["export", str(run_dir), "--to", "tensorboard", "--out", str(out)]) == 0
    assert len(list(out.rglob("*"))) == n_files


def test_missing_extra_is_one_clear_error(run_dir, tmp_path, monkeypatch, capsys):
    for name in ("mlflow", "tensorboard", "pyarrow"):  # None in sys.modules: importing it raises ImportError
        monkeypatch.setitem(sys.modules, name, None)
    for target, extra in (("mlflow", "mlflow"), ("tensorboard", "tensorboard"), ("hf-dataset", "hf")):
        assert main(["export", str(run_dir), "--to", target, "--out", str(tmp_path / target)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pip install 'motiongrid[{extra}]'" in err, err


def test_unreachable_tracking_server_fails_fast(run_dir, capsys):
    port = _free_port()
    start = time.monotonic()
    assert main(["export", str(run_dir), "--to", "mlflow", "--tracking-uri", f"http://127.0.0.1:{port}"]) == 2
    assert time.monotonic() - start < 30  # MLflow's own retries would take minutes
    err = capsys.readouterr().err.strip()
    assert "no MLflow server answers there" in err and len(err.splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real tracking server: sqlite backend, a temporary artifact root, 127.0.0.1 only."""
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # starts in 10-80 s here (database migrations)
    while True:
        try:
            urllib.request.urlopen(uri + "/health", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start: " + (root / "server.log").read_text()[-2000:])
            time.sleep(0.5)
    yield uri
    os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker processes
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.mark.slow
def test_mlflow_runs_read_back_and_reexport_is_idempotent(run_dir, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    report = run_dir / "report"
    assert main(["report", str(run_dir), "--previews", "0"]) == 0
    data = load_run(run_dir)
    args = ["export", str(run_dir), "--to", "mlflow", "--tracking-uri", mlflow_server, "--experiment", "exp"]
    assert main(args) == 0
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("exp")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert sorted(r.data.tags["motiongrid.label"] for r in runs) == sorted(data.labels)
    run = next(r for r in runs if r.data.tags["motiongrid.label"] == "motionclone(k=4,guidance_weight=2000)")
    assert run.data.params == {"method": "motionclone", "task": "t2v-motion", "k": "4",
                               "guidance_weight": "2000.0", "mask": "primary"}
    assert run.data.tags[DIGEST_TAG] == store_digest(run_dir)
    assert run.data.tags["git_sha"] == "0123456789abcdef" and run.data.tags["device"] == "cpu"
    assert json.loads(run.data.tags["preprocessing.psnr"]) == {"range": "[0,1]", "data_range": 1.0}
    ok = [r for r in data.rows if r["label"] == run.data.tags["motiongrid.label"] and r["status"] == "ok"]
    assert run.data.metrics["psnr"] == pytest.approx(sum(r["metrics"]["psnr"] for r in ok) / len(ok), rel=1e-9)
    assert run.data.metrics["cells.ok"] == len(ok)
    ref = next(r for r in runs if r.data.tags["motiongrid.label"] == "reference")
    assert "psnr" not in ref.data.metrics  # inf: left out, not stored as a fake number
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"cells.json", "report", "videos"} <= arts
    table = json.loads(open(client.download_artifacts(run.info.run_id, "cells.json", str(tmp_path))).read())
    assert len(table["data"]) == len([r for r in data.rows if r["label"] == run.data.tags["motiongrid.label"]])
    assert any(a.path.endswith("report.html") for a in client.list_artifacts(run.info.run_id, "report"))
    # the same store exported again: no new runs
    assert main(args) == 0
    assert len(client.search_runs([exp.experiment_id], max_results=1000)) == len(data.labels)
    assert report.exists()


@pytest.mark.slow
def test_run_ends_with_its_report(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text('seeds = [0]\nmetrics = ["psnr"]\n[clips]\nset = "shapes"\nlimit = 1\n'
                    'options = { size = 24, frames = 4 }\n[[methods]]\nname = "reference"\n')
    out = tmp_path / "run"
    assert main(["run", str(grid), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert str(out / "report" / "report.html") in capsys.readouterr().out
    assert (out / "report" / "report.md").exists()
    out2 = tmp_path / "run2"
    assert main(["run", str(grid), "--out", str(out2), "--quiet", "--device", "cpu", "--no-report"]) == 0
    assert not (out2 / "report").exists() and (out2 / "results.sqlite").exists()
