"""Name -> class registries, one per extension point (timm's ``register_model`` pattern).

Example:
    >>> SPACES = Registry("search space")
    >>> @SPACES.register("tiny")
    ... class Tiny: ...
    >>> SPACES.get("tiny") is Tiny
    True
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable
from typing import Generic, TypeVar

from nasq.errors import NasqError

T = TypeVar("T")


class Registry(Generic[T]):
    """A registry of named implementations of one interface.

    ``builtin_modules`` are imported on first lookup, so that nothing heavy is imported
    until an implementation is actually asked for.
    """

    def __init__(self, kind: str, *, builtin_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._builtin_modules = builtin_modules
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                warnings.warn(f"{self.kind} '{name}' registered twice; the later one wins", stacklevel=2)
            self._entries[name] = obj
            return obj

        return decorator

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtin_modules:
                importlib.import_module(module)
            load_env_plugins()

    def get(self, name: str) -> T:
        self._load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            raise NasqError(f"unknown {self.kind} '{name}'; available: {', '.join(self.names())}") from None

    def create(self, name: str, **kwargs):
        return self.get(name)(**kwargs)  # type: ignore[operator]

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load_builtins()
        return name in self._entries


_ENV_PLUGINS_LOADED: set[str] = set()


def load_env_plugins() -> None:
    """Import the modules ``$NASQ_PLUGINS`` names (``package.module`` or ``path/to/file.py``, separated by
    ``os.pathsep``), once each: plugins for every nasq command, as a config's ``plugins`` key is for a search."""
    from nasq.user_code import load_module

    for ref in os.environ.get("NASQ_PLUGINS", "").split(os.pathsep):
        if ref and ref not in _ENV_PLUGINS_LOADED:
            _ENV_PLUGINS_LOADED.add(ref)
            load_module(ref, f"NASQ_PLUGINS entry {ref!r}")
