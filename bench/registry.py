"""Name -> class registries for methods, metrics and clip sets.

Classes register themselves with a decorator when their module is imported. So that listing
them (``motiongrid methods``) imports no torch, a name can also be *declared* ahead of import:
``methods.declare(name, "module:Class", description=..., ...)`` records where the class lives
and what listings show about it; the module is imported only when ``get(name)`` needs the class.
Built-ins are declared in their package's ``__init__.py`` (``motiongrid.methods`` ...); third-party
packages add theirs through the entry-point groups ``motiongrid.methods``,
``motiongrid.metrics`` and ``motiongrid.datasets`` (the entry point names a module or class;
loading it is enough: its ``declare`` calls or decorators do the rest).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from motiongrid.bench.errors import UserError

T = TypeVar("T")

# Packages whose __init__ declares the built-ins of each registry. Every module in them is
# imported only as a fallback, when a name is neither declared nor registered.
_BUILTIN_PACKAGES = {
    "methods": "motiongrid.methods",
    "metrics": "motiongrid.metrics",
    "datasets": "motiongrid.datasets",
}

# What listings show of each kind: class attributes, declared up front for lazy entries.
# A method's "Params" and a metric's "Options" may be declared as "module:Class" (a module that
# does not import torch).
INFO_FIELDS = {
    "methods": ("task", "description", "Params"),
    "metrics": ("higher_is_better", "needs", "description", "Options"),
    "datasets": ("description",),
}
# Fields a declaration may leave out; ``info`` then imports the class to read them.
OPTIONAL_INFO = {"metrics": ("Options",)}
TYPED = ("Params", "Options")   # declared as "module:Class" strings


class UnknownName(UserError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


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
        def decorator(cls: type[T]) -> type[T]:
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice "
                                 f"({self._items[name].__module__} and {cls.__module__})")
            declared = self._declared.get(name)
            where = f"{cls.__module__}:{cls.__qualname__}"
            if declared is not None and declared.target != where:
                raise ValueError(f"{self.kind} {name!r} is declared as {declared.target} but registered by {where}")
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

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests use it to clean up what they registered)."""
        self._items.pop(name, None)
        self._declared.pop(name, None)

    # -- discovery, cheapest first ---------------------------------------------------------
    def _declare_builtins(self) -> None:
        if not self._builtins_declared:
            self._builtins_declared = True
            importlib.import_module(_BUILTIN_PACKAGES[self.kind])

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
            package = importlib.import_module(_BUILTIN_PACKAGES[self.kind])
            for info in pkgutil.iter_modules(package.__path__):
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
        raise UnknownName(f"unknown {self.kind[:-1] if self.kind != 'datasets' else 'clip set'} "
                          f"{name!r}; available: {', '.join(self.names())}")

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
        if name in self._items:
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


methods: Registry = Registry("methods")
metrics: Registry = Registry("metrics")
datasets: Registry = Registry("datasets")
