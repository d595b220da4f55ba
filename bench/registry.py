"""The one registry mechanism: name -> object for methods, metrics, clip sets, backbone
families, weight files and CLI command groups.

Objects register themselves with a decorator when their module is imported. So that listing
them (``motiongrid methods``) imports no torch, a name can also be *declared* ahead of import:
``methods.declare(name, "module:Class", description=..., ...)`` records where the object lives
and its facts (``INFO_FIELDS``); the module is imported only when ``get(name)`` needs it.
A declaration is the one place those facts are written: registering a declared class sets them
on it, and a class that also writes one of them itself is refused.
Built-ins are declared in their package's ``__init__.py`` (``motiongrid.methods`` ...); third-party
packages add theirs through the entry-point group ``motiongrid.<kind>`` (the entry point names a
module or object; loading it is enough: its ``declare`` calls or decorators do the rest).
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from motiongrid.bench.errors import UserError

T = TypeVar("T")

# Packages whose __init__ declares the built-ins of each registry (the core names them, never
# imports them at module level). Every module in them is imported only as a fallback, when a
# name is neither declared nor registered.
_BUILTIN_PACKAGES = {
    "methods": ("motiongrid.methods",),
    "metrics": ("motiongrid.metrics",),
    "datasets": ("motiongrid.datasets",),
    "backbones": ("motiongrid.methods",),
    # modules that register weight files (torch-free); listing weights imports them, --help does not
    "weights": ("motiongrid.methods.animatediff_weights", "motiongrid.methods.motionfollower.weights",
                "motiongrid.methods.toy.weights", "motiongrid.metrics"),
    "commands": ("motiongrid.methods", "motiongrid.reports"),
}

# The facts of each kind, written once in the declaration (listings read them without import).
# A method's "Params" and a metric's "Options" may be declared as "module:Class" (a module
# that does not import torch). A backbone's "task": which methods may drive it ("t2v-motion" or "edit"). A command group's
# "parent": None for a top-level command, else the group whose subcommands it adds.
INFO_FIELDS = {
    "methods": ("task", "description", "Params"),
    "metrics": ("higher_is_better", "needs", "description", "Options"),
    "datasets": ("description",),
    "backbones": ("task", "description"),
    "weights": (),
    "commands": ("help", "parent"),
}
# Fields a declaration may leave out (the class then states them); ``info`` imports it to read them.
OPTIONAL_INFO = {"metrics": ("Options",)}
TYPED = ("Params", "Options")   # declared as "module:Class" strings
# Kinds whose entries are classes that carry their facts as class attributes.
_CLASS_KINDS = ("methods", "metrics", "datasets", "backbones")
_SINGULAR = {"methods": "method", "metrics": "metric", "datasets": "clip set", "backbones": "model",
             "weights": "weight", "commands": "command"}


class UnknownName(UserError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


def unknown_message(what: str, name: str, known: list[str]) -> str:
    """``unknown WHAT 'NAME' (did you mean ...?); available: ...``: the one wording of a bad name."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {name!r}{hint}; available: {', '.join(known) or 'none'}"


@dataclass(frozen=True)
class Declared:
    """A name whose class is not imported yet: where it lives and what listings show."""
    target: str              # "package.module:Class"
    info: dict[str, Any]


def _import_object(target: str):
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, type[T]] = {}
        self._declared: dict[str, Declared] = {}
        self._builtins_declared = False
        self._plugins_loaded = False
        self._all_imported = False

    def register(self, name: str):
        """Decorator (or ``register(name)(obj)``): make ``obj`` the entry ``name``. A declared
        class gets its declared facts set here; writing them in the class too is refused."""
        def decorator(cls: type[T]) -> type[T]:
            if self._items.get(name) is cls:
                return cls
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice "
                                 f"({_where(self._items[name])} and {_where(cls)})")
            declared = self._declared.get(name)
            if declared is not None and declared.target != _where(cls):
                raise ValueError(f"{self.kind} {name!r} is declared as {declared.target} but registered by {_where(cls)}")
            if self.kind in _CLASS_KINDS:
                if declared is not None:
                    self._set_facts(name, cls)
                cls.name = name
            self._items[name] = cls
            return cls
        return decorator

    def declare(self, name: str, target: str, **info: Any) -> None:
        """Make ``name`` known without importing ``target`` ("module:Class"); ``info`` holds
        exactly the attributes listings show (``INFO_FIELDS[kind]``)."""
        fields = INFO_FIELDS[self.kind]
        if not set(fields) - set(OPTIONAL_INFO.get(self.kind, ())) <= set(info) <= set(fields):
            raise TypeError(f"declare {self.kind} {name!r}: expected {', '.join(fields)}; got {', '.join(sorted(info))}")
        old = self._declared.get(name)
        if old is not None and old.target != target:
            raise ValueError(f"{self.kind} {name!r} is declared twice ({old.target} and {target})")
        self._declared[name] = Declared(target, info)
        if name in self._items and self.kind in _CLASS_KINDS and old is None:   # registered before declared
            self._set_facts(name, self._items[name])

    def _set_facts(self, name: str, cls) -> None:
        """Put the declaration's facts on the class; a class that writes one itself is refused."""
        declared = self._declared[name]
        twice = [f for f in declared.info if f in vars(cls)]
        if twice:
            raise ValueError(f"{_where(cls)} writes {', '.join(twice)}, which its declaration "
                             f"({self.kind} {name!r}) already states; write them once, in the declaration")
        for field, value in declared.info.items():
            setattr(cls, field, _import_object(value) if field in TYPED and isinstance(value, str) else value)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests use it to clean up what they registered)."""
        self._items.pop(name, None)
        self._declared.pop(name, None)

    # -- discovery, cheapest first ---------------------------------------------------------
    def _declare_builtins(self) -> None:
        if not self._builtins_declared:
            self._builtins_declared = True
            for package in _BUILTIN_PACKAGES[self.kind]:
                importlib.import_module(package)

    def _load_plugins(self) -> None:
        self._declare_builtins()
        if not self._plugins_loaded:
            self._plugins_loaded = True
            for ep in entry_points(group=f"motiongrid.{self.kind}"):
                ep.load()

    def _import_all_builtins(self) -> None:
        """Fallback for a built-in module that registers a name its package does not declare."""
        if not self._all_imported:
            self._all_imported = True
            for name in _BUILTIN_PACKAGES[self.kind]:
                package = importlib.import_module(name)
                for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
                    if not info.name.startswith("_"):
                        importlib.import_module(f"{package.__name__}.{info.name}")

    def get(self, name: str) -> type[T]:
        for discover in (self._declare_builtins, self._load_plugins, self._import_all_builtins):
            discover()
            if name in self._items:
                return self._items[name]
            if name in self._declared:
                cls = _import_object(self._declared[name].target)
                if self._items.get(name) is not cls:  # a declared class need not use the decorator
                    self.register(name)(cls)
                return cls
        raise UnknownName(unknown_message(_SINGULAR[self.kind], name, self.names()))

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def names(self) -> list[str]:
        """Every declared or registered name (built-ins and plugins), importing no declared class."""
        self._load_plugins()
        return sorted(set(self._items) | set(self._declared))

    def items(self) -> list[tuple[str, type[T]]]:
        """(name, class) for every name; imports every class (``info`` does not)."""
        return [(name, self.get(name)) for name in self.names()]

    def info(self, name: str) -> dict[str, Any]:
        """What listings show of ``name`` (``INFO_FIELDS[kind]``), from the class when it is
        imported, else from its declaration (a "module:Class" Params is imported: it is light)."""
        self._load_plugins()
        fields = INFO_FIELDS[self.kind]
        if name in self._items and (name not in self._declared or self.kind in _CLASS_KINDS):
            return {f: getattr(self._items[name], f) for f in fields}
        if name not in self._declared:
            return {f: getattr(self.get(name), f) for f in fields}
        info = dict(self._declared[name].info)
        if set(fields) - set(info):
            return {f: getattr(self.get(name), f) for f in fields}
        for field in TYPED:
            if isinstance(info.get(field), str):
                info[field] = _import_object(info[field])
        return info


def _where(obj) -> str:
    return f"{obj.__module__}:{getattr(obj, '__qualname__', getattr(obj, 'name', '?'))}"


methods: Registry = Registry("methods")
metrics: Registry = Registry("metrics")
datasets: Registry = Registry("datasets")
backbones: Registry = Registry("backbones")    # family -> BackboneFamily (methods/backbone.py)
weights: Registry = Registry("weights")        # name -> WeightFile (bench/weights.py)
commands: Registry = Registry("commands")      # group -> register(subparsers) (bench/cli)
