"""Name -> class registries for methods, metrics and clip sets.

Built-ins register themselves with a decorator when their module is imported; third-party
packages add theirs through the entry-point groups ``motiongrid.methods``,
``motiongrid.metrics`` and ``motiongrid.datasets`` (the entry point names a module or class;
loading it is enough, its decorators do the rest).
"""
from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from motiongrid.bench.errors import UserError

T = TypeVar("T")

# Packages whose modules hold the built-ins of each registry; every module in them is
# imported on first lookup, so adding a method is adding one file.
_BUILTIN_PACKAGES = {
    "methods": "motiongrid.methods",
    "metrics": "motiongrid.metrics",
    "datasets": "motiongrid.datasets",
}


class UnknownName(UserError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str):
        def decorator(cls: type[T]) -> type[T]:
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice "
                                 f"({self._items[name].__module__} and {cls.__module__})")
            cls.name = name
            self._items[name] = cls
            return cls
        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests use it to clean up what they registered)."""
        self._items.pop(name, None)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(_BUILTIN_PACKAGES[self.kind])
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{info.name}")
        for ep in entry_points(group=f"motiongrid.{self.kind}"):
            ep.load()

    def get(self, name: str) -> type[T]:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(f"unknown {self.kind[:-1] if self.kind != 'datasets' else 'clip set'} "
                              f"{name!r}; available: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, type[T]]]:
        self._load()
        return sorted(self._items.items())


methods: Registry = Registry("methods")
metrics: Registry = Registry("metrics")
datasets: Registry = Registry("datasets")
