"""Cells per second for the toy default grid: the local executor (1 torch thread) against Ray with
2 workers of 1 thread each, side by side in one run, and the Ray driver's own cost per cell.

Both runs start from an empty run directory and an empty feature cache, so both compute every
motion representation and reference track. The Ray instance is started before the clock starts
(a cluster exists before a run is submitted to it); the Ray run's time includes starting its
worker processes and loading the model in each. "Driver overhead" is what the driver process
itself spends per cell: its CPU time over the run (Ray's own driver threads included), and the
wall time in motiongrid's driver code (handing out a cell, receiving its result, writing video
and row).

Run: `OMP_NUM_THREADS=1 python benchmarks/bench_ray.py [--limit N]` (needs `pip install -e '.[ray]'`).
Against a cluster of your own (docs/scaling.md): `... bench_ray.py --address HEAD_IP:6379`; the Ray
run then uses every worker slot the cluster has (or --workers), and the local run this machine.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def timed_run(executor: str, out: Path, limit: int | None, workers: int | None, address: str | None = None) -> dict:
    from motiongrid.bench.config import load_config
    from motiongrid.bench.runner import Runner

    os.environ["MOTIONGRID_CACHE"] = str(out.parent / f"cache-{executor}")   # cold cache for each
    config, source = load_config(None)
    runner = Runner(config, source, out, limit=limit, device="cpu", progress=False, executor=executor,
                    workers=workers, ray_address=address)
    busy = {"s": 0.0}
    if executor == "ray":   # the driver's own code per cell: hand out, receive, write video then row
        for owner, name in ((Runner, "_commit"), (type(runner.executor), "_result")):
            original = getattr(owner, name)

            def wrapped(*args, _original=original, **kwargs):
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    busy["s"] += time.perf_counter() - start
            setattr(owner, name, wrapped)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    summary = runner.run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert summary.failed == 0 and summary.ok == summary.total, summary
    workers = len(runner.executor.worker_info) if executor == "ray" else 1
    return {"cells": summary.ok, "wall": wall, "cpu": cpu, "busy": busy["s"], "workers": workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N clips of the default grid (default: all 4)")
    parser.add_argument("--workers", type=int, help="Ray workers (default: 2 on a local instance, all the cluster fits "
                        "with --address)")
    parser.add_argument("--address", help="HOST:PORT of a running Ray cluster (default: start one here)")
    parser.add_argument("--keep", help="write the two run directories under this folder (default: a temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray
    import torch

    torch.set_num_threads(1)
    if not args.address:   # a local instance, started before the clock (a cluster exists before a run)
        args.workers = args.workers or 2
        ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
            root = Path(args.keep or tmp)
            local = timed_run("local", root / "local", args.limit, None)
            on_ray = timed_run("ray", root / "ray", args.limit, args.workers, args.address)
    finally:
        ray.shutdown()
    n = local["cells"]
    print(f"toy default grid, {n} cells, {os.cpu_count()} CPUs; torch 1 thread per process")
    print("| executor | wall s | cells/s | × local | driver CPU ms/cell | driver code ms/cell |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| local (1 thread) | {local['wall']:.1f} | {n / local['wall']:.3f} | 1.00 | | |")
    where = f"at {args.address}" if args.address else "local instance"
    print(f"| ray {where} ({on_ray['workers']} workers × 1 thread) | {on_ray['wall']:.1f} | {n / on_ray['wall']:.3f} | "
          f"{local['wall'] / on_ray['wall']:.2f} | {1000 * on_ray['cpu'] / n:.1f} | {1000 * on_ray['busy'] / n:.1f} |")


if __name__ == "__main__":
    main()
