"""A run killed with SIGKILL at arbitrary moments resumes with every cell stored exactly once."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PLUGIN = '''
import time
from motiongrid.bench.api import Method
from motiongrid.bench.video import Video
from motiongrid.bench.registry import methods

@methods.register("slow_reference")
class SlowReference(Method):
    """The reference clip, slowly: gives the test time to kill mid-cell."""
    def generate(self, clip, params, seed):
        time.sleep(0.15)
        return Video(clip.frames.clone(), clip.video.fps)
'''

CONFIG = '''
name = "resume"
seeds = [0, 1]
metrics = ["psnr", "ssim"]
[clips]
set = "shapes"
limit = 4
options = { size = 32, frames = 8 }
[[methods]]
name = "reference"
[[methods]]
name = "static"
[[methods]]
name = "slow_reference"
'''


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # table not created yet
        return 0


def test_sigkill_and_resume(tmp_path):
    (tmp_path / "slowplugin.py").write_text(PLUGIN)
    (tmp_path / "grid.toml").write_text(textwrap.dedent(CONFIG))
    out = tmp_path / "run"
    db = out / "results.sqlite"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c",
           "import sys, slowplugin; from motiongrid.bench.cli import main; sys.exit(main(sys.argv[1:]))",
           "run", str(tmp_path / "grid.toml"), "--out", str(out), "--quiet"]
    total = 3 * 4 * 2
    kills = 0
    for target in (3, 10, 17):  # kill after at least this many stored cells
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while proc.poll() is None and _count(db) < target and time.time() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert _count(db) < total or proc.returncode == 0
    assert kills >= 2, "the run finished before it could be killed; the test needs slower cells"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT label, clip_id, seed, status FROM cells").fetchall()
    assert len(rows) == total
    assert len({r[:3] for r in rows}) == total          # every cell exactly once
    assert all(r[3] == "ok" for r in rows)
    # every stored cell's artifact exists and is complete (no .part left behind under a final name)
    for (artifact,) in conn.execute("SELECT artifact FROM cells"):
        assert (out / artifact).stat().st_size > 0
    # resuming a finished run does nothing
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"{total} already finished" in again.stdout
