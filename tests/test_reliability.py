"""Issue 15: every bad input, file and interruption gets one clear line, an exit code, and a
consistent store. Each test names the defect it pins down."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from motiongrid.bench import weights
from motiongrid.bench.cli import main
from motiongrid.bench.store import Store
from motiongrid.bench.video import VideoError, read_video
from motiongrid.datasets.folder import FolderClipSet, ManifestError

ROOT = Path(__file__).resolve().parent.parent

GRID = """\
seeds = [0]
metrics = ["psnr"]
[clips]
set = "shapes"
limit = 2
options = { size = 24, frames = 4 }
[[methods]]
name = "reference"
[[methods]]
name = "static"
"""


def grid(tmp_path: Path, text: str = GRID, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_ok(tmp_path: Path, out: Path, text: str = GRID) -> None:
    assert main(["run", str(grid(tmp_path, text)), "--out", str(out), "--quiet", "--device", "cpu"]) == 0


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# ---- arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_limit_must_be_a_positive_integer(tmp_path, capsys, value):
    # was: --limit 0 ran every clip and --limit -1 dropped the last one, exit 0 both times
    with pytest.raises(SystemExit) as exc:
        main(["run", str(grid(tmp_path)), "--out", str(tmp_path / "out"), f"--limit={value}"])
    assert exc.value.code == 2
    assert "--limit: expected a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- the CLI's error policy ------------------------------------------------------------------

def test_out_under_a_file_is_one_error(tmp_path, capsys):
    # was: a raw NotADirectoryError traceback
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "run"
    assert main(["run", str(grid(tmp_path)), "--out", str(out), "--quiet", "--device", "cpu"]) == 2
    one_line_error(capsys, "motiongrid run: error:", str(out), "Not a directory")


def test_internal_error_is_one_line_with_the_traceback_in_a_log(tmp_path, capsys, monkeypatch):
    import motiongrid.reports.report as report

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("motiongrid.reports.report.write_report", broken)   # the handler imports it when run
    assert report  # the command's module is loaded; its handler now hits the bug
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert main(["report", str(run_dir)]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error: ZeroDivisionError: a bug" in err
    logs = list(run_dir.glob("motiongrid-error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    assert "Traceback" in logs[0].read_text() and "ZeroDivisionError" in logs[0].read_text()
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "report", str(run_dir)])
    monkeypatch.setenv("MOTIONGRID_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["report", str(run_dir)])


# ---- the store and run.json --------------------------------------------------------------------

def test_a_file_that_is_not_a_store_is_one_error_and_left_untouched(tmp_path, capsys):
    # was: a raw sqlite3.DatabaseError traceback in run, report, compare and export
    bad = tmp_path / "bad"
    bad.mkdir()
    db = bad / "results.sqlite"
    db.write_bytes(np.random.default_rng(0).bytes(4096))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    good = tmp_path / "good"
    run_ok(tmp_path, good)
    capsys.readouterr()
    commands = [["run", str(grid(tmp_path)), "--out", str(bad), "--quiet", "--device", "cpu"],
                ["report", str(bad)], ["compare", str(good), str(bad)], ["export", str(bad), "--format", "csv"]]
    for argv in commands:
        assert main(argv) == 2, argv
        one_line_error(capsys, str(db), "not a motiongrid results store", "left untouched")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in bad.iterdir() if p.name != ".lock") == ["results.sqlite"]


def test_store_records_its_schema_version_and_refuses_a_newer_one(tmp_path):
    from motiongrid.bench.errors import StoreError
    from motiongrid.bench.store import SCHEMA_VERSION

    with Store(tmp_path / "new.sqlite") as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # the committed baseline predates versioning: it opens read-only as version 1, unmodified
    baseline = ROOT / "ci" / "baseline" / "results.sqlite"
    digest = hashlib.sha256(baseline.read_bytes()).hexdigest()
    with Store.open_existing(baseline.parent) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == 0 and store.rows()
    assert hashlib.sha256(baseline.read_bytes()).hexdigest() == digest
    future = tmp_path / "future.sqlite"
    conn = sqlite3.connect(future)
    conn.executescript("CREATE TABLE cells (key TEXT); PRAGMA user_version = 99;")
    conn.close()
    digest = hashlib.sha256(future.read_bytes()).hexdigest()
    for readonly in (True, False):
        with pytest.raises(StoreError, match=r"future.sqlite: written by a newer motiongrid \(store schema 99"):
            Store(future, readonly=readonly)
    assert hashlib.sha256(future.read_bytes()).hexdigest() == digest


def test_truncated_run_json_does_not_block_resume(tmp_path, capsys):
    # was: a raw JSONDecodeError; the store is the truth and run.json is rewritten from it
    out = tmp_path / "run"
    run_ok(tmp_path, out)
    run_json = out / "run.json"
    run_json.write_text(run_json.read_text()[:200])
    run_ok(tmp_path, out)
    data = json.loads(run_json.read_text())
    assert data["cells"] == {"total": 4, "ok": 4, "failed": 0} and data["finished_at"]
    assert "4 already finished" in capsys.readouterr().out


def test_concurrent_writers_get_unique_temporary_names(tmp_path, monkeypatch):
    # was: every writer of run.json used run.json.part, of a video <key>.mp4.part
    from motiongrid.bench.video import Video, write_video

    temporaries = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (temporaries.append(Path(src)), real_replace(src, dst))[1])
    video = Video(torch.rand(2, 3, 8, 8))
    write_video(video, tmp_path / "v.mp4")
    write_video(video, tmp_path / "v.mp4")
    out = tmp_path / "run"
    run_ok(tmp_path, out)
    runs_json = [t for t in temporaries if t.parent == out and "run.json" in t.name]
    assert len(temporaries[:2]) == len(set(temporaries[:2])) == 2          # two writers, two names
    assert len(runs_json) == len(set(runs_json)) >= 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".part") == []


def test_a_second_run_on_the_same_directory_is_refused(tmp_path, capsys):
    from motiongrid.bench.rundir import RunDirLock

    out = tmp_path / "run"
    with RunDirLock(out):  # another run holds the directory
        assert main(["run", str(grid(tmp_path)), "--out", str(out), "--quiet", "--device", "cpu"]) == 2
        one_line_error(capsys, "another motiongrid run", f"pid {os.getpid()}", str(out))
        assert not (out / "results.sqlite").exists()
    run_ok(tmp_path, out)  # released: the directory is usable again


# ---- disk full ---------------------------------------------------------------------------------

def test_disk_full_while_writing_a_video_fails_that_cell_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    import av

    real_open = av.open
    calls = {"n": 0}

    def open_then_fill_the_disk(file, mode="r", **kwargs):
        if mode == "w" and "/videos/" in str(file):
            calls["n"] += 1
            if calls["n"] == 2:
                Path(file).write_bytes(b"\0" * 100)   # part of the file got written...
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, **kwargs)

    monkeypatch.setattr(av, "open", open_then_fill_the_disk)
    out = tmp_path / "run"
    assert main(["run", str(grid(tmp_path)), "--out", str(out), "--quiet", "--device", "cpu"]) == 1
    rows = sqlite3.connect(out / "results.sqlite").execute("SELECT status, reason, artifact FROM cells").fetchall()
    failed = [r for r in rows if r[0] == "failed"]
    assert len(rows) == 4 and len(failed) == 1 and "No space left on device" in failed[0][1]
    videos = sorted(p.name for p in (out / "videos").iterdir())
    assert videos == sorted(Path(r[2]).name for r in rows if r[0] == "ok")   # no .part, no orphan


def test_disk_full_while_writing_a_row_stops_the_run_cleanly(tmp_path, monkeypatch, capsys):
    real_put = Store.put
    calls = {"n": 0}

    def put_then_fill_the_disk(self, result):
        calls["n"] += 1
        if calls["n"] == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real_put(self, result)

    monkeypatch.setattr(Store, "put", put_then_fill_the_disk)
    out = tmp_path / "run"
    assert main(["run", str(grid(tmp_path)), "--out", str(out), "--quiet", "--device", "cpu"]) == 2
    one_line_error(capsys, "cannot store cell", "database or disk is full", "stopped after 2 cells",
                   "run the same command again")
    keys = [k for (k,) in sqlite3.connect(out / "results.sqlite").execute("SELECT key FROM cells")]
    assert len(keys) == 2
    assert sorted(p.stem for p in (out / "videos").iterdir()) == sorted(keys)   # the third video was removed
    monkeypatch.setattr(Store, "put", real_put)
    run_ok(tmp_path, out)   # space is back: the run resumes and completes


# ---- signals -------------------------------------------------------------------------------------

SLOW_PLUGIN = '''
import time
from motiongrid.bench.api import Method
from motiongrid.bench.video import Video
from motiongrid.bench.registry import methods

@methods.register("slow_reference")
class SlowReference(Method):
    def generate(self, clip, params, seed):
        time.sleep(0.3)
        return Video(clip.frames.clone(), clip.video.fps)
'''


def _rows(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_after_the_cell_in_progress(tmp_path, signum, code):
    # was: SIGINT ended in a KeyboardInterrupt traceback (exit 1), SIGTERM killed the process
    (tmp_path / "slowplugin.py").write_text(SLOW_PLUGIN)
    config = grid(tmp_path, GRID.replace('name = "static"', 'name = "slow_reference"').replace("limit = 2", "limit = 4"))
    out = tmp_path / "run"
    db = out / "results.sqlite"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c",
           "import sys, slowplugin; from motiongrid.bench.cli import main; sys.exit(main(sys.argv[1:]))",
           "run", str(config), "--out", str(out), "--quiet", "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while _rows(db) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"stopped by {signal.Signals(signum).name}" in err and "resume with: motiongrid run" in err
    assert "Traceback" not in err
    conn = sqlite3.connect(db)
    keys = {k for (k,) in conn.execute("SELECT key FROM cells")}
    assert 5 <= len(keys) < 8
    assert {p.stem for p in (out / "videos").iterdir()} == keys   # no orphan video, no .part
    assert json.loads((out / "run.json").read_text())["cells"]["total"] == 8
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(keys)} already finished" in again.stdout and _rows(db) == 8


# ---- compare -----------------------------------------------------------------------------------

MOTION_GRID = GRID.replace('metrics = ["psnr"]', 'metrics = ["psnr", "motion_fidelity"]').replace(
    "frames = 4", "frames = 8") + '[metric_options.motion_fidelity]\ntracker = "{tracker}"\n'


def test_compare_refuses_runs_measured_with_different_settings(tmp_path, capsys):
    # was: gt vs lk tracker reported "no regression" and marked the change an improvement
    gt, lk = tmp_path / "gt", tmp_path / "lk"
    run_ok(tmp_path, gt, MOTION_GRID.replace("{tracker}", "gt"))
    run_ok(tmp_path, lk, MOTION_GRID.replace("{tracker}", "lk"))
    capsys.readouterr()
    assert main(["compare", str(gt), str(lk)]) == 1
    out = capsys.readouterr().out
    assert "❌ not comparable" in out and "motion\\_fidelity** is **not comparable" in out
    assert "tracker 'gt' → 'lk'" in out
    assert not any("motion\\_fidelity" in line and "improved" in line for line in out.splitlines())
    assert main(["compare", str(gt), str(lk), "--ignore-settings", "--tolerance", "motion_fidelity=10"]) == 0
    # the same settings but a clip whose content differs: those cells are not comparable either
    conn = sqlite3.connect(lk / "results.sqlite")
    with conn:
        conn.execute("UPDATE cells SET clip_hash = 'changed' WHERE clip_id = (SELECT MIN(clip_id) FROM cells)")
    conn.close()
    run_ok(tmp_path, tmp_path / "lk2", MOTION_GRID.replace("{tracker}", "lk"))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "lk2"), str(lk)]) == 1
    assert "clip's content differs" in capsys.readouterr().out


# ---- weights -------------------------------------------------------------------------------------

def test_weights_list_tells_verified_unverified_and_wrong_apart(isolated, capsys, monkeypatch):
    # was: a 4 KB random file where the 233 MB AlexNet belongs showed "available"
    target = weights.get("lpips-alexnet").target()
    target.parent.mkdir(parents=True)
    target.write_bytes(np.random.default_rng(0).bytes(4096))
    check = weights.verify("lpips-alexnet")
    assert check.state == "wrong" and not check.ok
    payload_path = isolated / "good.pth"
    torch.save({"w": torch.zeros(2)}, payload_path)
    sha = hashlib.sha256(payload_path.read_bytes()).hexdigest()
    weights.register(weights.WeightFile(name="test-verified", description="t", url="file:///x",
                                        sha256=sha, target=lambda: payload_path))
    weights.register(weights.WeightFile(name="test-unverified", description="t", url="file:///x",
                                        target=lambda: payload_path))
    junk = isolated / "junk.safetensors"
    junk.write_bytes(b"\xff" * 4096)
    weights.register(weights.WeightFile(name="test-junk", description="t", url="file:///x", target=lambda: junk))
    assert weights.verify("test-verified").state == "verified"
    assert weights.verify("test-unverified").state == "unverified"
    assert weights.verify("test-junk").state == "wrong"
    assert weights.verify("cleanfid-inception").state == "missing"
    monkeypatch.setenv("COLUMNS", "400")   # one table row per line
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    assert rows["lpips-alexnet"] == "WRONG" and rows["test-verified"] == "verified"
    assert rows["test-unverified"] == "unverified" and rows["test-junk"] == "WRONG"
    assert "available" not in out
    assert "not a torch checkpoint" in out.replace("\n", "") or "does not match" in out.replace("\n", "")


def test_a_corrupt_toy_checkpoint_fails_its_cells_not_the_run(isolated, tmp_path, capsys):
    from motiongrid.methods.toy import toy_checkpoint_dir

    bad = tmp_path / "ckpt" / "toy.safetensors"
    bad.parent.mkdir()
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    (bad.parent / "toy.json").write_text((toy_checkpoint_dir() / "toy.json").read_text())
    weights.register(weights.WeightFile(name="toy", description="toy", url=bad.as_uri(), target=lambda: bad),
                     replace=True)
    assert weights.verify("toy").state == "wrong"
    text = GRID.replace('name = "static"', 'name = "unguided"\nparams = { model = "toy" }').replace(
        'options = { size = 24, frames = 4 }', 'options = { preset = "toy" }')
    out = tmp_path / "run"
    assert main(["run", str(grid(tmp_path, text)), "--out", str(out), "--quiet", "--device", "cpu"]) == 1
    rows = sqlite3.connect(out / "results.sqlite").execute("SELECT method, status, reason FROM cells").fetchall()
    assert sorted((m, s) for m, s, _ in rows) == [("reference", "ok")] * 2 + [("unguided", "failed")] * 2
    assert all("SafetensorError" in r for m, _, r in rows if m == "unguided")


# ---- clip sets -----------------------------------------------------------------------------------

def test_folder_finds_the_manifest_clips_make_writes(tmp_path, caplog):
    # was: `clips make` wrote manifest.yaml and `folder` looked for manifest.csv
    root = tmp_path / "clips"
    assert main(["clips", "make", "shapes", "--out", str(root), "-o", "count=2", "-o", "size=24",
                 "-o", "frames=4"]) == 0
    assert [c.id for c in FolderClipSet(root=str(root)).load()] == ["shapes-000-translate", "shapes-001-rotate"]
    (root / "manifest.csv").write_text("id,path,prompt\nshapes-000-translate,shapes-000-translate.mp4,x\n")
    with caplog.at_level("WARNING"):
        assert len(FolderClipSet(root=str(root)).load()) == 2
    assert "using manifest.yaml (also present: manifest.csv" in caplog.text
    assert len(FolderClipSet(root=str(root), manifest="manifest.csv").load()) == 1
    (root / "manifest.yaml").unlink()
    (root / "manifest.csv").unlink()
    with pytest.raises(ManifestError, match="no manifest"):
        FolderClipSet(root=str(root)).load()


def test_a_manifest_that_does_not_parse_names_the_file_and_line(tmp_path, capsys):
    # was: a raw yaml.parser.ParserError that did not name the file
    root = tmp_path / "clips"
    root.mkdir()
    (root / "manifest.yaml").write_text("clips:\n  - id: a\n    path: a.mp4\n   prompt: [unclosed\n")
    with pytest.raises(ManifestError, match=r"manifest.yaml:\d+: not valid YAML"):
        FolderClipSet(root=str(root)).load()
    text = GRID.replace('set = "shapes"', 'set = "folder"').replace(
        "options = { size = 24, frames = 4 }", f"options = {{ root = {json.dumps(str(root))} }}")
    assert main(["run", str(grid(tmp_path, text)), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    one_line_error(capsys, str(root / "manifest.yaml"), "not valid YAML")


def test_rgba_frames_composite_on_a_declared_background_or_are_refused(tmp_path):
    # was: the alpha channel was dropped silently
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., 2] = 200            # red where opaque
    bgra[:4, :, 3] = 255          # top half opaque, bottom half fully transparent
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), bgra)
    with pytest.raises(VideoError, match="transparent pixels.*alpha_background"):
        read_video(folder)
    frames = read_video(folder, alpha_background=(255, 255, 255)).frames
    assert torch.allclose(frames[0, :, 0, 0], torch.tensor([200 / 255, 0, 0]))
    assert torch.equal(frames[0, :, 7, 0], torch.ones(3))
    # an opaque alpha channel is no transparency: read as is
    bgra[..., 3] = 255
    cv2.imwrite(str(folder / "000.png"), bgra)
    for i in (1, 2):
        (folder / f"{i:03d}.png").unlink()
    assert read_video(folder).frames.shape == (1, 3, 8, 8)


def test_a_corrupt_clip_video_fails_its_cells_and_the_run_goes_on(tmp_path):
    # the behaviour the README described wrongly ("stops the run with one error")
    root = tmp_path / "clips"
    assert main(["clips", "make", "shapes", "--out", str(root), "-o", "count=2", "-o", "size=24",
                 "-o", "frames=4"]) == 0
    (root / "shapes-001-rotate.mp4").write_bytes(b"not an mp4 at all" * 10)
    text = GRID.replace('set = "shapes"', 'set = "folder"').replace(
        "options = { size = 24, frames = 4 }", f"options = {{ root = {json.dumps(str(root))} }}")
    out = tmp_path / "run"
    assert main(["run", str(grid(tmp_path, text)), "--out", str(out), "--quiet", "--device", "cpu"]) == 1
    rows = sqlite3.connect(out / "results.sqlite").execute("SELECT clip_id, status, reason FROM cells").fetchall()
    assert sorted((c, s) for c, s, _ in rows) == [("shapes-000-translate", "ok")] * 2 + [("shapes-001-rotate", "failed")] * 2
    assert all("shapes-001-rotate.mp4" in r for c, s, r in rows if s == "failed")
