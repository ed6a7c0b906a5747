"""The physical range of every number a profile holds, in one place.

Each rule names a field by its path (``layers[].latency_ms``, ``costs.*.*``: dots between keys, ``[]`` for a list's
items, ``*`` for any one key) or by its last key alone, and gives the range real hardware and real measurements
stay in. :func:`check_numbers` runs before the structural checks each predictor makes of its own fields
(``validate_profile``), so that no number reaches a predictor as NaN, an infinity or a value no device has.
A number no rule names must still be finite; tests/test_profile_schema.py keeps every field nasq writes named here.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from functools import lru_cache

from nasq.errors import NasqError

HOUR_MS = 3_600_000.0  # no layer, overhead or boundary a profile describes takes an hour
BIG = 1e13  # elements, MACs, byte counts: more than any one layer of a real network


@dataclass(frozen=True)
class Bound:
    low: float
    high: float
    integer: bool = False


def _ms(low: float = 0.0) -> Bound:
    return Bound(low, HOUR_MS)


SHARE = Bound(0.0, 1.0)
COUNT = Bound(0, 1e9, integer=True)
RATIO = Bound(0.0, 1e3)  # one speed or latency over another
WEIGHT = Bound(-1e6, 1e6)  # fitted coefficients: finite, and no larger than a fit on real latencies gives

ACCELERATOR_BOUNDS = {
    "bitbricks": (1, 1e7),
    "brick_bits": (1, 8),
    "clock_mhz": (1, 1e4),
    "bandwidth_gb_s": (1e-3, 1e5),
    "layer_overhead_us": (0, 3.6e9),
    "float_bits": (8, 64),
}

#: by path, checked first, in order
PATHS: tuple[tuple[str, Bound], ...] = (
    ("schema_version", Bound(1, 1e6, integer=True)),
    ("intercept_ms", Bound(-HOUR_MS, HOUR_MS)),  # an architecture table's: its costs are relative to it
    ("costs.*.*", Bound(-HOUR_MS, HOUR_MS)),
    ("measured.*", _ms()),  # an architecture table's measured architectures
    # a measurement less the per-call overhead dips below zero by the timer's noise on the smallest tensors
    ("*measured[].latency_ms", _ms(-1.0)),
    ("*.mean_abs_log_error.*", Bound(0.0, 1e3)),
    *((f"accelerator.{key}", Bound(low, high)) for key, (low, high) in ACCELERATOR_BOUNDS.items()),
    ("kernel_model.trees[].feature[]", Bound(-2, 1e4, integer=True)),
    ("kernel_model.trees[].left[]", Bound(-1, 1e8, integer=True)),
    ("kernel_model.trees[].right[]", Bound(-1, 1e8, integer=True)),
    ("kernel_model.trees[].threshold[]", Bound(-1e9, 1e9)),
    ("kernel_model.trees[].value[]", Bound(-1e3, 1e3)),  # log-latency residuals
    ("kernel_model.init", Bound(-1e3, 1e3)),
    ("kernel_model.learning_rate", Bound(0.0, 10.0)),
    ("metadata.cpu_id.*", Bound(0, 1e6, integer=True)),
    ("metadata.reference.speed.measurements", COUNT),
    ("metadata.reference.speed.*", RATIO),
    ("metadata.reference.layer.*", Bound(1, 1e6, integer=True)),
)

#: by the last key, where no path rule matched
KEYS: dict[str, Bound] = {
    **{
        k: _ms()
        for k in (
            "latency_ms",
            "measured_ms",
            "measured_ms[]",
            "predicted_ms",
            "at_profile_speed_ms",
            "min_ms",
            "overhead_ms",
            "intercept_ms",
            "per_melement_ms",
            "per_mwork_ms",
        )
    },
    **{k: SHARE for k in ("within_10pct", "within_20pct", "cv_within_10pct", "target_within_10pct")},
    **{k: Bound(0.0, 1e6) for k in ("median_error", "p90_error", "cv_median_error")},  # relative errors
    "spearman": Bound(-1.0, 1.0),
    **{
        k: COUNT
        for k in (
            "networks",
            "fitted_on_networks",
            "fitted_on_layers",
            "layers_swept",
            "rounds",
            "windows",
            "repetitions",
            "measurements",
            "rows_fitted",
            "rows_in_csv",
        )
    },
    **{k: Bound(0, 2**63, integer=True) for k in ("networks_seed", "seed")},
    "cin": Bound(1, 1e6, integer=True),
    "cout": Bound(1, 1e6, integer=True),
    "kernel": Bound(1, 1e3, integer=True),
    "stride": Bound(1, 1e3, integer=True),
    "h_in": Bound(1, 1e5, integer=True),
    "elements": Bound(0, BIG),
    "work": Bound(0, BIG),
    "coefficients[]": WEIGHT,
    **{k: Bound(0.0, 1e7) for k in ("seconds", "budget_seconds", "profiling_seconds")},
    **{k: RATIO for k in ("max_ratio", "min_ratio", "median_ratio", "reference_speed", "median", "p10", "p90")},
    "nchwc_block_size": Bound(0, 1024, integer=True),
    "native_bits[]": Bound(1, 32, integer=True),
    "weight_range": Bound(1, 127, integer=True),
    "threads": Bound(1, 4096, integer=True),
    "batch_size": Bound(1, 1e6, integer=True),
}


_PATTERNS = tuple((re.compile(fnmatch.translate(p.replace("[]", "[[][]]"))), b) for p, b in PATHS)  # "[]" literal


@lru_cache(maxsize=4096)
def rule(path: str) -> Bound | None:
    """The range of the number at ``path`` (``[]`` for list items), or None where no rule names it."""
    for pattern, bound in _PATTERNS:
        if pattern.match(path):
            return bound
    return KEYS.get(path.rsplit(".", 1)[-1])


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(value, path: str, shown: str, source: str) -> None:
    bound = rule(path)
    if not math.isfinite(value):
        raise NasqError(
            f"profile {source}: {shown} = {value!r} is not a finite number"
            + (f"; allowed: {bound.low:g} to {bound.high:g}" if bound else "")
        )
    if bound is None:
        return
    if bound.integer and value != int(value):
        raise NasqError(f"profile {source}: {shown} must be a whole number, got {value!r}")
    if not bound.low <= value <= bound.high:
        raise NasqError(
            f"profile {source}: {shown} = {value!r} is out of range; allowed: {bound.low:g} to {bound.high:g}"
        )


def check_numbers(data: dict, source: str) -> None:
    """Every number in ``data`` finite and in the range its rule gives; NasqError naming the first that is not,
    with its range."""
    stack: list[tuple[object, str, str]] = [(data, "", "")]
    while stack:
        node, path, shown = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                stack.append((value, f"{path}.{key}" if path else str(key), f"{shown}.{key}" if shown else str(key)))
        elif isinstance(node, list):
            numbers = [(i, v) for i, v in enumerate(node) if _is_number(v)]
            if numbers:  # long lists of numbers (a regressor's trees): their range first, then the culprit
                bound, values = rule(path + "[]"), [v for _, v in numbers]
                low, high = min(values), max(values)
                if not (
                    math.isfinite(low)
                    and math.isfinite(high)
                    and all(map(math.isfinite, values))
                    and (
                        bound is None
                        or (
                            bound.low <= low
                            and high <= bound.high
                            and (not bound.integer or all(v == int(v) for v in values))
                        )
                    )
                ):
                    for i, v in numbers:
                        _check(v, path + "[]", f"{shown}[{i}]", source)
            for i, v in enumerate(node):
                if isinstance(v, (dict, list)):
                    stack.append((v, path + "[]", f"{shown}[{i}]"))
        elif _is_number(node):
            _check(node, path, shown, source)
