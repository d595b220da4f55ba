"""Fast to start, fast to resume (issue 14), measured side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_startup.py [--repeats 5] [--config CONFIG]

Every figure is the wall time of a fresh ``motiongrid`` process (as a user types it), median of
``--repeats``: ``--help``, ``methods``, ``metrics``, ``weights list`` and an argument error
(goal ≤ 1 s each); then the grid (default: the embedded default grid) run once in full into a
temporary folder, and re-run there when finished (goal: ≤ 5 % of the full run, ≤ 2 s for the
default grid). One re-run starts with an empty cache folder (weight digests and resolved
sampler settings recomputed, as on a new machine) and is reported apart; the median is over
the re-runs after it. The cache folder is temporary too.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

MOTIONGRID = shutil.which("motiongrid") or "motiongrid"
QUICK = [["--help"], ["methods"], ["metrics"], ["weights", "list"], ["run", "--no-such-option"]]


def wall(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([MOTIONGRID, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--config", help="grid config (default: the embedded default grid)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MOTIONGRID_CACHE": str(Path(tmp) / "cache")}
        print(f"{'command':<40} {'median s':>9}  (fresh process, {args.repeats} repeats)")
        for argv in QUICK:
            t = statistics.median(wall(argv, env) for _ in range(args.repeats))
            print(f"motiongrid {' '.join(argv):<29} {t:9.2f}  {'ok' if t <= 1 else 'OVER 1 s'}")

        run = ["run", *([args.config] if args.config else []), "--out", str(Path(tmp) / "run"), "--quiet"]
        full = wall(run, env)
        shutil.rmtree(Path(tmp) / "cache")
        first = wall(run, env)
        again = statistics.median(wall(run, env) for _ in range(args.repeats))
        print(f"\n{'full run':<40} {full:9.2f}")
        print(f"{'re-run, empty cache folder':<40} {first:9.2f}  {100 * first / full:5.1f} % of the full run")
        print(f"{'re-run of the finished grid (median)':<40} {again:9.2f}  {100 * again / full:5.1f} % of the full run "
              f"({'ok' if again <= 0.05 * full else 'OVER 5 %'})")


if __name__ == "__main__":
    main()
