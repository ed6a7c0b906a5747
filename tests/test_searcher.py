"""The de-duplicating searcher, driven by hand (suggest / on_trial_complete) with a scripted inner searcher."""

from ray.tune.search import Searcher

from nasq.search.samplers import SAMPLERS
from nasq.search.searcher import DedupSearcher
from nasq.spaces.base import canonical_key


class Scripted(Searcher):
    """Suggests a fixed sequence of candidates; records what it is told."""

    def __init__(self, suggestions):
        super().__init__(metric=["accuracy"], mode=["max"])
        self.suggestions = list(suggestions)
        self.told = []
        self.added = []

    def add_evaluated_candidate(self, candidate, result):
        self.added.append((candidate, result))

    def suggest(self, trial_id):
        return self.suggestions.pop(0) if self.suggestions else Searcher.FINISHED

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.told.append((trial_id, result, error))


def test_repeats_are_never_returned_and_are_answered_from_known_results(space, tmp_path):
    a, b = space.sample(0), space.sample(1)
    inner = Scripted([a, a, b, b, a, b])
    s = DedupSearcher(inner, space, objectives=["accuracy"])
    assert s.suggest("t1") == a
    # `a` is running: its repeat is failed at once, the next suggestion is `b`
    assert s.suggest("t2") == b
    assert inner.told == [("t2", None, True)]
    s.on_trial_complete("t1", {"status": "ok", "accuracy": 0.9, "key": "x"})
    s.on_trial_complete("t2", {"status": "failed", "accuracy": float("nan")})
    assert inner.told[-2] == ("t1", {"accuracy": 0.9}, False)
    assert inner.told[-1][2] is True  # failed candidates are errors for the sampler, never NaN values
    # remaining suggestions are all repeats: answered from the cache, then the space is exhausted
    assert s.suggest("t3") == Searcher.FINISHED
    assert ("t3-repeat1", {"accuracy": 0.9}, False) in inner.told
    assert s.repeats_skipped == 4


def test_state_saves_and_restores(space, tmp_path):
    a = space.sample(0)
    s = DedupSearcher(Scripted([a]), space, objectives=["accuracy"])
    assert s.suggest("t1") == a
    s.on_trial_complete("t1", {"status": "ok", "accuracy": 0.5})
    s.save(str(tmp_path / "state.pkl"))
    fresh = DedupSearcher(Scripted([]), space, objectives=["accuracy"])
    fresh.restore(str(tmp_path / "state.pkl"))
    assert fresh.finished == s.finished
    fresh.inner.suggestions = [a]
    assert fresh.suggest("t2") == Searcher.FINISHED  # `a` already finished: not evaluated again


def test_front_members_float_and_int8_versions_are_suggested_next(space, tmp_path):
    """A candidate that finishes on a target's front has its all-float and all-8-bit versions suggested next,
    up to ``front_variants`` in the whole search; the inner searcher learns their results as candidates it
    did not suggest (never as trials of its own); a candidate off every front gets none, and neither does a
    version already seen."""
    from nasq.spaces.base import with_uniform_bits

    a, b, c = space.sample(0), space.sample(1), space.sample(2)
    assert all(with_uniform_bits(x, 32) != x != with_uniform_bits(x, 8) for x in (a, b, c))
    inner = Scripted([a, b, c])
    s = DedupSearcher(inner, space, objectives=["score", "latency_ms.t"], front_variants=3)
    assert s.suggest("1") == a
    s.on_trial_complete("1", {"status": "ok", "score": 0.9, "latency_ms.t": 1.0})  # alone: on the front
    assert s.suggest("2") == with_uniform_bits(a, 32)
    assert s.suggest("3") == with_uniform_bits(a, 8)
    assert s.suggest("4") == b
    s.on_trial_complete("2", {"status": "ok", "score": 0.95, "latency_ms.t": 0.5})  # its int8 version is queued
    s.on_trial_complete("3", {"status": "ok", "score": 0.9, "latency_ms.t": 0.8})  # or running: not again
    s.on_trial_complete("4", {"status": "ok", "score": 0.5, "latency_ms.t": 2.0})  # dominated: nothing
    assert [t for t, _, _ in inner.told] == ["1", "4"]
    assert inner.added == [
        (with_uniform_bits(a, 32), {"score": 0.95, "latency_ms.t": 0.5}),
        (with_uniform_bits(a, 8), {"score": 0.9, "latency_ms.t": 0.8}),
    ]
    assert s.suggest("5") == c
    s.save(str(tmp_path / "state.pkl"))  # what is left of the allowance survives a resume
    s.restore(str(tmp_path / "state.pkl"))
    s.on_trial_complete("5", {"status": "ok", "score": 0.99, "latency_ms.t": 3.0})  # on the front: 1 left
    assert s.suggest("6") == with_uniform_bits(c, 32)
    assert s.suggest("7") == Searcher.FINISHED and s.front_variants == 0


def test_front_versions_the_space_does_not_allow_are_not_queued(space):
    """A registered space may offer no float layers: the all-float version of a front member is then skipped."""
    from nasq.errors import NasqError
    from nasq.spaces.base import with_uniform_bits

    class NoFloat:  # the test space without float layers
        name = space.name

        def validate(self, candidate):
            if any(k.endswith("_bits") and v == 32 for k, v in candidate.items()):
                raise NasqError("32 bits not allowed")
            return space.validate(candidate)

        def derive(self, pick, base=None):  # the uniform versions are derived through the space's choices
            return space.derive(pick, base)

    a = with_uniform_bits(space.sample(0), 4)
    s = DedupSearcher(Scripted([a]), NoFloat(), objectives=["score", "latency_ms.t"], front_variants=2)
    assert s.suggest("1") == a
    s.on_trial_complete("1", {"status": "ok", "score": 0.9, "latency_ms.t": 1.0})
    assert s.suggest("2") == with_uniform_bits(a, 8) and s.front_variants == 1
    assert s.suggest("3") == Searcher.FINISHED


def test_a_sampler_that_cannot_learn_a_front_version_does_not_stop_the_search(space):
    from nasq.spaces.base import with_uniform_bits

    class Refusing(Scripted):
        def add_evaluated_candidate(self, candidate, result):
            raise ValueError("refused")

    a, b = space.sample(0), space.sample(1)
    s = DedupSearcher(Refusing([a, b]), space, objectives=["score", "latency_ms.t"], front_variants=1)
    assert s.suggest("1") == a
    s.on_trial_complete("1", {"status": "ok", "score": 0.9, "latency_ms.t": 1.0})
    version = s.suggest("2")
    assert version == with_uniform_bits(a, 32)
    s.on_trial_complete("2", {"status": "ok", "score": 0.9, "latency_ms.t": 0.5})  # logged, not raised
    assert s.finished[canonical_key(version)]["score"] == 0.9 and s.suggest("3") == b


# --- the evolutionary search over an accuracy predictor ----------------------------------------------

import math  # noqa: E402

import pytest  # noqa: E402

from nasq.config import config_from_dict  # noqa: E402
from nasq.hardware_profiles import create_predictor, load_profile  # noqa: E402
from nasq.search.evolution import PredictorEvolution, hypervolume_2d  # noqa: E402


def test_hypervolume_2d():
    ref = (0.0, 0.0)
    assert hypervolume_2d([(1.0, 1.0)], ref) == 1.0
    assert hypervolume_2d([(2.0, 1.0), (1.0, 2.0)], ref) == 3.0  # two rectangles sharing a unit square
    assert hypervolume_2d([(2.0, 1.0), (1.0, 2.0), (1.0, 1.0)], ref) == 3.0  # a dominated point adds nothing
    assert hypervolume_2d([(-1.0, 5.0)], ref) == 0.0  # below the reference point


def _drive(space, searcher, objective, n):
    """Suggest and complete n candidates one at a time; the (score, -log latency) points found."""
    points, keys = [], set()
    for i in range(n):
        c = searcher.suggest(str(i))
        keys.add(tuple(sorted(c.items())))
        score, latency = objective(c)
        searcher.on_trial_complete(str(i), {"score": score, "latency_ms.sim": latency})
        points.append((score, -math.log(latency)))
    assert len(keys) == n  # never the same candidate twice
    return points


@pytest.fixture(scope="module")
def synthetic(space):
    """A known objective on the real space: more parameters and more bits score higher (a stand-in for
    accuracy, so the test needs no training), latency from the shipped bit-serial simulator's profile."""
    profile = load_profile("bitserial-sim")
    latency = create_predictor(profile)

    def objective(c):
        layers = space.layers(c)
        score = math.log(sum(l.params for l in layers)) + sum(math.log2(l.w_bits * l.a_bits) for l in layers) / len(
            layers
        )
        return score, latency.predict_candidate(space, c).total_ms

    return {"sim": profile.data}, objective


def test_evolution_beats_random_sampling_on_a_known_objective(space, synthetic):
    profiles, objective = synthetic
    n = 30
    randomly = [objective(space.sample(seed=10_000 + i)) for i in range(n)]
    randomly = [(s, -math.log(l)) for s, l in randomly]
    ratios = []
    for seed in range(3):  # one seed's search can be unlucky; the median of three is what is asserted
        evo = PredictorEvolution(
            space,
            profiles,
            metric=["score", "latency_ms.sim"],
            mode=["max", "min"],
            seed=seed,
            pool_size=300,
            startup=8,
            explore=0.0,
        )
        found = _drive(space, evo, objective, n)
        assert evo.screened >= (n - 8) * 150  # the predictors screened far more candidates than were evaluated
        assert evo._accuracy.fitted_on == n - 1  # retrained as results came in
        everything = found + randomly
        ref = (min(p[0] for p in everything) - 0.01, min(p[1] for p in everything) - 0.01)
        assert hypervolume_2d(found, ref) > hypervolume_2d(found[:8], ref)  # the screen improved on its startup
        ratios.append(hypervolume_2d(found, ref) / hypervolume_2d(randomly, ref))
    assert sorted(ratios)[1] > 1.1, ratios


def test_evolution_starts_with_fixed_points_and_resumes_from_a_pickle(space, synthetic):
    import pickle

    profiles, objective = synthetic
    start = space.sample(seed=7)
    evo = PredictorEvolution(
        space,
        profiles,
        metric=["score", "latency_ms.sim"],
        mode=["max", "min"],
        seed=1,
        pool_size=50,
        startup=8,
        points_to_evaluate=[start],
    )
    assert evo.suggest("a") == space.validate(start)
    _drive(space, evo, objective, 10)
    evo.on_trial_complete("a", error=True)  # a failed candidate teaches the predictor nothing
    assert len(evo.scored) == 10
    restored = pickle.loads(pickle.dumps(evo))  # how the wrapping DedupSearcher saves it for --resume
    assert restored._accuracy is None and restored.scored == evo.scored and restored.seen == evo.seen
    c = restored.suggest("b")
    assert tuple(sorted(c.items())) not in {tuple(sorted(x.items())) for x, *_ in evo.scored}


def test_front_2d():
    from nasq.search.evolution import front_2d

    assert front_2d([(1, 1), (2, 1), (1, 2), (0, 3), (0, 0)]) == [(2, 1), (1, 2), (0, 3)]


def test_evolution_suggests_only_candidates_predicted_to_meet_the_bounds(space, synthetic):
    from nasq.accuracy import layer_counts

    profiles, objective = synthetic
    limit = 1.2e8  # BitOps: about the median of the space; exact before evaluation
    constraints = config_from_dict({"targets": ["sim"], "constraints": {"sim": {"bitops": limit}}}).constraints
    evo = PredictorEvolution(
        space,
        profiles,
        metric=["score", "latency_ms.sim"],
        mode=["max", "min"],
        seed=2,
        pool_size=200,
        startup=8,
        explore=0.0,
        constraints=constraints,
    )
    for i in range(14):
        c = evo.suggest(str(i))
        bitops = layer_counts(space.layers(c))["bitops"]
        if i >= 8:
            assert bitops <= limit, (i, bitops)
        score, latency = objective(c)
        evo.on_trial_complete(str(i), {"score": score, "latency_ms.sim": latency, "bitops": bitops, "size_bytes": 1})
    assert all(("sim" in e.feasible) == (e.metrics["bitops"] <= limit) for e in evo.scored)


def test_evolution_screens_every_k_results(space, synthetic):
    profiles, objective = synthetic
    evo = PredictorEvolution(
        space,
        profiles,
        metric=["score", "latency_ms.sim"],
        mode=["max", "min"],
        seed=2,
        pool_size=100,
        startup=8,
        explore=0.0,
        screen_every=4,
    )
    _drive(space, evo, objective, 20)
    # screens after results 8, 12, 16 (suggestions 9..20 come from those pools): 3, not 12
    assert evo.refits == 3 and evo._accuracy.fitted_on == 16


def test_batch_scorer_through_ray_matches_in_process_scoring(space):
    """Level 1 of the two levels of evaluation: the same scores from Ray actors as in this process, in order."""
    import numpy as np
    import ray

    from nasq.search.batch import BatchScorer

    profiles = {t: load_profile(t).data for t in ("xeon-avx512-ort", "bitserial-sim")}
    candidates = [space.sample(seed=i) for i in range(300)]
    local_metrics, local_x = BatchScorer(space, profiles, workers=0).score(candidates)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        scorer = BatchScorer(space, profiles, workers=2, batch_size=64)
        metrics, x = scorer.score(candidates)
        assert len(scorer._actors) == 2
        assert metrics == local_metrics and np.array_equal(x, local_x)
        scorer.close()
    finally:
        ray.shutdown()


def test_evolution_shares_turns_between_hypervolume_gain_and_the_best_score_within_a_constrained_targets_bounds(space):
    from nasq.search.evolution import Entry

    constraints = config_from_dict({"targets": ["sim"], "constraints": {"sim": {"latency_ms": 1.0}}}).constraints
    evo = PredictorEvolution(
        space,
        {"sim": load_profile("bitserial-sim").data},
        metric=["score", "latency_ms.sim"],
        mode=["max", "min"],
        constraints=constraints,
    )
    cands = [space.sample(seed=i) for i in range(5)]
    entry = lambda c, score, ms: evo._entry(c, score, {"latency_ms.sim": ms})
    evo.scored = [entry(cands[0], 0.5, 0.5), entry(cands[4], 0.4, 0.04)]
    fast = entry(cands[1], 0.45, 0.05)  # fills the front's gap: the larger hypervolume gain
    accurate = entry(cands[2], 0.6, 0.9)  # the best score within the 1 ms bound, slower than all: no gain
    too_slow = entry(cands[3], 0.9, 2.0)  # breaks the bound: never suggested
    assert isinstance(fast, Entry) and too_slow.feasible == frozenset()
    evo.pool = [fast, accurate, too_slow]
    assert [evo._best_in_pool() for _ in range(4)] == [fast, accurate, accurate, accurate]  # default: 3 turns in 4
    for share, turns in ((0.5, [fast, accurate] * 2), (0.0, [fast] * 4), (1.0, [accurate] * 4)):
        evo.bounded_share, evo.turn = share, 0
        assert [evo._best_in_pool() for _ in range(4)] == turns, share


def _with_fake_proxy(evo, proxy):
    """The evolution with a stand-in for level 1's zero-cost proxy (so the test needs no network at init)."""
    calls = []

    def proxies(candidates, spec):
        calls.append(len(candidates))
        return [proxy(c) for c in candidates]

    evo.scorer.proxies = proxies
    return calls


def test_evolution_with_a_proxy_starts_from_the_best_proxies_within_the_bounds_and_reranks_a_shortlist(
    space, synthetic
):
    from nasq.accuracy import layer_counts
    from nasq.spaces.base import canonical_key

    profiles, objective = synthetic
    limit = 1.2e8  # BitOps: about the median of the space
    constraints = config_from_dict({"targets": ["sim"], "constraints": {"sim": {"bitops": limit}}}).constraints
    evo = PredictorEvolution(
        space,
        profiles,
        metric=["score", "latency_ms.sim"],
        mode=["max", "min"],
        seed=3,
        pool_size=200,
        startup=8,
        explore=0.0,
        constraints=constraints,
        proxy={"name": "fake"},
        proxy_pool=40,
        shortlist=10,
        screen_every=4,
    )
    proxy = lambda c: objective(c)[0]
    calls = _with_fake_proxy(evo, proxy)
    starts = [evo.suggest(str(i)) for i in range(8)]
    assert calls == [40]  # one batch: 40 random candidates within the bounds
    assert all(layer_counts(space.layers(c))["bitops"] <= limit for c in starts)
    assert sorted(map(proxy, starts), reverse=True) == sorted(evo.proxies.values(), reverse=True)[:8]
    for i, c in enumerate(starts):
        evo.on_trial_complete(
            str(i),
            dict(
                zip(("score", "latency_ms.sim"), objective(c)),
                bitops=layer_counts(space.layers(c))["bitops"],
                size_bytes=1,
            ),
        )
    c = evo.suggest("8")
    # the screen computed the proxy for its shortlist only (at most 10 new ones), and re-ranked it with a
    # predictor that has the proxy as a feature, fitted on the 8 evaluated
    assert 0 < calls[1] <= 10 and len(calls) == 2
    assert 0 < len(evo.pool) <= 10 and all(canonical_key(e.candidate) in evo.proxies for e in evo.pool)
    assert evo._with_proxy.fitted_on == 8 and evo.proxied == 40 + calls[1]
    assert canonical_key(c) in evo.proxies and layer_counts(space.layers(c))["bitops"] <= limit


def test_evolution_with_a_good_proxy_finds_better_candidates_sooner(space, synthetic):
    profiles, objective = synthetic
    n, ratios = 16, []
    for seed in range(3):
        found = {}
        for proxy in (None, {"name": "fake"}):
            evo = PredictorEvolution(
                space,
                profiles,
                metric=["score", "latency_ms.sim"],
                mode=["max", "min"],
                seed=seed,
                pool_size=200,
                startup=8,
                explore=0.0,
                proxy=proxy,
            )
            if proxy:  # a proxy that ranks like the score, with noise
                import random

                noise = random.Random(seed)
                _with_fake_proxy(evo, lambda c, noise=noise: objective(c)[0] + noise.gauss(0, 0.3))
            found[bool(proxy)] = _drive(space, evo, objective, n)
        everything = found[True] + found[False]
        ref = (min(p[0] for p in everything) - 0.01, min(p[1] for p in everything) - 0.01)
        # the startup alone: the best of 64 by proxy beat 8 random candidates
        assert hypervolume_2d(found[True][:8], ref) > hypervolume_2d(found[False][:8], ref)
        ratios.append(hypervolume_2d(found[True], ref) / hypervolume_2d(found[False], ref))
    assert sorted(ratios)[1] > 1.1, ratios


def test_evolution_pickled_before_the_proxy_existed_resumes_without_one(space, synthetic):
    import pickle

    profiles, objective = synthetic
    evo = PredictorEvolution(
        space,
        profiles,
        metric=["score", "latency_ms.sim"],
        mode=["max", "min"],
        seed=4,
        pool_size=50,
        startup=8,
        proxy={"name": "fake"},
    )
    _with_fake_proxy(evo, lambda c: objective(c)[0])
    _drive(space, evo, objective, 10)
    del evo.scorer.proxies  # the stand-in does not pickle; the real one does
    restored = pickle.loads(pickle.dumps(evo))
    assert restored.proxies == evo.proxies and restored.proxy == {"name": "fake"}  # computed proxies are kept
    state = evo.__getstate__()
    for key in ("proxy", "proxy_pool", "shortlist", "proxies", "warm", "proxied", "_with_proxy", "scorer"):
        state.pop(key)
    old = PredictorEvolution.__new__(PredictorEvolution)
    old.__setstate__({**state, "scorer": restored.scorer})
    assert old.proxy is None and old.proxies == {}
    assert old.suggest("x") is not None


def test_evolution_explores_by_the_highest_upper_bound_within_the_bounds(space, synthetic):
    """Exploration turns (``explore``) take, within the target's bounds, the unseen candidate of the last screen's
    wide pool (the pool and random candidates) with the highest upper confidence bound on its score."""
    from nasq.accuracy import layer_counts
    from nasq.spaces.base import canonical_key

    profiles, objective = synthetic
    limit = 1.2e8  # BitOps, as in the test above
    constraints = config_from_dict({"targets": ["sim"], "constraints": {"sim": {"bitops": limit}}}).constraints
    evo = PredictorEvolution(
        space,
        profiles,
        metric=["score", "latency_ms.sim"],
        mode=["max", "min"],
        seed=3,
        pool_size=200,
        startup=8,
        explore=0.5,
        screen_every=3,
        constraints=constraints,
    )
    picks = 0
    for i in range(24):
        turns = evo.explored
        c = evo.suggest(str(i))
        bitops = layer_counts(space.layers(c))["bitops"]
        if evo.explored > turns:
            picks += 1
            assert bitops <= limit
            entries, x = evo.wide
            assert len(entries) > 200  # the pool and random candidates besides
            within = [i for i, e in enumerate(entries) if "sim" in e.feasible]
            bound = evo._accuracy.upper_bound(x, evo.KAPPA, among=x[within])  # standardized over those too
            key = canonical_key(c)
            mine = [b for e, b in zip(entries, bound) if canonical_key(e.candidate) == key]
            rest = [
                b for e, b in zip(entries, bound) if "sim" in e.feasible and canonical_key(e.candidate) not in evo.seen
            ]
            assert mine and mine[0] >= max(rest)
        score, latency = objective(c)
        evo.on_trial_complete(str(i), {"score": score, "latency_ms.sim": latency, "bitops": bitops, "size_bytes": 1})
    assert picks == evo.explored >= 3  # about half of the 16 turns after the startup


@pytest.mark.parametrize("sampler", SAMPLERS.names())
def test_front_versions_are_learned_by_the_inner_searcher(space, sampler):
    """The float version of a front member, evaluated on the DedupSearcher's own suggestion, reaches the
    sampler's history as a finished trial with its values (and, for Optuna, its constraint value), and the
    sampler goes on suggesting afterwards."""
    from nasq.search.driver import build_searcher
    from nasq.spaces.base import canonical_key, with_uniform_bits

    constrained = sampler == "tpe"  # a bound every candidate meets: the constraint values are stored too
    cfg = config_from_dict(
        {
            "space": space.name,
            "targets": ["bitserial-sim"],
            "search": {"sampler": sampler, "num_candidates": 20, "front_variants": 0.5, "uniform_starts": 0},
            **({"constraints": {"bitserial-sim": {"latency_ms": 1e6}}} if constrained else {}),
        }
    )
    s = build_searcher(cfg, space, {"bitserial-sim": load_profile("bitserial-sim").data})
    first = s.suggest("1")
    s.on_trial_complete("1", {"status": "ok", "score": 0.8, "latency_ms.bitserial-sim": 2.0, "fidelity": 1.0})
    version = s.suggest("2")
    assert canonical_key(version) in {canonical_key(with_uniform_bits(first, b)) for b in (32, 8)}
    s.on_trial_complete("2", {"status": "ok", "score": 0.85, "latency_ms.bitserial-sim": 1.5, "fidelity": 1.0})
    if not SAMPLERS.get(sampler).capabilities.optuna:
        learned = [(e.candidate, e.score) for e in s.inner.scored]
        assert learned == [(first, 0.8), (space.validate(version), 0.85)]
    else:
        study = s.inner._ot_study
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        assert [space.validate(dict(t.params)) for t in done] == [first, space.validate(version)]
        assert done[1].values == [0.85, 1.5]
        if constrained:
            assert done[1].system_attrs["constraints"][0] <= 0
    for i in range(3, 6):  # the sampler still suggests, on top of what it learned
        assert s.suggest(str(i)) not in (None, Searcher.FINISHED)


@pytest.mark.parametrize("sampler", SAMPLERS.names())
def test_the_searcher_pickles_as_ray_tune_saves_it(space, sampler):
    """`Tuner` pickles its search algorithm into the run directory before the first trial, and again to resume:
    every sampler, constrained (Optuna's then carry a constraints function), survives the round trip and goes on
    suggesting. (From Optuna 5.1, NSGA-II holds a thread lock, which plain pickling refuses.)"""
    from ray import cloudpickle

    from nasq.search.driver import build_searcher

    cfg = config_from_dict(
        {
            "space": space.name,
            "targets": ["bitserial-sim"],
            "search": {"sampler": sampler, "num_candidates": 8, "uniform_starts": 0},
            "constraints": {"bitserial-sim": {"size_bytes": 1e9}},
        }
    )
    s = build_searcher(cfg, space, {"bitserial-sim": load_profile("bitserial-sim").data})
    first = s.suggest("1")
    s.on_trial_complete(
        "1", {"status": "ok", "score": 0.8, "latency_ms.bitserial-sim": 2.0, "fidelity": 1.0, "size_bytes": 1}
    )
    again = cloudpickle.loads(cloudpickle.dumps(s))
    assert canonical_key(first) in again.finished
    assert again.suggest("2") not in (None, Searcher.FINISHED)
