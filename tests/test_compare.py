"""`motiongrid compare`: direction-aware deltas and the CI gate, on synthetic runs."""
from __future__ import annotations

import pytest
from synthetic_run import make_run

from motiongrid.bench.cli import main
from motiongrid.reports.compare import Tolerance, compare_runs, parse_tolerances
from motiongrid.reports.data import load_run

LB = "motionclone(k=2,guidance_weight=1000)"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("base") / "run", videos=False)


def scaled(metric: str, factor: float, label: str = LB):
    def tweak(lb, clip, seed, metrics):
        if lb == label and metrics.get(metric) is not None:
            metrics[metric] *= factor
    return tweak


def compare(base, new, *extra, capsys):
    code = main(["compare", str(base), str(new), *extra])
    return code, capsys.readouterr().out


def test_run_against_itself_passes(base, tmp_path, capsys):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    code, out = compare(base, base, "--markdown", str(summary), capsys=capsys)
    assert code == 0 and "✅ no regression" in out
    assert "⚪ within" in out and "🔴" not in out
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "✅ no regression" in text  # appended


def test_worse_metric_fails_and_is_named(base, tmp_path, capsys):
    new = make_run(tmp_path / "new", videos=False, tweak=scaled("motion_fidelity.symmetric", 0.9))
    code, out = compare(base, new, capsys=capsys)
    assert code == 1 and "❌ regression" in out
    what_fails = out.split("### What fails")[1].split("###")[0]
    assert "motion\\_fidelity.symmetric" in what_fails and "k=2,guidance\\_weight=1000" in what_fails
    assert "psnr" not in what_fails
    # a looser tolerance for that metric (by its dict name) lets it pass
    assert compare(base, new, "--tolerance", "motion_fidelity=0.1", capsys=capsys)[0] == 0
    assert compare(base, new, "--tolerance", "motion_fidelity.symmetric=15%", capsys=capsys)[0] == 0


def test_change_within_default_tolerance_passes(base, tmp_path, capsys):
    new = make_run(tmp_path / "new", videos=False, tweak=scaled("motion_fidelity.symmetric", 0.995))
    assert compare(base, new, capsys=capsys)[0] == 0
    assert compare(base, new, "--tolerance", "default=0.1%", capsys=capsys)[0] == 1


def test_direction_aware(base, tmp_path, capsys):
    # fid is lower-is-better: a rise regresses, a drop improves
    worse = make_run(tmp_path / "worse", videos=False, tweak=scaled("fid", 1.2))
    code, out = compare(base, worse, capsys=capsys)
    assert code == 1 and "fid" in out.split("### What fails")[1].split("###")[0]
    better = make_run(tmp_path / "better", videos=False, tweak=scaled("fid", 0.8))
    code, out = compare(base, better, capsys=capsys)
    assert code == 0 and "🟢 improved" in out
    # psnr is higher-is-better: a rise improves
    assert compare(base, make_run(tmp_path / "psnr", videos=False, tweak=scaled("psnr", 1.2)), capsys=capsys)[0] == 0


def test_failed_now_cell_fails(base, tmp_path, capsys):
    new = make_run(tmp_path / "new", videos=False, fail={(LB, "circle_down", 1)})
    code, out = compare(base, new, capsys=capsys)
    assert code == 1
    assert "circle\\_down / seed 1 passed in base and **fails** now: CUDA out of memory" in out
    # the other way round a failure fixed is good news, not a regression
    assert compare(new, base, capsys=capsys)[0] == 0


def test_missing_cells_and_values(base, tmp_path, capsys):
    subset = make_run(tmp_path / "subset", videos=False, skip={(LB, "square_right", 0)})
    code, out = compare(base, subset, capsys=capsys)
    assert code == 1 and "is **missing** from new" in out
    assert compare(base, subset, "--allow-missing", capsys=capsys)[0] == 0
    lost = make_run(tmp_path / "lost", videos=False, unavailable={"clip_text": "unavailable: no weights"})
    code, out = compare(base, lost, capsys=capsys)
    assert code == 1 and "had a value in base and has **none** now: unavailable: no weights" in out


def test_timing_and_diagnostics_do_not_gate_by_default(base, tmp_path, capsys):
    def slow(lb, clip, seed, metrics):
        metrics["fid.unstable"] = 0.0  # a diagnostic, not a score
        metrics["motion_fidelity.n_generated"] = 3.0

    new = make_run(tmp_path / "new", videos=False, tweak=slow)
    data = load_run(new)
    for r in data.rows:  # 3x slower everywhere, 2x memory
        r["timings"] = {k: 3 * v for k, v in r["timings"].items()}
        if r["peak_memory_mb"]:
            r["peak_memory_mb"] *= 2
    comp = compare_runs(load_run(base), data, parse_tolerances([]))
    assert not comp.failing and {d.status for d in comp.deltas if d.metric.startswith("time.")} == {"not gated"}
    assert not any(d.metric in ("fid.unstable", "motion_fidelity.n_generated") for d in comp.deltas)
    gated = compare_runs(load_run(base), data, parse_tolerances(["time.total=50%"]))
    assert gated.failing and {d.metric for d in gated.regressions} == {"time.total"}


def test_infinite_psnr(base, tmp_path, capsys):
    # reference's PSNR is inf (identical frames); a finite value is a regression whatever the
    # tolerance, and inf -> inf is no change
    def finite(lb, clip, seed, metrics):
        if lb == "reference":
            metrics["psnr"] = 60.0
    new = make_run(tmp_path / "new2", videos=False, tweak=finite)
    code, out = compare(base, new, capsys=capsys)
    assert code == 1 and "**psnr** ↑ for reference: ∞ → 60" in out
    assert compare(base, new, "--tolerance", "psnr=100", capsys=capsys)[0] == 1


def test_bad_input(base, tmp_path, capsys):
    assert main(["compare", str(base), str(tmp_path / "nope")]) == 2
    assert "nope: run directory not found" in capsys.readouterr().err
    assert main(["compare", str(base), str(base), "--tolerance", "psnr"]) == 2
    assert "expected METRIC=VALUE" in capsys.readouterr().err
    assert main(["compare", str(base), str(base), "--tolerance", "psnr=lots"]) == 2
    assert "'lots' is not a number" in capsys.readouterr().err
    assert main(["compare", str(base), str(base), "--tolerance", "psrn=1"]) == 2
    assert "names metrics in neither run: psrn" in capsys.readouterr().err


def test_tolerance_parse():
    assert Tolerance.parse("2%", "x").allowed(50.0) == pytest.approx(1.0)
    assert Tolerance.parse("0.5", "x").allowed(50.0) == 0.5
    assert Tolerance.parse("1%", "x").allowed(0.0) > 0  # floor: base 0 does not mean zero tolerance
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        Tolerance.parse("-1", "x")
