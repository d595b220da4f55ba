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


@pytest.mark.parametrize("kind", registry._CLASS_KINDS)
def test_every_builtin_class_is_declared_and_carries_its_declared_facts(kind):
    """Every class a built-in module registers is declared (else listings would miss it), and
    the registry set its facts from the declaration (the one place they are written): a class
    imported directly, without the registry, already says what listings say."""
    reg = getattr(registry, kind)
    for name in registry._BUILTIN_PACKAGES[kind]:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not info.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(info.name)
    packages = registry._BUILTIN_PACKAGES[kind]
    builtin = {name for name, cls in reg._items.items() if cls.__module__.startswith(packages)}
    assert builtin <= set(reg._declared), f"registered but not declared: {builtin - set(reg._declared)}"
    for name in builtin:
        cls = reg._items[name]
        for field, value in reg._declared[name].info.items():
            expect = registry._import_object(value) if field in registry.TYPED and isinstance(value, str) else value
            assert getattr(cls, field) == expect, (name, field)


def test_directly_imported_classes_read_their_declaration():
    from motiongrid.metrics.fidelity import L1, PSNR

    assert (L1.higher_is_better, PSNR.higher_is_better) == (False, True)   # the base class says True
    assert L1.description.startswith("mean absolute pixel difference")


def test_a_fact_written_in_the_class_and_the_declaration_is_refused():
    from motiongrid.bench import Metric

    reg = registry.Registry("metrics")
    reg.declare("twice", f"{__name__}:Twice", higher_is_better=False, needs=frozenset(), description="d")

    class Twice(Metric):
        higher_is_better = False

    Twice.__module__, Twice.__qualname__ = __name__, "Twice"
    with pytest.raises(ValueError, match="writes higher_is_better.*write them once"):
        reg.register("twice")(Twice)


def test_unknown_names_suggest_the_closest():
    with pytest.raises(registry.UnknownName, match=r"unknown metric 'pnsr' \(did you mean 'psnr'\?\); available: "):
        registry.metrics.get("pnsr")


def test_a_declared_plugin_is_listed_without_import_and_loaded_on_get(tmp_path, monkeypatch):
    (tmp_path / "lazyplugin.py").write_text(textwrap.dedent("""
        from motiongrid.bench import Method, methods

        @methods.register("lazy_copy")
        class LazyCopy(Method):   # its facts are in the declaration
            pass
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


def test_plugin_command_groups_come_from_their_declarations():
    """report/compare/export (reports) and toy with the toy MotionFollower's subcommands
    (methods/toy + methods/motionfollower) reach the parser through registry.commands."""
    from motiongrid.bench.cli import build_parser

    top = build_parser()._subparsers._group_actions[0].choices
    assert {"report", "compare", "export", "toy"} <= set(top)
    toy = top["toy"]._subparsers._group_actions[0].choices
    assert set(toy) == {"train", "export", "sample", "train-edit", "check-edit", "sample-edit"}
    assert registry.commands.info("toy-edit")["parent"] == "toy"
