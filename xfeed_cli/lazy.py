"""Deferred imports for the command modules: `xfeed --help` and usage errors must not pay for
JAX, haiku or pyarrow, so a command module names the library modules it calls through `lazy`,
and the import happens on first attribute access (inside the command that needs it)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """A stand-in for a module, imported on first attribute access."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> Any:
    """`feed = lazy("pipeline.feed")`; `feed.rank(...)` imports pipeline.feed then."""
    return LazyModule(name)
