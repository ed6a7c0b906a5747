"""Multi-objective asynchronous successive halving (MO-ASHA), as a Ray Tune trial scheduler.

Ray Tune's ``ASHAScheduler`` ranks trials by one metric. A compression search has several
(the accuracy estimate's ``score``, maximized, and a predicted latency per target, minimized), and
stopping every trial whose score is below the rung's median would kill every small, fast candidate.
MO-ASHA (Schmucker et al., 2021) keeps ASHA's asynchronous rungs and replaces the quantile cut by
non-dominated sorting: a trial reaching rung k goes on if it ranks in the top ``1/reduction_factor``
of the results recorded at that rung, by Pareto rank, then by crowding distance (NSGA-II), then score.

Trials report ``rung`` (0, 1, ...) with every result; the last rung is the full fidelity and needs
no decision. Everything else (which trial runs next, pausing) is Ray's ``FIFOScheduler``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ray.tune.schedulers import FIFOScheduler, TrialScheduler


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and better somewhere, all coordinates maximized."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Non-domination rank of each point (0: non-dominated), all coordinates maximized."""
    n = len(points)
    dominated_by = [0] * n
    beats: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                beats[i].append(j)
                dominated_by[j] += 1
            elif dominates(points[j], points[i]):
                beats[j].append(i)
                dominated_by[i] += 1
    ranks, front, rank = [0] * n, [i for i in range(n) if dominated_by[i] == 0], 0
    while front:
        nxt = []
        for i in front:
            ranks[i] = rank
            for j in beats[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        front, rank = nxt, rank + 1
    return ranks


def crowding(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point within its set (boundary points: infinite)."""
    n = len(points)
    dist = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        for k in range(1, n - 1):
            if hi > lo:
                dist[order[k]] += (points[order[k + 1]][m] - points[order[k - 1]][m]) / (hi - lo)
    return dist


def promotion_order(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices from most to least promising: Pareto rank, then crowding distance, then the first coordinate."""
    ranks = pareto_ranks(points)
    dist = [0.0] * len(points)
    for r in set(ranks):
        members = [i for i in range(len(points)) if ranks[i] == r]
        for i, d in zip(members, crowding([points[i] for i in members])):
            dist[i] = d
    return sorted(range(len(points)), key=lambda i: (ranks[i], -dist[i], -points[i][0]))


class MultiObjectiveASHA(FIFOScheduler):
    """Stops a trial at a rung unless it is in the top ``1/reduction_factor`` there (see the module doc).

    Args:
        metrics: the objectives, in the order of ``modes`` (``"max"`` or ``"min"``).
        rungs: the number of fidelities a trial reports (rung ``rungs - 1`` is the full one).
        reduction_factor: ASHA's eta.

    Example:
        >>> MultiObjectiveASHA(["score", "latency_ms.local-ort"], ["max", "min"], rungs=3)  # doctest: +SKIP
    """

    def __init__(self, metrics: list[str], modes: list[str], *, rungs: int, reduction_factor: float = 3.0) -> None:
        super().__init__()
        if len(metrics) != len(modes) or rungs < 2 or reduction_factor <= 1:
            raise ValueError(
                "MultiObjectiveASHA needs one mode per metric, at least 2 rungs and a reduction factor > 1"
            )
        self.metrics, self.signs = list(metrics), [1.0 if m == "max" else -1.0 for m in modes]
        self.rungs, self.eta = int(rungs), float(reduction_factor)
        self.recorded: list[dict[str, list[float]]] = [{} for _ in range(self.rungs)]
        self.num_stopped = 0

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives were given at construction

    def decide(self, trial_id: str, rung: int, values: list[float]) -> str:
        """Record a trial's objectives at a rung; CONTINUE or STOP (the logic, without Ray)."""
        if rung >= self.rungs - 1 or not all(math.isfinite(v) for v in values):
            return TrialScheduler.CONTINUE  # the full fidelity, or a failed candidate that stops itself
        recorded = self.recorded[rung]
        recorded[trial_id] = [s * v for s, v in zip(self.signs, values)]
        ids = list(recorded)
        order = promotion_order([recorded[i] for i in ids])
        keep = max(1, math.ceil(len(ids) / self.eta))
        if ids.index(trial_id) in order[:keep]:
            return TrialScheduler.CONTINUE
        self.num_stopped += 1
        return TrialScheduler.STOP

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if "rung" not in result or result.get("status") != "ok":
            return TrialScheduler.CONTINUE
        values = [float(result.get(m, math.nan)) for m in self.metrics]
        return self.decide(trial.trial_id, int(result["rung"]), values)

    def debug_string(self) -> str:
        return f"MultiObjectiveASHA: {self.num_stopped} stopped; results per rung " + ", ".join(
            str(len(r)) for r in self.recorded
        )
