"""The house rules, checked: import path = folder path, argparse only in the CLI, dependencies
point down, and a regular (wheel) install imports the same modules from the same places."""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("bench", "methods", "metrics", "datasets", "reports")


def _modules() -> dict[str, Path]:
    """module name -> file, from the folder layout alone."""
    out = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(("motiongrid",) + parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("motiongrid")}


def test_every_module_is_found_at_its_folder_path():
    modules = _modules()
    assert len(modules) > 40
    for name, path in modules.items():
        spec = importlib.util.find_spec(name)
        assert spec is not None and Path(spec.origin).resolve() == path.resolve(), name


def test_argparse_lives_only_in_the_cli():
    offenders = [str(p.relative_to(ROOT)) for p in _modules().values()
                 if "argparse" in p.read_text() and "cli" not in p.relative_to(ROOT).parts]
    assert offenders == []


def test_dependencies_point_down():
    def starts(names, *prefixes):
        return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))

    for name, path in _modules().items():
        imported = _imports(path)
        where = str(path.relative_to(ROOT))
        if name.startswith("motiongrid.bench") and ".cli" not in name:
            # the core knows plugins only by name (registries, backbone ids), never by import
            assert not starts(imported, "motiongrid.methods", "motiongrid.metrics", "motiongrid.datasets",
                              "motiongrid.reports"), where
        if name.startswith(("motiongrid.methods", "motiongrid.metrics", "motiongrid.datasets")):
            assert not starts(imported, "motiongrid.bench.runner", "motiongrid.bench.cli",
                              "motiongrid.bench.score_files", "motiongrid.reports"), where
        if name.startswith("motiongrid.metrics"):
            assert not starts(imported, "motiongrid.methods"), where
        if name.startswith("motiongrid.methods"):
            assert not starts(imported, "motiongrid.metrics"), where
        if name.startswith("motiongrid.reports"):
            # reports read the store and run.json (and decode videos for previews), nothing else
            allowed = ("motiongrid.reports", "motiongrid.bench.store", "motiongrid.bench.video", "motiongrid.bench.errors")
            assert [n for n in imported if not starts([n], *allowed)] == [], where


def test_plugin_api_is_importable_from_bench():
    from motiongrid import bench

    for name in ("Method", "Metric", "ClipSet", "Params", "Video", "Clip", "methods", "metrics", "datasets"):
        assert getattr(bench, name) is not None
    assert bench.Video.__module__ == "motiongrid.bench.video"
    assert bench.methods.kind == "methods"


@pytest.mark.slow
def test_wheel_installs_the_same_layout(tmp_path):
    """A regular install (the wheel, into a clean --target folder) imports every subpackage from
    there and carries the package data (default config, toy checkpoint, report templates)."""
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                    str(ROOT)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("motiongrid-*.whl")
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True,
                   capture_output=True)
    assert not (target / "motiongrid" / "__init__.py").exists()          # a namespace
    check = f"""
import sys
sys.path[:0] = [{str(target)!r}]
sys.path.append({sysconfig.get_paths()["purelib"]!r})   # torch & co., without the editable hook
import importlib, pathlib
for name in ("motiongrid.bench", "motiongrid.bench.cli", "motiongrid.methods.motionclone",
             "motiongrid.methods.toy", "motiongrid.metrics.fidelity", "motiongrid.datasets.shapes",
             "motiongrid.reports.report"):
    module = importlib.import_module(name)
    assert module.__file__.startswith({str(target)!r}), (name, module.__file__)
from motiongrid.bench import Method, Video, methods
from motiongrid.bench.config import load_config
from motiongrid.methods.toy import toy_checkpoint_file
load_config(None)
assert toy_checkpoint_file().is_file() and str(toy_checkpoint_file()).startswith({str(target)!r})
assert "motionclone" in methods.names()
from importlib import resources
assert resources.files("motiongrid.reports").joinpath("templates/report.html.j2").is_file()
print("ok")
"""
    out = subprocess.run([sys.executable, "-S", "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
