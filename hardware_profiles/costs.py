"""Reading a profile's measured costs: a linear cost, and an op's cost at a size between those it was measured
at. One reader for the layer predictors and for the pricing of ONNX models."""

from __future__ import annotations

import numpy as np


def linear_ms(cost: dict, amount: float, per: str = "per_melement_ms") -> float:
    """A measured linear cost (``intercept_ms`` plus ``per`` for each million units of ``amount``)."""
    return cost["intercept_ms"] + cost[per] * amount / 1e6


def op_cost_ms(cost: dict, work: float) -> float:
    """A measured op cost at ``work``: interpolated between the sizes it was measured at (an op's time per
    element changes as its tensors leave the caches), proportional to the nearest measured size beyond
    them; the fitted line (``intercept_ms``, ``per_mwork_ms``) when the entry lists no measurements."""
    points = sorted((float(m["work"]), float(m["latency_ms"])) for m in cost.get("measured", []))
    if len(points) < 2:
        return linear_ms(cost, work, per="per_mwork_ms")
    works, times = [max(w, 1.0) for w, _ in points], [max(t, 1e-4) for _, t in points]
    if work > works[-1]:
        return times[-1] * work / works[-1]
    if work < works[0]:  # toward the fixed cost of a call
        floor = min(cost.get("intercept_ms", times[0]), times[0])
        return floor + (times[0] - floor) * work / works[0]
    return float(np.interp(work, works, times))
