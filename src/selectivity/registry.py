"""Named factories: the one registry mechanism behind models and data sets.

A `Registry` maps names to factories, is filled by a decorator (so code outside the package can
add entries the same way the package does), and refuses an unknown name with the names it knows.
With an entry point group, installed distributions add names too: a package declares, in its
pyproject.toml, `[project.entry-points."selectivity.models"]` `mynet = "mypkg.nets:make_mynet"`,
and `create_model("mynet", ...)` finds it. Entry points are listed without being imported and
loaded only when their name is asked for; a name registered in code wins over an entry point.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Registry"]

Factory = TypeVar("Factory", bound=Callable[..., object])


class Registry(Generic[Factory]):
    """name -> factory. `what` names the kind in errors; `error` is the exception raised for an
    unknown name or a broken entry point (a ValueError subclass, so callers can turn it into one
    line); `group`: the entry point group whose entries are names too (None: none)."""

    def __init__(self, what: str, error: type[ValueError] = ValueError, group: str | None = None):
        self.what = what
        self.error = error
        self.group = group
        self._factories: dict[str, Factory] = {}

    def register(self, name: str) -> Callable[[Factory], Factory]:
        """Decorator: `@registry.register("name")` adds the factory under `name` (last one wins)."""

        def add(factory: Factory) -> Factory:
            self._factories[name] = factory
            return factory

        return add

    def _entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        if self.group is None:
            return {}
        return {point.name: point for point in importlib.metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted({*self._factories, *self._entry_points()})

    def get(self, name: str) -> Factory:
        if name in self._factories:
            return self._factories[name]
        point = self._entry_points().get(name)
        if point is None:
            raise self.error(f"unknown {self.what} {name!r}; available: {', '.join(self.names())}")
        where = f"{self.what} {name!r} (entry point {point.value!r} in group {self.group!r})"
        try:
            factory = point.load()
        except Exception as error:  # any failure of a third party's import is reported alike
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise self.error(
                f"{where} cannot be loaded: {type(error).__name__}"
                + (f": {message}" if message else "")
            ) from None
        if not callable(factory):
            raise self.error(f"{where} is a {type(factory).__name__}, not a factory")
        return factory
