"""Named factories: the one registry mechanism behind models and data sets.

A `Registry` maps names to factories, is filled by a decorator (so code outside the package can
add entries the same way the package does), and refuses an unknown name with the names it knows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Registry"]

Factory = TypeVar("Factory", bound=Callable[..., object])


class Registry(Generic[Factory]):
    """name -> factory. `what` names the kind in errors; `error` is the exception raised for an
    unknown name (a ValueError subclass, so callers can turn it into one line)."""

    def __init__(self, what: str, error: type[ValueError] = ValueError):
        self.what = what
        self.error = error
        self._factories: dict[str, Factory] = {}

    def register(self, name: str) -> Callable[[Factory], Factory]:
        """Decorator: `@registry.register("name")` adds the factory under `name` (last one wins)."""

        def add(factory: Factory) -> Factory:
            self._factories[name] = factory
            return factory

        return add

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Factory:
        if name not in self._factories:
            raise self.error(f"unknown {self.what} {name!r}; available: {', '.join(self.names())}")
        return self._factories[name]
