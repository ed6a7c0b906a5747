"""Constraints per target: what violates them, and how the search never trains a candidate that meets no
target's bounds (checked with the shipped bit-serial profile's real latency predictor)."""

import math

import pytest
from ray.tune.search import Searcher

from nasq.config import config_from_dict
from nasq.errors import NasqError
from nasq.hardware_profiles import create_predictor, load_profile
from nasq.search.constraints import ConstraintCheck, infeasible_targets, overall_violation, violations
from nasq.search.objectives import candidate_metrics
from nasq.search.results import pareto_front, select_best
from nasq.search.searcher import DedupSearcher


def bounds(**targets):
    return config_from_dict({"targets": list(targets), "constraints": targets}).constraints


def test_violations_are_relative_excess_over_each_bound():
    c = bounds(a={"latency_ms": 2.0, "bitops": 100}, b={"size_bytes": 10})
    metrics = {"latency_ms.a": 1.0, "latency_ms.b": 9.0, "bitops": 150, "size_bytes": 5}
    v = violations(c, metrics)
    assert v["a"] == pytest.approx(0.5) and v["b"] == pytest.approx(-0.5)  # bitops 50% over; size within
    assert infeasible_targets(c, metrics) == ["a"]
    assert overall_violation(c, ["a", "b"], metrics) == pytest.approx(-0.5)  # meets b's: it counts for b
    assert overall_violation(c, ["a", "b", "c"], {**metrics, "size_bytes": 50}) < 0  # c has no bounds
    assert overall_violation(c, ["a", "b"], {**metrics, "size_bytes": 50}) == pytest.approx(0.5)
    assert violations(c, {"bitops": 1})["a"] == math.inf  # a missing latency never passes


def test_config_refuses_constraints_on_unknown_targets_and_empty_bounds():
    with pytest.raises(NasqError, match="constraints.zz: 'zz' is not one of the targets; allowed: local-ort"):
        config_from_dict({"constraints": {"zz": {"latency_ms": 1.0}}})
    with pytest.raises(NasqError, match="constraints.local-ort sets no bound"):
        config_from_dict({"constraints": {"local-ort": {}}})
    with pytest.raises(NasqError, match="unknown key 'constraints.local-ort.latency'"):
        config_from_dict({"constraints": {"local-ort": {"latency": 1.0}}})
    cfg = config_from_dict({"constraints": {"local-ort": {"latency_ms": 0.1}}})
    assert config_from_dict(cfg.to_dict()) == cfg  # round-trips through the run directory's marker


class Scripted(Searcher):
    def __init__(self, suggestions):
        super().__init__(metric=["score", "latency_ms.bitserial-sim"], mode=["max", "min"])
        self.suggestions, self.told = list(suggestions), []

    def suggest(self, trial_id):
        return self.suggestions.pop(0) if self.suggestions else Searcher.FINISHED

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.told.append((trial_id, result, error))


def test_candidates_meeting_no_bounds_are_answered_without_a_trial(space):
    profile = load_profile("bitserial-sim")
    predictor = {"bitserial-sim": create_predictor(profile)}
    pool = sorted(
        (space.sample(seed=i) for i in range(12)),
        key=lambda c: candidate_metrics(space, c, predictor)["latency_ms.bitserial-sim"],
    )
    fast, slow = pool[0], pool[-1]
    limit = candidate_metrics(space, pool[6], predictor)["latency_ms.bitserial-sim"]
    cfg = config_from_dict({"targets": ["bitserial-sim"], "constraints": {"bitserial-sim": {"latency_ms": limit}}})
    check = ConstraintCheck(space, {"bitserial-sim": profile.data}, cfg.constraints)
    objectives = ["score", "latency_ms.bitserial-sim"]
    s = DedupSearcher(Scripted([slow, fast]), space, objectives=objectives, check=check)
    assert s.suggest("t1") == fast  # `slow` broke the bound: never returned for a trial
    ((_, told, error),) = s.inner.told
    assert told["infeasible"] and not error and told["latency_ms.bitserial-sim"] > limit
    assert check.skipped == 1 and check.violation(slow) > 0 >= check.violation(fast)
    # Optuna's samplers read the same violation from a finished trial's params
    assert check.optuna_constraints(type("FrozenTrial", (), {"params": slow})())[0] > 0
    # after a restore (pickled without predictors) it still works
    import pickle

    again = pickle.loads(pickle.dumps(check))
    assert again._predictors is None and again.violation(slow) == pytest.approx(check.violation(slow))
    # a sampler that only offers infeasible candidates ends the search instead of spinning
    s = DedupSearcher(
        Scripted([slow] + [space.sample(seed=100 + i) for i in range(3)]),
        space,
        objectives=objectives,
        check=check,
        max_infeasible=1,
    )
    assert s.suggest("t1") == Searcher.FINISHED


def test_rows_that_break_a_targets_bounds_count_for_no_front_of_it():
    rows = [
        {"cid": "a", "status": "ok", "score": 0.9, "latency_ms": {"t": 1.0}, "infeasible": ["t"]},
        {"cid": "b", "status": "ok", "score": 0.8, "latency_ms": {"t": 2.0}, "infeasible": []},
    ]
    assert [r["cid"] for r in pareto_front(rows, "t")] == ["b"]
    assert select_best(rows, "t")[0]["cid"] == "b"
    with pytest.raises(NasqError, match=r"\(1 broke its constraints\)"):
        select_best(rows[:1], "t")
