"""An evolutionary search over an accuracy predictor (APQ-style), as a Ray Tune searcher.

Expensive evaluations (short training, a supernet) are spent only on candidates a cheap screen
found promising:

1. the first ``startup`` candidates (after any fixed starting points) are random samples;
2. then, whenever ``screen_every`` new results have come in (1: each), the accuracy predictor
   (:class:`nasq.accuracy_predictor.AccuracyPredictor`) is refitted on every candidate scored so far,
   and an evolution over ``pool_size`` candidates (mutations and crossovers of the current Pareto
   fronts, two generations, the better tenth of the first seeding the second; a quarter of the first
   generation are random candidates instead, so that a good region far from every parent can still
   enter the pool) is screened with the predicted score and each target's predicted latency (the
   hardware profiles' predictors);
3. each suggestion is the screened candidate with the largest predicted hypervolume improvement
   over that target's front in (score, log latency), targets taken in turn. Suggestions still
   running count in the front at their predicted values (a "believer" rule), so concurrent trials
   spread along the front instead of piling on one point. A share ``explore`` of suggestions stay
   random, so that the predictor keeps seeing the space it extrapolates into.
4. with constraints per target (``constraints`` in the config), a candidate counts for a target only
   if it meets that target's bounds: only those make up the target's front, and only screened
   candidates predicted to meet them are suggested for it. A share ``bounded_share`` of a constrained
   target's turns (default 3 in 4, spread evenly) takes APQ's rule instead of the hypervolume gain: the
   highest predicted score within its bounds (the gain alone favours the fast end of the front, while a
   user with a budget mostly wants the best model under it; see "Search efficiency" in
   docs/benchmarks.md).

Everything it keeps pickles without the fitted models (they are refitted after a restore).
"""

from __future__ import annotations

import math
import random
from typing import Dict, NamedTuple, Optional

from ray.tune.search import Searcher

from nasq.spaces.base import SearchSpace, canonical_key


def front_2d(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (both coordinates maximized), by decreasing first coordinate."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, reverse=True):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``points`` (both coordinates maximized) and bounded below by ``ref``."""
    area, best_y = 0.0, ref[1]
    for x, y in front_2d([p for p in points if p[0] > ref[0]]):
        if y > best_y:
            area += (x - ref[0]) * (y - best_y)
            best_y = y
    return area


class Entry(NamedTuple):
    """A candidate with its (measured or predicted) score and bounded metrics."""

    candidate: dict
    score: float
    metrics: dict  # latency_ms.<target>, size_bytes, bitops
    feasible: frozenset  # the targets whose constraints it meets


class PredictorEvolution(Searcher):
    """Suggests candidates chosen by an evolution over predicted accuracy and predicted latency.

    Args:
        space: the search space.
        profiles: target name -> hardware profile data (as the run directory's marker holds them).
        metric, mode: the objectives (``score`` maximized, ``latency_ms.<target>`` minimized).
        pool_size: candidates screened with the predictors each time a new result comes in.
        startup: random candidates before the predictor is used.
        screen_every: new results between screens; in between, suggestions come from the last pool.
        screen_workers: Ray actors the screen's cheap scoring is spread over (:mod:`nasq.search.batch`;
            0, or Ray not running: in this process).
        explore: share of later suggestions that stay random.
        bounded_share: share of a constrained target's turns that take the best predicted score within its
            bounds; the others take the largest predicted hypervolume gain.
        points_to_evaluate: fixed candidates evaluated first.
        constraints: target -> :class:`nasq.config.TargetConstraints`.

    Example:
        >>> searcher = PredictorEvolution(space, profiles, metric=objectives, mode=modes, seed=0)  # doctest: +SKIP
    """

    GENERATIONS = 2
    bounded_share = 0.5  # what a search pickled before the option existed keeps doing on resume
    GLOBAL_SHARE = 0.25  # of the first generation: random candidates, not children

    def __init__(self, space: SearchSpace, profiles: dict[str, dict], *, metric: list[str], mode: list[str],
                 seed: int = 0, pool_size: int = 2000, startup: int = 8, screen_every: int = 1, screen_workers: int = 0,
                 explore: float = 0.1, bounded_share: float = 0.75,
                 points_to_evaluate: Optional[list[dict]] = None, constraints: Optional[dict] = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self.space, self.profiles = space, profiles
        self.targets = list(profiles)
        self.constraints = dict(constraints or {})
        self.pool_size, self.startup, self.explore = int(pool_size), int(startup), float(explore)
        self.bounded_share = float(bounded_share)
        self.screen_every = max(1, int(screen_every))
        from nasq.search.batch import BatchScorer

        self.scorer = BatchScorer(space, profiles, workers=screen_workers)
        self.rng = random.Random(seed)
        self.seed = seed
        self.starts = [space.validate(c) for c in (points_to_evaluate or [])]
        self.suggested: dict[str, dict] = {}  # trial id -> candidate
        self.scored: list[Entry] = []  # evaluated at full fidelity
        self.believed: dict[str, Entry] = {}  # trial id -> its prediction, while it runs
        self.seen: set[str] = set()
        self.pool: list[Entry] = []  # screened, with predicted scores
        self.pool_fitted_on = -1
        self.screened = 0  # candidates screened by the predictors, in all
        self.refits = 0
        self.turn = 0
        self._accuracy = None  # the fitted accuracy predictor, not pickled

    # --- Ray Tune's Searcher interface ---------------------------------------------------------

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str) -> Optional[Dict]:
        if self.starts:
            return self._take(trial_id, self.starts.pop(0))
        if len(self.scored) < max(self.startup, self._min_rows()) or self.rng.random() < self.explore:
            return self._take(trial_id, self._random())
        if self.pool_fitted_on < 0 or len(self.scored) - self.pool_fitted_on >= self.screen_every:
            self._screen()
        choice = self._best_in_pool()
        if choice is None:
            return self._take(trial_id, self._random())
        self.believed[trial_id] = choice
        return self._take(trial_id, choice.candidate)

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        candidate = self.suggested.pop(trial_id, None)
        self.believed.pop(trial_id, None)
        if candidate is None or error or not result or result.get("infeasible") or result.get("fidelity", 1.0) < 1.0:
            return  # failed, never evaluated (no target's bounds met), or at a lower fidelity: not comparable
        metrics = {k: v for k, v in result.items() if k.startswith("latency_ms.") or k in ("size_bytes", "bitops")}
        values = [result.get("score"), *(metrics.get(f"latency_ms.{t}") for t in self.targets)]
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            self.scored.append(self._entry(candidate, float(result["score"]), metrics))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_accuracy": None, "pool": [], "pool_fitted_on": -1}

    def save(self, checkpoint_path: str) -> None:  # saved and restored by the wrapping DedupSearcher
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass

    # --- the screen ---------------------------------------------------------------------------------

    @staticmethod
    def _min_rows() -> int:
        from nasq.accuracy_predictor import AccuracyPredictor

        return AccuracyPredictor.MIN_ROWS

    def _entry(self, candidate: dict, score: float, metrics: dict) -> Entry:
        from nasq.search.constraints import infeasible_targets

        broken = set(infeasible_targets(self.constraints, metrics))
        return Entry(candidate, score, metrics, frozenset(t for t in self.targets if t not in broken))

    def _take(self, trial_id: str, candidate: dict) -> dict:
        candidate = self.space.validate(candidate)
        self.seen.add(canonical_key(candidate))
        self.suggested[trial_id] = candidate
        return dict(candidate)

    def _random(self) -> dict:
        found = self._randoms(1, set(), tries=1000)
        # none unseen: the space looks exhausted; the DedupSearcher stops the search on repeats
        return found[0] if found else self.space.sample(seed=self.rng.randrange(2**31))

    def _randoms(self, n: int, taken: set, tries: int) -> list[dict]:
        """Up to ``n`` distinct random candidates, neither seen nor in ``taken`` (which gains their keys),
        from at most ``tries`` samples."""
        out: list[dict] = []
        for _ in range(tries):
            if len(out) >= n:
                break
            c = self.space.sample(seed=self.rng.randrange(2**31))
            key = canonical_key(c)
            if key not in self.seen and key not in taken:
                taken.add(key)
                out.append(c)
        return out

    def _accuracy_predictor(self):
        if self._accuracy is None:
            from nasq.accuracy_predictor import AccuracyPredictor

            self._accuracy = AccuracyPredictor(self.space, seed=self.seed)
        return self._accuracy

    def _predict(self, candidates: list[dict]) -> list[Entry]:
        metrics, features = self.scorer.score(candidates)  # level 1: batches over Ray workers
        scores = self._accuracy_predictor().predict_features(features) if candidates else []
        self.screened += len(candidates)
        return [self._entry(c, float(s), m) for c, s, m in zip(candidates, scores, metrics)]

    def _mutate(self, base: dict, rate: float) -> dict:
        def pick(name, choices):
            keep = name in base and base[name] in choices and self.rng.random() >= rate
            return None if keep else self.rng.choice(choices)

        return self.space.derive(pick, base)

    def _crossover(self, a: dict, b: dict) -> dict:
        def pick(name, choices):
            value = (a if self.rng.random() < 0.5 else b).get(name)
            return value if value in choices else self.rng.choice(choices)

        return self.space.derive(pick, {})

    def _children(self, parents: list[dict], n: int) -> list[dict]:
        rate = 2.0 / max(len(self.space.choices()), 1)
        out, keys, tries = [], set(), 0
        while len(out) < n and tries < 20 * n:
            tries += 1
            if len(parents) > 1 and self.rng.random() < 0.5:
                child = self._mutate(self._crossover(*self.rng.sample(parents, 2)), rate)
            else:
                child = self._mutate(self.rng.choice(parents), rate)
            key = canonical_key(child)
            if key not in self.seen and key not in keys:
                keys.add(key)
                out.append(child)
        return out

    def _screen(self) -> None:
        """Refit the accuracy predictor on everything scored; evolve and predict a new pool."""
        accuracy = self._accuracy_predictor()
        accuracy.fit([e.candidate for e in self.scored], [e.score for e in self.scored])
        self.pool_fitted_on = len(self.scored)
        self.refits += 1
        parents = {canonical_key(e.candidate): e.candidate for t in self.targets for e in self._front(t)}
        for e in sorted(self.scored, key=lambda e: -e.score)[:8]:
            parents.setdefault(canonical_key(e.candidate), e.candidate)
        pool: list[Entry] = []
        seeds = list(parents.values())
        per_generation = max(1, self.pool_size // self.GENERATIONS)
        for g in range(self.GENERATIONS):
            # a share of the first generation from anywhere in the space, so a basin far from every parent
            # can still be found: the predictor ranks them like the children
            fresh = int(per_generation * self.GLOBAL_SHARE) if g == 0 else 0
            children = self._children(seeds, per_generation - fresh)
            children += self._randoms(fresh, {canonical_key(c) for c in children}, tries=4 * fresh)
            generation = self._predict(children)
            pool += generation
            per_target = [self._gains(t, generation) for t in self.targets]
            gains = [max(g) for g in zip(*per_target)]
            ranked = [e for _, e in sorted(zip(gains, generation), key=lambda x: -x[0])]
            seeds = list(parents.values()) + [e.candidate for e in ranked[:max(2, len(ranked) // 10)]]
        self.pool = pool

    # --- choosing --------------------------------------------------------------------------------

    @staticmethod
    def _point(entry: Entry, target: str) -> tuple[float, float]:
        return entry.score, -math.log(entry.metrics[f"latency_ms.{target}"])

    def _front(self, target: str) -> list[Entry]:
        """The target's front among the evaluated candidates that meet its constraints."""
        feasible = [e for e in self.scored if target in e.feasible]
        front = set(front_2d([self._point(e, target) for e in feasible]))
        return [e for e in feasible if self._point(e, target) in front]

    def _gains(self, target: str, predicted: list[Entry]) -> list[float]:
        """Predicted hypervolume improvement of each entry over ``target``'s points (the evaluated and the
        running ones, at their predictions, that meet its constraints); 0 for entries that do not."""
        pts = [self._point(e, target) for e in [*self.scored, *self.believed.values()] if target in e.feasible]
        if not pts:  # nothing meets the target's bounds yet: any candidate that does is progress, the better the more
            return [e.score if target in e.feasible else 0.0 for e in predicted]
        ref = (min(p[0] for p in pts) - 1e-3 * (abs(min(p[0] for p in pts)) + 1), min(p[1] for p in pts) - 0.1)
        base = hypervolume_2d(pts, ref)
        front = front_2d(pts)
        return [hypervolume_2d(front + [self._point(e, target)], ref) - base if target in e.feasible else 0.0
                for e in predicted]

    def _best_in_pool(self) -> Optional[Entry]:
        target = self.targets[self.turn % len(self.targets)]
        k = self.turn // len(self.targets)  # this target's k-th turn: APQ's rule on bounded_share of them, evenly
        bounded = target in self.constraints and int((k + 1) * self.bounded_share) > int(k * self.bounded_share)
        self.turn += 1
        fresh = [e for e in self.pool if target in e.feasible and canonical_key(e.candidate) not in self.seen]
        if not fresh:
            return None
        if bounded:  # APQ's rule: the best predicted score within the bounds
            return max(fresh, key=lambda e: e.score)
        gains = self._gains(target, fresh)
        return fresh[max(range(len(fresh)), key=lambda i: (gains[i], fresh[i].score))]
