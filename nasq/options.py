"""Options of a plugin or a config section: frozen dataclasses whose fields declare what they allow.

A field made with :func:`option` carries its range, its choices and a line of help; the dataclass checks
them when it is made, from YAML, from a command line or from Python, and refuses a bad value in one line
that names the option, the value and what is allowed.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Gauge(Options):
    ...     describes = "gauge"
    ...     threads: int = option(1, min=1, max=256, doc="intra-op threads")
    >>> Gauge(threads=4).threads
    4
    >>> Gauge(threads=0)
    Traceback (most recent call last):
    nasq.errors.NasqError: gauge: threads = 0 is below the minimum 1
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nasq.errors import NasqError


def option(
    default: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple | None = None,
    doc: str = "",
    arg: str | None = None,
) -> Any:
    """A dataclass field with its range (``min``, ``max``: both ends allowed; for a list of names, ``min=0``
    allows an empty one), its ``choices``, its help, and ``arg``: the name of the command-line option that sets
    it where that differs from the field's."""
    return field(default=default, metadata={"min": min, "max": max, "choices": choices, "doc": doc, "arg": arg})


def check_value(key: str, value: Any, typ: Any, meta: Mapping[str, Any], where: str) -> Any:
    """``value`` of option ``key`` checked against its type and ``meta`` (see :func:`option`), converted where
    that loses nothing (an integer where a float is wanted, a list where a tuple is); raises
    :class:`NasqError` starting with ``where``."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None and len(arms) < len(typing.get_args(typ)):
            return None
        if len(arms) == 1:
            return check_value(key, value, arms[0], meta, where)
        if not any(isinstance(value, typing.get_origin(a) or a) for a in arms):
            names = " or ".join(getattr(a, "__name__", str(a)) for a in arms)
            raise NasqError(f"{where}: {key} must be {names}, got {value!r}")
        return value
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if origin is tuple and typing.get_args(typ)[0] in (int, float):
        kind = typing.get_args(typ)[0]
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
        if not ok or (kind is int and not all(isinstance(v, int) for v in value)):
            raise NasqError(
                f"{where}: {key} must be a list of {'integers' if kind is int else 'numbers'}, got {value!r}"
            )
        if not all(math.isfinite(v) for v in value):
            raise NasqError(f"{where}: {key} must hold finite numbers, got {value!r}")
        return tuple(kind(v) for v in value)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)) and not value and meta.get("min") == 0:
            return ()
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
            raise NasqError(f"{where}: {key} must be a non-empty list of strings, got {value!r}")
        if len(set(value)) != len(value):
            raise NasqError(f"{where}: {key} lists a name twice: {value!r}")
        return tuple(value)
    if typ is bool:
        if not isinstance(value, bool):
            raise NasqError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if not isinstance(value, origin or typ) or isinstance(value, bool):
        what = "a mapping" if origin is Mapping else getattr(typ, "__name__", typ)
        raise NasqError(f"{where}: {key} must be {what}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # NaN passes every range check
        raise NasqError(f"{where}: {key} must be a finite number, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        allowed = ", ".join(str(c) or "'' (none)" for c in meta["choices"])
        raise NasqError(f"{where}: {key} = {value!r} not allowed; allowed: {allowed}")
    if meta.get("min") is not None and value < meta["min"]:
        raise NasqError(f"{where}: {key} = {value!r} is below the minimum {meta['min']}")
    if meta.get("max") is not None and value > meta["max"]:
        raise NasqError(f"{where}: {key} = {value!r} is above the maximum {meta['max']}")
    return value


@dataclass(frozen=True)
class Options:
    """Base of a plugin's options: every field is checked when an instance is made; :meth:`check` adds the
    checks across fields. ``describes`` names the owner in error messages (``profiler backend 'tvm'``)."""

    describes: ClassVar[str] = "options"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = check_value(f.name, getattr(self, f.name), hints[f.name], f.metadata, self.describes)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Checks across fields; raise :class:`NasqError` naming the options at fault."""

    @classmethod
    def from_mapping(cls, raw: Any, where: str | None = None) -> Options:
        """Options from a mapping (a YAML section, a profile's metadata), refusing a key the class lacks."""
        where = where or cls.describes
        if not isinstance(raw, Mapping):
            raise NasqError(f"{where} must be a mapping, got {type(raw).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in raw if k not in names]
        if unknown:
            raise NasqError(f"{where}: unknown option '{unknown[0]}'; allowed: {', '.join(names) or 'none'}")
        try:
            return cls(**raw)
        except NasqError as exc:  # said where the options were read from
            text = str(exc)
            raise NasqError(where + text[len(cls.describes) :] if text.startswith(cls.describes) else text) from None


_Options = Options  # (inside Configurable, `Options` names the class attribute)


class Configurable:
    """A plugin made from its own options: an instance of its ``Options`` class, or that class's fields as
    keywords (checked either way, when the options are made)."""

    Options: ClassVar[type[_Options]] = _Options

    def __init__(self, options: _Options | None = None, **kwargs: Any) -> None:
        if options is not None and kwargs:
            raise TypeError("give the options as an Options object or as keywords, not both")
        self.options = options if options is not None else self.Options(**kwargs)
        if not isinstance(self.options, self.Options):
            raise TypeError(f"{type(self).__name__} takes {self.Options.__name__}, not {type(self.options).__name__}")
