"""Constraints per target: bounds on predicted latency, model size in bytes and BitOps.

A candidate counts for a target only if it meets that target's bounds: fronts, plots and `nasq best`
leave it out otherwise (its results row lists the target under ``infeasible``). All three metrics are
known before a candidate is evaluated, so the search checks them first
(:class:`ConstraintCheck`): a candidate that meets no target's bounds is never trained; its
suggestion is answered to the sampler at once, and Optuna's samplers learn the violation through
their ``constraints_func`` (Optuna's constrained TPE and NSGA-II rank feasible candidates first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the metrics a bound can be set on, as candidate_metrics names them (latency per target)
BOUND_METRICS = ("latency_ms", "size_bytes", "bitops")


def violations(constraints: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, float]:
    """Per constrained target, the largest relative excess over its bounds (at most 0: feasible).

    ``metrics`` holds ``latency_ms.<target>``, ``size_bytes`` and ``bitops``, as results rows and
    trial results do; a missing or non-finite value violates its bound."""
    out = {}
    for target, bounds in constraints.items():
        worst = -1.0
        for metric, bound in bounds.bounds().items():
            value = metrics.get(f"latency_ms.{target}" if metric == "latency_ms" else metric)
            excess = float("inf") if value is None or value != value else float(value) / bound - 1.0
            worst = max(worst, excess)
        out[target] = worst
    return out


def infeasible_targets(constraints: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    return [t for t, v in violations(constraints, metrics).items() if v > 0]


def overall_violation(constraints: Mapping[str, Any], targets: list[str], metrics: Mapping[str, Any]) -> float:
    """How far the candidate is from counting for any target: 0 or less when it meets some target's
    bounds (an unconstrained target takes every candidate)."""
    if not constraints or any(t not in constraints for t in targets):
        return -1.0
    return min(violations(constraints, metrics).values())


class ConstraintCheck:
    """Predicts a candidate's bounded metrics in the driver and checks them before any trial runs.

    Picklable (Ray Tune saves searchers for ``--resume``): the latency predictors are rebuilt from the
    profiles' data after a restore.
    """

    def __init__(self, space, profiles: dict[str, dict], constraints: Mapping[str, Any]) -> None:
        self.space, self.profiles, self.constraints = space, profiles, dict(constraints)
        self.targets = list(profiles)
        self.skipped = 0
        self._predictors: dict | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_predictors": None}

    def metrics(self, candidate: dict) -> dict[str, float]:
        from nasq.search.objectives import candidate_metrics

        if self._predictors is None:
            from nasq.hardware_profiles import predictors_for

            self._predictors = predictors_for(self.profiles)
        return candidate_metrics(self.space, candidate, self._predictors)

    def violation(self, candidate: dict) -> float:
        return overall_violation(self.constraints, self.targets, self.metrics(candidate))

    def optuna_constraints(self, frozen_trial) -> list[float]:
        """Optuna's ``constraints_func``: one value, feasible at 0 or less."""
        return [self.violation(self.space.validate(dict(frozen_trial.params)))]
