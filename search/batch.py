"""Cheap scores in batches, spread over Ray workers: the first of nasq's two levels of evaluation.

Level 1 (here): what needs no training (every target's predicted latency, params, MACs, BitOps,
size in bytes, and the accuracy predictor's features) for thousands of candidates at a time, in
batches handed to long-lived Ray actors, with no Tune trial per candidate. The evolution sampler
screens its pools through it.

A zero-cost proxy (``search.screen_proxy``) is level 1 too, though dearer (a forward pass or two
of the network at initialization on a batch of real training data, 0.1-1 s on a CPU): the evolution
computes it only for the candidates its screen shortlists (:meth:`BatchScorer.proxies`).

Level 2: expensive evaluations (training, fine-tuning, measurement) as Ray Tune trials, with the
CPUs (and GPU) each declares (``search.cpus_per_candidate``, ``search.gpus_per_candidate``).

The actors reserve no CPU (``num_cpus=0``): screening is a burst between trials, and a reservation
would deadlock a cluster whose CPUs the trials hold. Each keeps its latency predictors, whose
per-layer costs it remembers, so a warm actor prices a candidate in well under a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def score_batch(
    space, predictors: dict[str, Any], encoder, candidates: Sequence[dict]
) -> tuple[list[dict], np.ndarray]:
    """Each candidate's :func:`nasq.search.objectives.candidate_metrics` and (with an ``encoder``) its
    accuracy-predictor features, computing its layer list once."""
    from nasq.search.objectives import candidate_metrics

    metrics, features = [], []
    for candidate in candidates:
        layers = space.layers(candidate)
        metrics.append(candidate_metrics(space, candidate, predictors, layers))
        if encoder is not None:
            features.append(encoder.encode(candidate, layers))
    return metrics, (np.stack(features) if features else np.zeros((len(candidates), 0)))


class ScoringWorker:
    """What one Ray actor holds: the space, the targets' predictors and the feature encoder."""

    def __init__(self, space, profiles: dict[str, dict], features: bool) -> None:
        """``space``: a space, or a registered space's name."""
        from nasq.accuracy_predictor import CandidateEncoder
        from nasq.hardware_profiles import predictors_for
        from nasq.spaces import create_space

        self.space = create_space(space) if isinstance(space, str) else space
        self.predictors = predictors_for(profiles)
        self.encoder = CandidateEncoder(self.space) if features else None
        self._proxy_batch: tuple | None = None  # (spec, x, y): the real batch the proxy sees

    def score(self, candidates: list[dict]) -> tuple[list[dict], np.ndarray]:
        return score_batch(self.space, self.predictors, self.encoder, candidates)

    def proxies(self, candidates: list[dict], spec: dict) -> list[float]:
        """Each candidate's zero-cost proxy (``spec``: the proxy's ``name``, and the run's ``data`` (a
        :class:`nasq.data.DataSpec` as a dict), which it sees a ``batch_size`` batch of, drawn with ``seed``); -inf
        for a network the proxy cannot rank (a dead network)."""
        from nasq.proxies import proxy_score

        if self._proxy_batch is None or self._proxy_batch[0] != spec:
            from nasq.accuracy import proxy_batch
            from nasq.data import DataSpec, load_dataset

            data = load_dataset(DataSpec(**spec["data"]))
            self._proxy_batch = (spec, *proxy_batch(data.train, spec["batch_size"], spec["seed"]))
        _, x, y = self._proxy_batch
        out = []
        for candidate in candidates:
            try:
                out.append(proxy_score(spec["name"], self.space, candidate, x, y, seed=spec["seed"]))
            except Exception:
                out.append(-math.inf)
        return out


class BatchScorer:
    """Scores lists of candidates in batches of ``batch_size`` over ``workers`` Ray actors (in this
    process when ``workers`` is 0 or Ray is not running). Results come back in input order.

    Picklable (a searcher holding it is saved for ``--resume``): the actors are started again on
    first use after a restore.

    Example:
        >>> scorer = BatchScorer(space, profiles, workers=2)          # doctest: +SKIP
        >>> metrics, features = scorer.score(candidates)               # doctest: +SKIP
    """

    def __init__(
        self, space, profiles: dict[str, dict], *, workers: int = 2, batch_size: int = 250, features: bool = True
    ) -> None:
        self.space, self.profiles = space, profiles
        self.workers, self.batch_size, self.features = int(workers), max(1, int(batch_size)), features
        self._actors: list | None = None
        self._local: ScoringWorker | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_actors": None, "_local": None}

    def _use_ray(self) -> bool:
        if self.workers <= 0:
            return False
        import ray

        return ray.is_initialized()

    def _in_process(self) -> ScoringWorker:
        if self._local is None:
            self._local = ScoringWorker(self.space, self.profiles, self.features)
        return self._local

    def _start(self) -> list:
        if self._actors is None:
            import ray

            actor = ray.remote(num_cpus=0)(ScoringWorker)
            self._actors = [actor.remote(self.space, self.profiles, self.features) for _ in range(self.workers)]
        return self._actors

    def score(self, candidates: Sequence[dict]) -> tuple[list[dict], np.ndarray]:
        candidates = list(candidates)
        if not candidates:
            return [], np.zeros((0, 0))
        if not self._use_ray():
            return self._in_process().score(candidates)
        import ray

        actors = self._start()
        chunks = [candidates[i : i + self.batch_size] for i in range(0, len(candidates), self.batch_size)]
        parts = ray.get([actors[i % len(actors)].score.remote(chunk) for i, chunk in enumerate(chunks)])
        metrics = [m for part, _ in parts for m in part]
        return metrics, np.concatenate([f for _, f in parts])

    def proxies(self, candidates: Sequence[dict], spec: dict) -> list[float]:
        """:meth:`ScoringWorker.proxies`, the candidates split evenly over the workers."""
        candidates = list(candidates)
        if not candidates:
            return []
        if not self._use_ray():
            return self._in_process().proxies(candidates, spec)
        import ray

        actors = self._start()
        size = -(-len(candidates) // len(actors))
        chunks = [candidates[i : i + size] for i in range(0, len(candidates), size)]
        parts = ray.get([actors[i].proxies.remote(chunk, spec) for i, chunk in enumerate(chunks)])
        return [v for part in parts for v in part]

    def close(self) -> None:
        if self._actors:
            import ray

            for a in self._actors:
                ray.kill(a)
        self._actors = None
