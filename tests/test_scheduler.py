"""Multi-objective ASHA's promotion rule, driven by hand (no Ray run)."""

import math

import pytest
from ray.tune.schedulers import TrialScheduler

from nasq.search.scheduler import MultiObjectiveASHA, crowding, pareto_ranks, promotion_order

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def test_pareto_ranks_and_crowding():
    pts = [(3, 1), (1, 3), (2, 2), (1, 1), (0, 0)]
    assert pareto_ranks(pts) == [0, 0, 0, 1, 2]
    dist = crowding([(3, 1), (2, 2), (1, 3)])
    assert dist[0] == dist[2] == math.inf and dist[1] == pytest.approx(2.0)
    # the dominated point comes last; among the non-dominated, the extremes before the middle one
    order = promotion_order([(2, 2), (3, 1), (1, 3), (1, 1)])
    assert order[-1] == 3 and order[2] == 0


def test_a_fast_candidate_is_kept_although_its_score_is_lower():
    """Single-metric ASHA would stop the small network; multi-objective ASHA keeps it: it is on the front."""
    s = MultiObjectiveASHA(["score", "latency_ms.a"], ["max", "min"], rungs=3, reduction_factor=2)
    decisions = [
        s.decide(f"t{i}", 0, [score, lat]) for i, (score, lat) in enumerate([(0.95, 10.0), (0.9, 9.0), (0.85, 8.0)])
    ]
    assert decisions == [CONTINUE, STOP, CONTINUE]  # t1 is 1 of 2 (keep 1); t2 is an extreme of 3 (keep 2)
    assert s.decide("dominated", 0, [0.8, 9.5]) == STOP  # worse than t1 in both objectives
    assert s.decide("fastest", 0, [0.5, 0.5]) == CONTINUE  # the lowest score of all, but the fastest by far
    assert s.num_stopped == 2


def test_top_share_per_rung_and_the_last_rung_never_stops():
    s = MultiObjectiveASHA(["score"], ["max"], rungs=2, reduction_factor=3)
    decisions = [s.decide(f"t{i}", 0, [v]) for i, v in enumerate([0.5, 0.9, 0.1, 0.2, 0.3, 0.95])]
    # keep the top ceil(n/3) of the n recorded so far: 0.5 (1 of 1), 0.9 (best of 2), then worse ones stop
    assert decisions == [CONTINUE, CONTINUE, STOP, STOP, STOP, CONTINUE]
    assert s.decide("t2", 1, [0.0]) == CONTINUE  # the full fidelity: no decision
    assert s.decide("bad", 0, [math.nan]) == CONTINUE  # a failed candidate ends by itself
    assert len(s.recorded[0]) == 6


def test_minimized_metrics_are_flipped():
    s = MultiObjectiveASHA(["latency"], ["min"], rungs=2, reduction_factor=2)
    assert s.decide("slow", 0, [5.0]) == CONTINUE
    assert s.decide("slower", 0, [9.0]) == STOP
    assert s.decide("fast", 0, [1.0]) == CONTINUE


def test_bad_arguments():
    with pytest.raises(ValueError):
        MultiObjectiveASHA(["score"], ["max", "min"], rungs=3)
    with pytest.raises(ValueError):
        MultiObjectiveASHA(["score"], ["max"], rungs=1)
