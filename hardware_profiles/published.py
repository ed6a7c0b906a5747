"""Published whole-network measurements as targets: a CSV of architectures of a known space and their
latencies on one device becomes an ``architecture-table`` profile.

The predictor is an additive lookup table over the space's decisions (one cost per value of every
parameter, plus an intercept), the layer-wise table that HW-NAS-Bench and FBNet use, here fitted on
whole networks. Three ways to fit it are scored by k-fold cross-validation on the measured rows, and
the best is kept (its figures are stored in the profile):

``additive``            ridge regression on one-hot decisions (needs many rows: one per table entry or so);
``transfer``            a non-negative combination of the tables of reference devices of the same space
                        (the shipped published profiles), as HELP transfers from known devices: a few
                        measured rows suffice, since they only weigh the references;
``transfer+additive``   the transfer fit, plus a strongly regularized additive correction of its residuals.

Every fit collapses to one table (a weighted sum of additive tables is additive), so prediction is a
lookup whatever the fit. Rows not used for fitting (``samples`` below the CSV's size) are the held-out
validation stored in the profile.
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasq.errors import NasqError
from nasq.hardware_profiles.predictors import HOUR_MS, LatencyPredictor, Prediction, _positive, _require
from nasq.hardware_profiles.profile import Profile
from nasq.hardware_profiles.profiler import Capabilities, ProfilerBackend
from nasq.hardware_profiles.registries import PREDICTORS, PROFILERS
from nasq.options import Options, option
from nasq.spaces.base import LayerSpec

FIT_METHODS = ("additive", "transfer", "transfer+additive")


@PREDICTORS.register("architecture-table")
class ArchitectureTablePredictor(LatencyPredictor):
    """Latency = ``intercept_ms`` + the sum over the candidate's parameters of ``costs[param][value]``.

    Profile fields: ``space`` (the only space it prices), ``intercept_ms``, ``costs`` (per parameter, per
    value as a string, in ms; may be negative: costs are relative to the intercept) and ``min_ms`` (the
    smallest latency fitted; predictions are floored at half of it, with a note). Optional ``measured``:
    the space's architecture string (``space.format_arch``) -> measured ms; a candidate listed there is
    priced at its measurement, exactly (a fully measured device needs no fit).
    """

    @classmethod
    def validate_profile(cls, profile: Profile) -> None:
        _require(profile, "space", str)
        costs = _require(profile, "costs", dict)
        if not costs:
            raise NasqError(f"profile {profile.source}: 'costs' is empty")
        for param, values in costs.items():
            if not isinstance(values, dict) or not values:
                raise NasqError(f"profile {profile.source}: costs['{param}'] must map values to ms")
            for value, ms in values.items():
                if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not math.isfinite(ms):
                    raise NasqError(f"profile {profile.source}: costs['{param}']['{value}'] must be a number")
        intercept = profile.data.get("intercept_ms")
        if not isinstance(intercept, (int, float)) or isinstance(intercept, bool) or not math.isfinite(intercept):
            raise NasqError(f"profile {profile.source}: field 'intercept_ms' must be a number, got {intercept!r}")
        if _positive(profile, "min_ms", profile.data.get("min_ms"), HOUR_MS) <= 0:
            raise NasqError(f"profile {profile.source}: min_ms must be positive")
        measured = profile.data.get("measured", {})
        if not isinstance(measured, dict):
            raise NasqError(f"profile {profile.source}: 'measured' must map architecture strings to ms")
        for arch, ms in measured.items():
            if _positive(profile, f"measured['{arch}']", ms, HOUR_MS) <= 0:
                raise NasqError(f"profile {profile.source}: measured['{arch}'] must be positive, got {ms!r}")

    def predict(self, layers: Sequence[LayerSpec]) -> Prediction:
        raise NasqError(
            f"target '{self.profile.name}' prices whole architectures of space "
            f"'{self.profile.data['space']}' only, not layer lists"
        )

    def predict_candidate(self, space, candidate: dict, layers=None) -> Prediction:
        if space.name != self.profile.data["space"]:
            raise NasqError(
                f"target '{self.profile.name}' prices architectures of space '{self.profile.data['space']}' "
                f"only, not of '{space.name}'"
            )
        measured = self.profile.data.get("measured")
        if measured:
            ms = measured.get(space.format_arch(candidate))
            if ms is not None:
                return Prediction(total_ms=float(ms))
        notes: list[str] = []
        total = table_total(self.profile.data, candidate, notes)
        floor = 0.5 * float(self.profile.data["min_ms"])
        if total < floor:
            notes.append(
                f"additive table gave {total:.4g} ms, below half the fastest fitted network; floored at {floor:.4g}"
            )
            total = floor
        return Prediction(total_ms=total, notes=notes)


def table_total(table: dict, candidate: dict, notes: list[str] | None = None) -> float:
    total = float(table["intercept_ms"])
    for param, value in candidate.items():
        values = table["costs"].get(param)
        if values is None:
            continue  # a parameter the fit saw no variation of: its cost is in the intercept
        cost = values.get(str(value))
        if cost is None:
            cost = float(np.mean(list(values.values())))
            if notes is not None:
                notes.append(f"{param}={value} was never measured; priced at the mean of its other values")
        total += cost
    return total


# --- fitting ---------------------------------------------------------------------------------------


def _columns(candidates: Sequence[dict]) -> list[tuple[str, str]]:
    return sorted({(k, str(v)) for c in candidates for k, v in c.items()})


def _one_hot(candidates: Sequence[dict], columns: list[tuple[str, str]]) -> np.ndarray:
    index = {col: i for i, col in enumerate(columns)}
    x = np.zeros((len(candidates), len(columns)))
    for r, cand in enumerate(candidates):
        for k, v in cand.items():
            i = index.get((k, str(v)))
            if i is not None:
                x[r, i] = 1.0
    return x


def _table_from(columns: list[tuple[str, str]], coef: np.ndarray, intercept: float) -> dict:
    costs: dict[str, dict[str, float]] = {}
    for (param, value), c in zip(columns, coef):
        costs.setdefault(param, {})[value] = float(c)
    return {"intercept_ms": float(intercept), "costs": costs}


def fit_additive(candidates: Sequence[dict], y: np.ndarray, alpha: float | None = None) -> dict:
    """Ridge regression of latency on one-hot decisions (closed form)."""
    columns = _columns(candidates)
    x = _one_hot(candidates, columns)
    alpha = alpha if alpha is not None else (1.0 if len(y) < 500 else 0.1)
    xm, ym = x.mean(0), y.mean()
    xc = x - xm
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(len(columns)), xc.T @ (y - ym))
    return _table_from(columns, coef, ym - xm @ coef)


def predict_tables(table: dict, candidates: Sequence[dict]) -> np.ndarray:
    return np.array([table_total(table, c) for c in candidates])


def _combine(tables: Sequence[dict], weights: Sequence[float], intercept: float) -> dict:
    out: dict[str, Any] = {"intercept_ms": float(intercept), "costs": {}}
    for table, w in zip(tables, weights):
        if w == 0:
            continue
        out["intercept_ms"] += w * table["intercept_ms"]
        for param, values in table["costs"].items():
            dst = out["costs"].setdefault(param, {})
            for value, cost in values.items():
                dst[value] = dst.get(value, 0.0) + w * cost
    return out


def fit_transfer(candidates: Sequence[dict], y: np.ndarray, references: dict[str, dict]) -> tuple[dict, dict]:
    """Non-negative least squares of latency on the reference tables' predictions (plus an intercept)."""
    from scipy.optimize import nnls

    names = sorted(references)
    r = np.column_stack([np.ones(len(y))] + [predict_tables(references[n], candidates) for n in names])
    coef, _ = nnls(r, y)
    weights = {n: float(w) for n, w in zip(names, coef[1:]) if w > 0}
    return _combine([references[n] for n in names], coef[1:], coef[0]), weights


def fit_method(
    method: str, candidates: Sequence[dict], y: np.ndarray, references: dict[str, dict]
) -> tuple[dict, dict]:
    """One fit; returns the table and what it was made from."""
    if method == "additive":
        return fit_additive(candidates, y), {}
    table, weights = fit_transfer(candidates, y, references)
    if method == "transfer+additive":
        residual = fit_additive(candidates, y - predict_tables(table, candidates), alpha=3.0)
        table = _combine([table, residual], [1.0, 1.0], 0.0)
    return table, {"reference_weights": weights}


#: below this many fitted rows, a k-fold figure rests on a handful of networks per fold and is said to be rough
FEW_ROWS = 30


def select_and_fit(
    candidates: Sequence[dict], y: np.ndarray, references: dict[str, dict], *, folds: int = 5, seed: int = 0
) -> tuple[dict, dict]:
    """Score every applicable fit by k-fold cross-validation, keep the one with the lowest median error
    (ties: higher rank correlation), and refit it on all rows."""
    from nasq.hardware_profiles.measurement import error_summary

    methods = [m for m in FIT_METHODS if references or m == "additive"]
    folds = max(2, min(folds, len(y)))
    rows = len(y) - math.ceil(len(y) / folds)  # what each fold fits on
    parameters = len(_columns(candidates)) + 1
    excluded = {}
    if parameters > rows and len(methods) > 1:  # a plain ridge with more unknowns than rows fits noise
        methods.remove("additive")
        excluded["additive"] = f"{parameters} parameters for {rows} rows a fold"
    order = np.random.default_rng(seed).permutation(len(y))
    scores = {}
    for method in methods:
        predicted = np.zeros(len(y))
        for fold in range(folds):
            test = order[fold::folds]
            train = np.setdiff1d(order, test)
            table, _ = fit_method(method, [candidates[i] for i in train], y[train], references)
            predicted[test] = predict_tables(table, [candidates[i] for i in test])
        scores[method] = error_summary(list(np.maximum(predicted, 1e-9)), list(y))
    chosen = min(scores, key=lambda m: (scores[m]["median_error"], -scores[m]["spearman"]))
    table, info = fit_method(chosen, candidates, y, references)
    selection = {
        "chosen": chosen,
        "method": f"{folds}-fold cross-validation on {len(y)} measured networks",
        "scores": scores,
        "excluded": excluded,
        **info,
    }
    return table, selection


# --- reading a CSV ----------------------------------------------------------------------------------


def read_latency_csv(path: Path, space, arch_column: str, latency_column: str) -> tuple[list[dict], np.ndarray]:
    """Candidates and latencies (ms) from a CSV; NasqError naming the first bad column, row or value."""
    from nasq.fileio import read_text

    text = read_text(path, "latency CSV")
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [c for c in (arch_column, latency_column) if c not in header]
    if missing:
        raise NasqError(f"CSV {path} lacks column(s) {', '.join(missing)}; it has: {', '.join(header) or 'none'}")
    candidates, latencies = [], []
    for line, row in enumerate(reader, start=2):
        try:
            ms = float(row[latency_column])
        except (TypeError, ValueError):
            raise NasqError(
                f"CSV {path} line {line}: {latency_column} = {row[latency_column]!r} is not a number"
            ) from None
        if not math.isfinite(ms) or ms <= 0:
            raise NasqError(f"CSV {path} line {line}: {latency_column} = {ms} ms; latencies must be positive")
        try:
            candidates.append(space.parse_arch(row[arch_column] or ""))
        except NasqError as exc:
            raise NasqError(f"CSV {path} line {line}: {exc}") from None
        latencies.append(ms)
    if len(candidates) < 2:
        raise NasqError(f"CSV {path} has {len(candidates)} data row(s); at least 2 are needed to fit a predictor")
    return candidates, np.array(latencies)


def reference_tables(
    space_name: str, *, exclude: Sequence[str] = (), exclude_device: str | None = None
) -> dict[str, dict]:
    """The architecture tables of every loadable profile of ``space_name`` (the shipped published ones
    and any on ``NASQ_PROFILE_PATH``), except those named or measuring ``exclude_device``."""
    from nasq.hardware_profiles import list_profiles, load_profile

    refs = {}
    for name in list_profiles():
        if name in exclude:
            continue
        try:
            prof = load_profile(name)
        except NasqError:
            continue
        if prof.predictor != "architecture-table" or prof.data.get("space") != space_name:
            continue
        if exclude_device is not None and prof.metadata.get("device") == exclude_device:
            continue
        refs[name] = {"intercept_ms": prof.data["intercept_ms"], "costs": prof.data["costs"]}
    return refs


@dataclass(frozen=True)
class PublishedCsvOptions(Options):
    """Options of the ``published-csv`` backend (``nasq profile import``)."""

    describes = "profiler backend 'published-csv'"
    csv: str = option("", doc="the CSV of measured whole networks")
    column: str = option("", doc="its column of latencies, in ms")
    arch_column: str = option("arch_str", doc="its column of architectures, in the space's parse_arch form")
    samples: int | None = option(
        None, min=2, max=10_000_000, doc="fit on this many seeded rows, validate on the rest (default: fit on all)"
    )
    seed: int = option(0, min=0, max=2**32 - 1, doc="seed of the rows fitted")
    references: tuple[str, ...] = option(
        ("auto",), doc="profiles to transfer from: auto (the space's other profiles), none, or names (a,b)"
    )
    device: str | None = option(None, doc="the device's name in the profile (default: the column's)")

    def check(self) -> None:
        if not self.csv or not self.column:
            raise NasqError(f"{self.describes} needs csv (a CSV file) and column (its latencies' column)")
        names = tuple(dict.fromkeys(n for r in self.references for n in r.split(",") if n))
        if not names or (len(names) > 1 and {"auto", "none"} & set(names)):
            raise NasqError(
                f"{self.describes}: references {','.join(self.references)!r} not allowed; allowed: auto, none, "
                "or profile names"
            )
        object.__setattr__(self, "references", names)


@PROFILERS.register("published-csv")
class PublishedCsvProfiler(ProfilerBackend):
    """Fits an ``architecture-table`` profile from a CSV of measured whole networks of a known space
    (options: :class:`PublishedCsvOptions`).

    Example:
        >>> backend = PublishedCsvProfiler(csv="nb201_latency_ms.csv", column="pixel3", samples=20)  # doctest: +SKIP
        >>> data = backend.profile([], name="nb201-my-pixel3", space="nas-bench-201")             # doctest: +SKIP
    """

    Options = PublishedCsvOptions
    options: PublishedCsvOptions
    capabilities = Capabilities(
        runtime="published measurements",
        measures="nothing: it fits a table to a CSV of whole networks measured elsewhere",
        precisions=("fp32",),
        measures_layers=False,
    )

    def __init__(self, options: PublishedCsvOptions | None = None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        self.csv, self.device = Path(o.csv), o.device or o.column
        self.references = o.references[0] if o.references[0] in ("auto", "none") else list(o.references)

    def profile(
        self,
        shapes: Sequence[LayerSpec],
        *,
        name: str,
        space: str,
        quick: bool = False,
        log: Callable[[str], None] = print,
    ) -> dict:
        from nasq import __version__
        from nasq.hardware_profiles.measurement import error_summary, format_summary
        from nasq.spaces import create_space

        sp = create_space(space)
        if not hasattr(sp, "parse_arch"):
            raise NasqError(f"space '{space}' has no architecture string format to read a CSV with")
        candidates, y = read_latency_csv(self.csv, sp, self.options.arch_column, self.options.column)
        rng = np.random.default_rng(self.options.seed)
        n = len(y) if self.options.samples is None else self.options.samples
        if not 2 <= n <= len(y):
            raise NasqError(f"--samples {n} not allowed; the CSV has {len(y)} rows (allowed: 2..{len(y)})")
        fit_idx = np.sort(rng.permutation(len(y))[:n])
        held = np.setdiff1d(np.arange(len(y)), fit_idx)
        if self.references == "none":
            refs = {}
        elif self.references == "auto":
            refs = reference_tables(space, exclude=(name,), exclude_device=self.device)
        else:
            refs = reference_tables(space, exclude=(name,))
            unknown = set(self.references) - set(refs)
            if unknown:
                raise NasqError(
                    f"reference profile(s) {sorted(unknown)} are not architecture tables of '{space}'; "
                    f"available: {', '.join(sorted(refs)) or 'none'}"
                )
            refs = {k: refs[k] for k in self.references}
        log(
            f"fitting on {n} of {len(y)} measured '{space}' networks ({self.options.column}), {len(refs)} reference devices"
        )
        table, selection = select_and_fit([candidates[i] for i in fit_idx], y[fit_idx], refs, seed=self.options.seed)
        for method, why in selection["excluded"].items():
            log(f"{method}: not tried ({why})")
        few = f" on {n} rows only: a rough figure" if n < FEW_ROWS else ""
        for method, summary in selection["scores"].items():
            log(f"{method}: {format_summary(summary)} (cross-validated{few})")
        log(f"chose '{selection['chosen']}'")
        date = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        data = {
            "schema_version": 1,
            "name": name,
            "predictor": "architecture-table",
            "description": f"published whole-network latencies of '{space}' on {self.device} "
            f"(column {self.options.column} of {self.csv.name}), additive architecture table",
            "int8": False,
            "metadata": {
                "device": self.device,
                "runtime": "published measurements",
                "source": self.csv.name,
                "column": self.options.column,
                "date": date,
                "rows_in_csv": len(y),
                "rows_fitted": int(n),
                "seed": self.options.seed,
                "nasq_version": __version__,
            },
            "space": space,
            **table,
            "min_ms": float(y[fit_idx].min()),
            "predictor_selection": selection,
        }
        if len(held):
            pred = predict_tables(table, [candidates[i] for i in held])
            summary = error_summary(list(np.maximum(pred, 0.5 * data["min_ms"])), list(y[held]))
            what = f"{len(held)} rows of {self.csv.name} not used for fitting"
        else:
            summary, what = selection["scores"][selection["chosen"]], f"{n} rows, {selection['method']}"
        data["validation"] = {"predictor": "architecture-table", **summary, "what": what, "date": date}
        log(f"validation ({what}): {format_summary(summary)}")
        return data
