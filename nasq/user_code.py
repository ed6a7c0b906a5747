"""A user's code named in a config: ``package.module:function`` or ``path/to/file.py:function``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nasq.errors import NasqError


def resolve_callable(ref: str, what: str) -> Callable[..., Any]:
    """The function ``ref`` names; NasqError in one line when it does not import or is not callable."""
    if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
        raise NasqError(f"{what} {ref!r} must be 'package.module:function' or 'path/to/file.py:function'")
    module_ref, name = ref.split(":")
    module = load_module(module_ref, f"{what} {ref!r}")
    fn = getattr(module, name, None)
    if fn is None:
        raise NasqError(f"{what} {ref!r}: module {module_ref} has no attribute {name!r}")
    if not callable(fn):
        raise NasqError(f"{what} {ref!r}: {name!r} is a {type(fn).__name__}, not a function or class")
    return fn


def load_module(module_ref: str, what: str):
    """The module ``module_ref`` names (``package.module`` or ``path/to/file.py``), imported once; NasqError in
    one line, starting with ``what``, when it does not import."""
    try:
        if module_ref.endswith(".py"):
            path = Path(module_ref).expanduser().resolve()
            if not path.is_file():
                path = _shipped_copy(path) or path
            if not path.is_file():
                raise NasqError(f"{what}: file {module_ref} does not exist")
            if str(path.parent) not in sys.path:  # the file's own imports of its neighbours work as in a script
                sys.path.append(str(path.parent))
            # one module per file, named after its path, so that two files called model.py do not collide
            mod_name = "nasq_user_" + "_".join(path.with_suffix("").parts[1:]).replace("-", "_").replace(".", "_")
            module = sys.modules.get(mod_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(mod_name, path)
                assert spec is not None and spec.loader is not None  # a .py file always has a loader
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[mod_name]
                    raise
            return module
        return importlib.import_module(module_ref)
    except NasqError:
        raise
    except Exception as exc:  # the user's module fails to import: say why in one line
        first = (str(exc).splitlines() or [""])[0][:200]
        raise NasqError(f"{what} does not import: {type(exc).__name__}: {first}") from None


def _shipped_copy(path: Path) -> Path | None:
    """On a Ray worker of another machine, the copy of ``path`` that the run's runtime environment shipped: its
    folder is a package there (``py_modules``), named after the folder."""
    try:
        spec = importlib.util.find_spec(path.parent.name)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / path.name
        if candidate.is_file():
            return candidate
    return None


def call_user(fn: Callable[..., Any], what: str, *args: Any, **kwargs: Any) -> Any:
    """Call a user's function; an exception in it becomes a one-line NasqError naming ``what``."""
    try:
        return fn(*args, **kwargs)
    except NasqError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise NasqError(f"{what} failed: {type(exc).__name__}: {first}") from None
