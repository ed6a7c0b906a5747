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
   spread along the front instead of piling on one point.
   A share ``explore`` of suggestions explore instead (GP-UCB, Srinivas et al. 2010): the candidate, among
   the pool and half as many random ones, with the highest upper confidence bound on its score (a Gaussian
   process's mean plus ``KAPPA`` deviations, :meth:`AccuracyPredictor.upper_bound`) within the bounds. The
   predictor is confidently wrong about regions unlike anything evaluated; a search that only exploits it
   settles in the first good basin (on NAS-Bench-201 under Pixel 3's tightest budget, the best cells are
   a handful with a single live 3x3 convolution, far from the 1x1-convolution basin it finds first). The
   process's features are standardized over the target's candidates as well as the evaluated ones, so
   that a feature no evaluated candidate has yet (that live 3x3 convolution) makes a candidate far.
4. with constraints per target (``constraints`` in the config), a candidate counts for a target only
   if it meets that target's bounds: only those make up the target's front, and only screened
   candidates predicted to meet them are suggested for it. A share ``bounded_share`` of a constrained
   target's turns (default 3 in 4, spread evenly) takes APQ's rule instead of the hypervolume gain: the
   highest predicted score within its bounds (the gain alone favours the fast end of the front, while a
   user with a budget mostly wants the best model under it; see "Search efficiency" in
   docs/benchmarks.md).

5. with a zero-cost proxy (``proxy``, e.g. NASWOT; Abdelfattah et al. 2021 show such proxies make
   sample-based searches several times cheaper), computed at level 1 for the few candidates that matter:
   - the startup candidates are the ``startup`` best by proxy among ``proxy_pool`` random candidates
     (within each constrained target's bounds; for a target without bounds, successive fronts of proxy
     against predicted latency), not random ones ("zero-cost warmup");
   - each screen shortlists, per target, the ``shortlist`` best of the pool (half by predicted score,
     half by predicted gain), computes their proxies, and re-ranks them with a second accuracy predictor
     that has the proxy as a feature (fitted on the evaluated candidates, whose proxies are computed too);
     suggestions come from the shortlist. The first predictor sees only the space's features, cheap enough
     for thousands of candidates; the second is better, but only affordable for a few dozen.

Everything it keeps pickles without the fitted models (they are refitted after a restore); the proxies
computed so far are kept.
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

import numpy as np
from ray.tune.search import Searcher

from nasq.spaces.base import SearchSpace, canonical_key


def front_2d(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (both coordinates maximized), by decreasing first coordinate."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, reverse=True):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _fronts(items: list, point) -> list:
    """``items`` in order of their non-dominated front by ``point`` (both coordinates maximized), each front
    by decreasing first coordinate."""
    out, rest = [], list(items)
    while rest:
        front = set(front_2d([point(e) for e in rest]))
        layer = [e for e in rest if point(e) in front]
        out += sorted(layer, key=lambda e: -point(e)[0])
        rest = [e for e in rest if point(e) not in front]
    return out


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
        explore: share of later suggestions that explore (the highest upper confidence bound on the score).
        bounded_share: share of a constrained target's turns that take the best predicted score within its
            bounds; the others take the largest predicted hypervolume gain.
        points_to_evaluate: fixed candidates evaluated first.
        constraints: target -> :class:`nasq.config.TargetConstraints`.
        proxy: the zero-cost proxy and the batch it sees (:meth:`nasq.search.batch.ScoringWorker.proxies`);
            None: none.
        proxy_pool: random candidates whose proxies choose the startup candidates.
        shortlist: candidates per target and screen that the proxy re-ranks.

    Example:
        >>> searcher = PredictorEvolution(space, profiles, metric=objectives, mode=modes, seed=0)  # doctest: +SKIP
    """

    GENERATIONS = 2
    bounded_share = 0.5  # what a search pickled before the option existed keeps doing on resume
    GLOBAL_SHARE = 0.25  # of the first generation: random candidates, not children
    # what a search pickled before the proxy existed keeps on resume: no proxy
    proxy: dict | None = None
    warm: list | None = None
    proxied = unranked = 0
    KAPPA = 2.0  # exploration's upper bound: the mean plus this many standard deviations
    wide = None  # the last screen's pool and half as many random candidates, with their features, for exploration
    explored = 0  # exploration turns taken

    def __init__(
        self,
        space: SearchSpace,
        profiles: dict[str, dict],
        *,
        metric: list[str],
        mode: list[str],
        seed: int = 0,
        pool_size: int = 2000,
        startup: int = 8,
        screen_every: int = 1,
        screen_workers: int = 0,
        explore: float = 0.25,
        bounded_share: float = 0.75,
        points_to_evaluate: list[dict] | None = None,
        constraints: dict | None = None,
        proxy: dict | None = None,
        proxy_pool: int = 64,
        shortlist: int = 32,
    ) -> None:
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
        self.proxy = dict(proxy) if proxy else None
        self.proxy_pool, self.shortlist = int(proxy_pool), max(1, int(shortlist))
        self.proxies: dict[str, float] = {}  # canonical key -> proxy score (-inf: a network it cannot rank)
        self.warm = None  # the startup candidates, best proxy first (built on first use)
        self.proxied = 0  # proxy computations in all
        self.unranked = 0  # of which the proxy could not rank (dead networks, or it failed on them)
        self._with_proxy = None  # the proxy-aware accuracy predictor, not pickled
        self.wide = None
        self.explored = 0

    # --- Ray Tune's Searcher interface ---------------------------------------------------------

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | None:
        if self.starts:
            return self._take(trial_id, self.starts.pop(0))
        if len(self.scored) < max(self.startup, self._min_rows()):
            warm = self._warm_start() if self.proxy else None
            return self._take(trial_id, warm if warm is not None else self._random())
        if self.pool_fitted_on < 0 or len(self.scored) - self.pool_fitted_on >= self.screen_every:
            self._screen()
        if self.rng.random() < self.explore:
            choice = self._explore_pick()
            return self._take(trial_id, choice.candidate if choice is not None else self._random())
        choice = self._best_in_pool()
        if choice is None and self.proxy and self.pool_fitted_on != len(self.scored):
            self._screen()  # the shortlist ran out before the next screen was due
            choice = self._best_in_pool()
        if choice is None:
            return self._take(trial_id, self._random())
        self.believed[trial_id] = choice
        return self._take(trial_id, choice.candidate)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        candidate = self.suggested.pop(trial_id, None)
        self.believed.pop(trial_id, None)
        if candidate is None or error or not result or result.get("infeasible") or result.get("fidelity", 1.0) < 1.0:
            return  # failed, never evaluated (no target's bounds met), or at a lower fidelity: not comparable
        metrics = {k: v for k, v in result.items() if k.startswith("latency_ms.") or k in ("size_bytes", "bitops")}
        values = [result.get("score"), *(metrics.get(f"latency_ms.{t}") for t in self.targets)]
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            self.scored.append(self._entry(candidate, float(result["score"]), metrics))

    def add_evaluated_candidate(self, candidate: dict, result: dict) -> None:
        """Learn the result of a candidate evaluated on another's suggestion (a front member's float version)."""
        key = f"added-{len(self.seen)}"
        self._take(key, candidate)
        self.on_trial_complete(key, result)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_accuracy": None, "_with_proxy": None, "pool": [], "wide": None, "pool_fitted_on": -1}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"proxies": {}, "proxy_pool": 64, "shortlist": 32, "_with_proxy": None}, **state)

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

    def _predict(self, candidates: list[dict]) -> tuple[list[Entry], np.ndarray]:
        """The candidates with their predicted scores and metrics, and their predictor features."""
        metrics, features = self.scorer.score(candidates)  # level 1: batches over Ray workers
        scores = self._accuracy_predictor().predict_features(features) if candidates else []
        self.screened += len(candidates)
        return [self._entry(c, float(s), m) for c, s, m in zip(candidates, scores, metrics)], np.asarray(features)

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
        features: list[np.ndarray] = []
        seeds = list(parents.values())
        per_generation = max(1, self.pool_size // self.GENERATIONS)
        taken: set = set()  # every pool candidate's key (``_randoms`` adds the random ones')
        for g in range(self.GENERATIONS):
            # a share of the first generation from anywhere in the space, so a basin far from every parent
            # can still be found: the predictor ranks them like the children
            fresh = int(per_generation * self.GLOBAL_SHARE) if g == 0 else 0
            children = self._children(seeds, per_generation - fresh)
            taken |= {canonical_key(c) for c in children}
            children += self._randoms(fresh, taken, tries=4 * fresh)
            generation, x = self._predict(children)
            pool += generation
            features.append(x)
            per_target = [self._gains(t, generation) for t in self.targets]
            gains = [max(g) for g in zip(*per_target)]
            ranked = [e for _, e in sorted(zip(gains, generation), key=lambda x: -x[0])]
            seeds = list(parents.values()) + [e.candidate for e in ranked[: max(2, len(ranked) // 10)]]
        if self.explore > 0:  # exploration ranks the pool and half as many random candidates by an upper bound
            wide, x = self._predict(self._randoms(len(pool) // 2, taken, tries=2 * len(pool)))
            self.wide = (pool + wide, np.concatenate([*features, x]) if wide else np.concatenate(features))
        self.pool = self._rerank_with_proxy(pool) if self.proxy else pool

    # --- the zero-cost proxy ----------------------------------------------------------------------

    def _proxy_of(self, candidates: list[dict]) -> list[float]:
        """Their proxies, computing (at level 1) only those not known yet."""
        keys = [canonical_key(c) for c in candidates]
        todo = {k: c for k, c in zip(keys, candidates) if k not in self.proxies}
        if todo:
            values = self.scorer.proxies(list(todo.values()), self.proxy)
            self.proxies.update(zip(todo, values))
            self.proxied += len(todo)
            self.unranked += sum(not math.isfinite(v) for v in values)
        return [self.proxies[k] for k in keys]

    def _proxy_features(self, values: list[float]) -> np.ndarray:
        """The proxy as predictor columns: its value (a network it cannot rank at the worst value seen,
        less the spread) and whether it could rank it."""
        finite = [v for v in self.proxies.values() if math.isfinite(v)]
        floor = (min(finite) - (max(finite) - min(finite)) - 1.0) if finite else 0.0
        return np.array([[v if math.isfinite(v) else floor, float(not math.isfinite(v))] for v in values])

    def _warm_start(self) -> dict | None:
        """The next startup candidate: the best by proxy among random ones within the bounds."""
        if self.warm is None:
            entries: list[Entry] = []
            taken: set = set()
            for _ in range(20):  # random candidates until proxy_pool meet some target's bounds (or 20 rounds)
                drawn = self._randoms(self.proxy_pool, taken, tries=4 * self.proxy_pool)
                metrics, _ = self.scorer.score(drawn)
                entries += [e for e in (self._entry(c, 0.0, m) for c, m in zip(drawn, metrics)) if e.feasible]
                if len(entries) >= self.proxy_pool or not drawn:
                    break
            entries = entries[: self.proxy_pool]
            values = self._proxy_of([e.candidate for e in entries])
            entries = [e._replace(score=v) for e, v in zip(entries, values)]
            per_target = []
            for t in self.targets:
                mine = [e for e in entries if t in e.feasible]
                if t in self.constraints:  # the best proxy within the bounds first
                    per_target.append(sorted(mine, key=lambda e: -e.score))
                else:  # successive fronts of (proxy, -log latency), each by proxy
                    per_target.append(_fronts(mine, lambda e, t=t: self._point(e, t)))
            order: dict[str, dict] = {}
            for row in zip(*per_target) if per_target else []:  # targets in turn
                for e in row:
                    order.setdefault(canonical_key(e.candidate), e.candidate)
            for rest in per_target:
                for e in rest:
                    order.setdefault(canonical_key(e.candidate), e.candidate)
            self.warm = list(order.values())[: self.startup]
        while self.warm:
            candidate = self.warm.pop(0)
            if canonical_key(candidate) not in self.seen:
                return candidate
        return None

    def _rerank_with_proxy(self, pool: list[Entry]) -> list[Entry]:
        """Each target's shortlist of the pool (half by predicted score, half by predicted gain), re-ranked by
        the proxy-aware predictor; the pool becomes the shortlist."""
        half = max(1, self.shortlist // 2)
        chosen: dict[str, Entry] = {}
        for t in self.targets:
            mine = [e for e in pool if t in e.feasible]
            gains = self._gains(t, mine)
            by_gain = [e for _, e in sorted(zip(gains, mine), key=lambda x: -x[0])]
            for e in sorted(mine, key=lambda e: -e.score)[:half] + by_gain[: self.shortlist - half]:
                chosen.setdefault(canonical_key(e.candidate), e)
        if not chosen:
            return pool
        shortlist = list(chosen.values())
        values = self._proxy_of([e.candidate for e in self.scored + shortlist])  # one batch
        scored_values, values = values[: len(self.scored)], values[len(self.scored) :]
        if self._with_proxy is None:
            from nasq.accuracy_predictor import AccuracyPredictor

            self._with_proxy = AccuracyPredictor(self.space, seed=self.seed)
        model = self._with_proxy.fit(
            [e.candidate for e in self.scored],
            [e.score for e in self.scored],
            extra=self._proxy_features(scored_values),
        )
        scores = model.predict([e.candidate for e in shortlist], extra=self._proxy_features(values))
        return [e._replace(score=float(s)) for e, s in zip(shortlist, scores)]

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
        return [
            hypervolume_2d(front + [self._point(e, target)], ref) - base if target in e.feasible else 0.0
            for e in predicted
        ]

    def _explore_pick(self) -> Entry | None:
        """An exploration turn (targets in turn): the unseen candidate of the last screen's wide pool with the
        highest upper confidence bound on its score (:meth:`AccuracyPredictor.upper_bound`) within the target's
        bounds; for a target without bounds, the largest hypervolume gain at that bound."""
        if not self.wide:
            return None
        target = self.targets[self.explored % len(self.targets)]
        self.explored += 1
        entries, x = self.wide
        mine = [i for i, e in enumerate(entries) if target in e.feasible]
        keep = [i for i in mine if canonical_key(entries[i].candidate) not in self.seen]
        if not keep:
            return None
        # standardized over the target's candidates too: a feature rare among them (and so far never evaluated) counts
        upper = self._accuracy_predictor().upper_bound(x[keep], self.KAPPA, among=x[mine])
        hopes = [entries[i]._replace(score=float(u)) for i, u in zip(keep, upper)]
        if target in self.constraints:
            return max(hopes, key=lambda e: e.score)
        gains = self._gains(target, hopes)
        return hopes[max(range(len(hopes)), key=lambda i: (gains[i], hopes[i].score))]

    def _best_in_pool(self) -> Entry | None:
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
