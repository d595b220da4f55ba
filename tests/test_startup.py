"""Fast to start: the CLI and the registries answer without importing torch (issue 14).

Each check runs in a fresh interpreter, because this test process has long imported torch."""
from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import textwrap

import pytest

from motiongrid.bench import registry

HEAVY = ("torch", "pandas", "matplotlib", "diffusers", "scipy", "torchmetrics")


def _fresh(code: str, *args: str, env: dict | None = None) -> dict:
    """Run ``code`` in a new interpreter; it may print; returns {"out": ..., "heavy": [...]}."""
    wrapper = textwrap.dedent(code) + textwrap.dedent(f"""
        import json as _json, sys as _sys
        print("\\n@@" + _json.dumps([m for m in {HEAVY!r} if m in _sys.modules]))
    """)
    proc = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    out, _, heavy = proc.stdout.rpartition("\n@@")
    return {"out": out, "heavy": json.loads(heavy)}


def test_importing_the_cli_does_not_import_torch():
    result = _fresh("import motiongrid.bench.cli as cli; cli.build_parser()")
    assert result["heavy"] == []


@pytest.mark.parametrize("argv, expect", [
    (["--help"], "COMMAND"),
    (["methods"], "motionclone"),
    (["metrics"], "motion_fidelity"),
    (["clips", "list"], "shapes"),
    (["weights", "list"], "realistic-vis"),       # registered by the methods package, torch-free
    (["run", "--no-such-option"], "unrecognized arguments"),
    (["score"], "required"),
    (["compare", "only-one-run"], "required"),
])
def test_listing_commands_and_argument_errors_import_no_heavy_library(argv, expect):
    result = _fresh("""
        import contextlib, io, sys
        from motiongrid.bench.cli import main
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                main(sys.argv[1:])
            except SystemExit:
                pass
        print(buf.getvalue())
    """, *argv)
    assert expect in result["out"]
    assert result["heavy"] == []


def test_methods_listing_shows_declared_parameters():
    result = _fresh("""
        from motiongrid.bench.cli import main
        main(["methods"])
    """)
    assert "guidance_weight=None" in result["out"].replace("\n", "").replace("│", "").replace(" ", "")


@pytest.mark.parametrize("kind", sorted(registry.INFO_FIELDS))
def test_declarations_match_the_classes(kind):
    """What listings show from a declaration is what the imported class says; and every
    class a built-in module registers is declared (else listings would miss it)."""
    reg = getattr(registry, kind)
    declared = {name: reg.info(name) for name in reg.names() if name in reg._declared}
    package = importlib.import_module(registry._BUILTIN_PACKAGES[kind])
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)
    builtin = {name for name, cls in reg._items.items() if cls.__module__.startswith(package.__name__)}
    assert builtin <= set(declared), f"registered but not declared in {package.__name__}: {builtin - set(declared)}"
    for name, info in declared.items():
        cls = reg.get(name)
        assert reg._declared[name].target == f"{cls.__module__}:{cls.__qualname__}"
        assert info == {f: getattr(cls, f) for f in registry.INFO_FIELDS[kind]}, name


def test_a_declared_plugin_is_listed_without_import_and_loaded_on_get(tmp_path, monkeypatch):
    (tmp_path / "lazyplugin.py").write_text(textwrap.dedent("""
        from motiongrid.bench import Method, methods

        @methods.register("lazy_copy")
        class LazyCopy(Method):
            task = "baseline"
            description = "a copy"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = registry.Registry("methods")
    reg.declare("lazy_copy", "lazyplugin:LazyCopy", task="baseline", description="a copy",
                Params="motiongrid.bench.params:NoParams")
    assert "lazy_copy" in reg.names() and reg.info("lazy_copy")["description"] == "a copy"
    assert "lazyplugin" not in sys.modules
    try:
        registry.methods.declare("lazy_copy", "lazyplugin:LazyCopy", task="baseline", description="a copy",
                                 Params="motiongrid.bench.params:NoParams")
        cls = registry.methods.get("lazy_copy")
        assert cls.__name__ == "LazyCopy" and cls.name == "lazy_copy" and "lazyplugin" in sys.modules
    finally:
        registry.methods.unregister("lazy_copy")
        sys.modules.pop("lazyplugin", None)
    with pytest.raises(TypeError, match="expected task, description, Params"):
        reg.declare("incomplete", "x:Y", description="no task")


def test_torch_hub_dir_without_torch_matches_torch(tmp_path):
    """weights.torch_hub_dir() answers without importing torch, and says what torch says."""
    import os

    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}, {}):
        base = {k: v for k, v in os.environ.items() if k not in ("TORCH_HOME", "XDG_CACHE_HOME")}
        result = _fresh("""
            from motiongrid.bench import weights
            ours = str(weights.torch_hub_dir())
            import sys
            print("torch" in sys.modules)
            import torch.hub
            print(ours == torch.hub.get_dir(), ours)
        """, env={**base, **env})
        assert result["out"].split()[:2] == ["False", "True"], (env, result["out"])
