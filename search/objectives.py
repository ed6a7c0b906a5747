"""What a candidate is scored on: the search's objectives, and the metrics of a candidate that need no training
(predicted latency per target, sizes), shared by the trial, the constraints and the evolution's screen."""

from __future__ import annotations

from typing import Any


def objective_names(targets: list[str]) -> list[str]:
    return ["score"] + [f"latency_ms.{t}" for t in targets]


def objective_modes(targets: list[str]) -> list[str]:
    """Ray Tune's modes for :func:`objective_names`: the score maximized, every latency minimized."""
    return ["max"] + ["min"] * len(targets)


def candidate_metrics(space, candidate: dict, predictors: dict[str, Any], layers=None) -> dict[str, Any]:
    """Everything about a candidate that needs no training: predicted latencies and sizes (``layers``:
    the candidate's layer list, when the caller has it already)."""
    from nasq.accuracy import layer_counts

    layers = space.layers(candidate) if layers is None else layers
    counts = layer_counts(layers)
    out: dict[str, Any] = {
        f"latency_ms.{t}": p.predict_candidate(space, candidate, layers).total_ms for t, p in predictors.items()
    }
    out.update(params=counts["params"], macs=counts["flops"], bitops=counts["bitops"], size_bytes=counts["size_bytes"])
    return out
