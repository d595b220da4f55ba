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


def _is_cli(path: Path) -> bool:
    return "cli" in path.relative_to(ROOT).parts or path.stem == "cli"


def test_argparse_lives_only_in_the_cli():
    offenders = [str(p.relative_to(ROOT)) for p in _modules().values() if "argparse" in p.read_text() and not _is_cli(p)]
    assert offenders == []


def _starts(names, *prefixes) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


# The rules README.md and docs/architecture.md state, as (who, may import only) pairs.
CORE = "motiongrid.bench"   # includes motiongrid.bench.toyworld, the toy world datasets and toy trainers share
RULES = {
    # the core knows plugins only by name (registries), never by import -- the CLI included
    "motiongrid.bench": (CORE,),
    # methods, metrics and datasets use only the core (bench.toyworld included, explicitly); a method
    # family may use another method family's modules (e.g. MotionFollower's toy on the toy model)
    "motiongrid.methods": (CORE, "motiongrid.methods"),
    "motiongrid.metrics": (CORE, "motiongrid.metrics"),
    "motiongrid.datasets": (CORE, "motiongrid.datasets"),
    # reports read the store and run.json (and decode videos for previews), nothing else
    "motiongrid.reports": ("motiongrid.reports", "motiongrid.bench.store", "motiongrid.bench.video",
                           "motiongrid.bench.errors", "motiongrid.bench.registry", "motiongrid.bench.cli.common"),
}
# What plugins must not use even inside the core: the runner and CLI sit above them.
ABOVE_PLUGINS = ("motiongrid.bench.runner", "motiongrid.bench.cell", "motiongrid.bench.executors",
                 "motiongrid.bench.ray_executor", "motiongrid.bench.score_files")


def _resolve(imported: set[str], modules: dict[str, Path]) -> set[str]:
    """Imported names -> the project modules they are (``from pkg import name`` may name a module)."""
    out = set()
    for name in imported:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            out.add(name)
    return out


def test_every_layout_rule():
    modules = _modules()
    broken = []
    for name, path in modules.items():
        imported = _resolve(_imports(path), modules)
        layer = next(p for p in RULES if name == p or name.startswith(p + "."))
        bad = [n for n in imported if not _starts([n], *RULES[layer])]
        if layer != "motiongrid.bench":
            bad += _starts(imported, *ABOVE_PLUGINS)
            # a plugin's own command group speaks the CLI's exit codes and argument types, nothing more
            bad += [n for n in _starts(imported, "motiongrid.bench.cli")
                    if not (_is_cli(path) and n == "motiongrid.bench.cli.common")]
        if layer == "motiongrid.methods":
            bad += _starts(imported, "motiongrid.metrics", "motiongrid.datasets")
        broken += [f"{path.relative_to(ROOT)} imports {n}" for n in sorted(set(bad))]
    assert broken == []


def test_methods_may_not_import_a_private_name_of_another_package():
    """The rule that made the toy world public: no ``from other.module import _private``."""
    broken = []
    for name, path in _modules().items():
        top = name.split(".")[1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("motiongrid."):
                if node.module.split(".")[1] != top:
                    broken += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                               if a.name.startswith("_") and not a.name.startswith("__")]
    assert broken == []


def _import_graph() -> dict[str, set[str]]:
    """Every module -> the project modules it imports (at any level: a cycle through a lazy
    import is still a loop in the drawing). A package's __init__ is its own node."""
    modules = _modules()
    return {name: _resolve(_imports(path), modules) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys as _sys
    _sys.setrecursionlimit(max(_sys.getrecursionlimit(), 10000))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def _packages_of(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The drawing at package level: a module's parent package is where it sits (a package's
    own __init__ is the package). A package importing its own submodules is not an arrow."""
    def package(name):
        return name if (ROOT / Path(*name.split(".")[1:]) / "__init__.py").exists() else name.rpartition(".")[0]
    out: dict[str, set[str]] = {}
    for name, deps in graph.items():
        here = package(name)
        targets = out.setdefault(here, set())
        for d in deps:
            there = package(d)
            if there != here and not there.startswith(here + "."):
                targets.add(there)
    return out


def test_no_import_cycle_between_modules():
    assert _cycles(_import_graph()) == []


def test_no_import_cycle_between_packages():
    assert _cycles(_packages_of(_import_graph())) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


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
