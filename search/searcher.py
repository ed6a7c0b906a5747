"""A Ray Tune searcher wrapper that never lets the same candidate be evaluated twice."""

from __future__ import annotations

import json
import logging
import pickle
from typing import Any

from ray.tune.search import Searcher

from nasq.spaces.base import SearchSpace, canonical_key

logger = logging.getLogger(__name__)


class DedupSearcher(Searcher):
    """Wraps a searcher (OptunaSearch) and skips suggestions whose canonical key was seen.

    A repeat of a finished candidate is answered to the inner searcher at once with the known
    metrics (so the sampler still learns from it); a repeat of a running or failed one is reported
    as failed. After ``max_repeats`` repeats in a row the space is taken as exhausted.

    ``front_variants``: when a candidate finishes on some target's front (score against that target's
    latency), its all-float and all-8-bit versions, not yet seen, are the next
    suggestions, up to this many in the whole search. A target that runs some widths only as simulated
    float (ONNX Runtime on x86: below 8 bits) otherwise gets a front of candidates slower than their own
    float versions, which it never evaluated. The inner searcher did not suggest these trials; it learns
    their results as finished trials of its own (:func:`teach`), so a sampler that finds the float
    version better models what it learned and does not spend its own trials rediscovering it.

    Example:
        >>> searcher = DedupSearcher(OptunaSearch(space=define, metric=[...], mode=[...]), space)  # doctest: +SKIP
    """

    def __init__(
        self,
        inner: Searcher,
        space: SearchSpace,
        *,
        objectives: list[str],
        max_repeats: int = 200,
        check=None,
        max_infeasible: int = 20_000,
        front_variants: int = 0,
    ) -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner = inner
        self.space = space
        self.objectives = objectives
        self.max_repeats = max_repeats
        self.check = check  # a nasq.search.constraints.ConstraintCheck, when the config sets constraints
        self.max_infeasible = max_infeasible
        self.finished: dict[str, dict | None] = {}  # key -> objective values, None when failed
        self.running: dict[str, str] = {}  # trial id -> key
        self.inner_ids: dict[str, str] = {}  # trial id -> id the inner searcher knows it by
        self.repeats_skipped = 0
        self.front_variants = front_variants  # uniform versions of front members still allowed
        self.queued: list[dict] = []  # those versions, to suggest next
        self.variant_trials: set[str] = set()  # trial ids running one of them

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict | None:
        while self.queued:
            candidate = self.queued.pop(0)
            key = canonical_key(candidate)
            if key not in self.finished and key not in self.running.values():
                self.running[trial_id] = key
                self.variant_trials.add(trial_id)
                return candidate
        repeats = infeasible = 0
        while repeats < self.max_repeats and infeasible < self.max_infeasible:
            attempt = repeats + infeasible
            inner_id = trial_id if attempt == 0 else f"{trial_id}-repeat{attempt}"
            config = self.inner.suggest(inner_id)
            if config is None or config == Searcher.FINISHED:
                return config
            candidate = self.space.validate(config)
            key = canonical_key(candidate)
            if key in self.finished and self.finished[key] is not None:
                self.inner.on_trial_complete(inner_id, result=self.finished[key])
            elif key in self.finished or key in self.running.values():
                self.inner.on_trial_complete(inner_id, error=True)
            elif self.check is not None and (values := self._infeasible(candidate)) is not None:
                self.finished[key] = values  # meets no target's bounds: never trained, answered at once
                self.inner.on_trial_complete(inner_id, result=values)
                self.check.skipped += 1
                infeasible += 1
                continue
            else:
                self.running[trial_id] = key
                self.inner_ids[trial_id] = inner_id
                return config
            self.repeats_skipped += 1
            repeats += 1
        if infeasible >= self.max_infeasible:
            logger.warning("%d suggestions in a row met no target's constraints; stopping", infeasible)
        else:
            logger.warning("%d repeated suggestions in a row: the space looks exhausted; stopping", self.max_repeats)
        return Searcher.FINISHED

    def _infeasible(self, candidate: dict) -> dict | None:
        """The values a candidate that meets no target's bounds is answered with (None if it meets some):
        its predicted latencies and the worst score seen, marked ``infeasible`` (Optuna's samplers rank
        it by its violation through their constraints_func; the evolution ignores it)."""
        from nasq.search.constraints import overall_violation

        metrics = self.check.metrics(candidate)
        if overall_violation(self.check.constraints, self.check.targets, metrics) <= 0:
            return None
        scores = [v["score"] for v in self.finished.values() if v is not None and not v.get("infeasible")]
        values = {m: metrics[m] for m in self.objectives if m in metrics}
        return {**values, "score": min(scores, default=0.0), "infeasible": True}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.variant_trials:
            self.inner.on_trial_result(self.inner_ids.get(trial_id, trial_id), result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self.running.pop(trial_id, None)
        inner_id = self.inner_ids.pop(trial_id, trial_id)
        ok = not error and bool(result) and result.get("status") in ("ok", "stopped")  # stopped: at a lower fidelity
        values = {m: result[m] for m in self.objectives} if ok else None
        if ok:  # what the evolution's constraints and fidelity rules read, beside the objectives
            values.update({k: result[k] for k in ("fidelity", "size_bytes", "bitops") if k in result})
        if key is not None:
            self.finished[key] = values
        if trial_id in self.variant_trials:
            self.variant_trials.discard(trial_id)
            if ok and key is not None:
                try:
                    teach(self.inner, self.space, json.loads(key), values, self.check)
                except Exception as exc:  # a sampler refusing the trial must not stop the search
                    logger.warning("the sampler could not learn front version %s: %s", key[:80], exc)
        else:
            self.inner.on_trial_complete(inner_id, result=values, error=not ok)
        if key is not None and ok and result.get("status") == "ok":
            self._queue_front_variants(key)

    def _queue_front_variants(self, key: str) -> None:
        """Queue the all-float and all-8-bit versions of the candidate ``key`` (see the class doc)."""
        from nasq.spaces.base import with_uniform_bits

        values = self.finished[key]
        if self.front_variants <= 0 or values.get("infeasible") or not self._on_a_front(values):
            return
        candidate = json.loads(key)
        seen = {key, *self.finished, *self.running.values(), *(canonical_key(c) for c in self.queued)}
        # (the bounds check prices the version with the targets' predictors: only for front members)
        variants = [
            v
            for v in (with_uniform_bits(candidate, 32, self.space), with_uniform_bits(candidate, 8, self.space))
            if canonical_key(v) not in seen
            and self._in_space(v)
            and (self.check is None or self._infeasible(v) is None)
        ]
        if not variants:
            return
        variants = variants[: self.front_variants]
        self.front_variants -= len(variants)
        self.queued += variants

    def _in_space(self, candidate: dict) -> bool:
        """Whether the space allows the candidate (a registered space may offer no float or no 8-bit layers)."""
        from nasq.errors import NasqError

        try:
            self.space.validate(candidate)
        except NasqError:
            return False
        return True

    def _on_a_front(self, values: dict) -> bool:
        """Whether no finished candidate is at least as good on the score and one target's latency, and better
        on one of them, for some target (``latency_ms.<target>`` objectives)."""
        from nasq.search.scheduler import dominates

        if "score" not in self.objectives:
            return False
        done = [v for v in self.finished.values() if v is not None and not v.get("infeasible") and v is not values]
        return any(
            not any(dominates((v["score"], -v[lat]), (values["score"], -values[lat])) for v in done)
            for lat in self.objectives
            if lat.startswith("latency_ms.")
        )

    def save(self, checkpoint_path: str) -> None:
        # Ray Tune's own convention (OptunaSearch.save pickles its __dict__); the file lives in the
        # run directory this search wrote, and is read back only by `nasq search --resume`.
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.__dict__, fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.__dict__.update(pickle.load(fh))

    def get_state(self) -> dict[str, Any]:
        return {"finished": dict(self.finished), "running": dict(self.running)}


def teach(inner: Searcher, space: SearchSpace, candidate: dict, values: dict, check=None) -> None:
    """Tell ``inner`` the result ``values`` (objectives, beside fidelity and sizes) of a candidate it did not
    suggest: a searcher with ``add_evaluated_candidate`` (the evolution) takes it itself; Ray's
    ``OptunaSearch`` gets a finished trial in its study (its own ``add_evaluated_point`` takes neither a
    define-by-run space nor several objectives), with the constraint values its sampler would have stored."""
    learn = getattr(inner, "add_evaluated_candidate", None)
    if learn is not None:
        learn(candidate, values)
        return
    study = getattr(inner, "_ot_study", None)
    if study is None:
        logger.debug("%s cannot be told of a trial it did not suggest", type(inner).__name__)
        return
    import optuna
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    fixed = optuna.trial.FixedTrial(candidate)
    space.define(fixed)  # the distributions the define-by-run space samples this candidate from
    metrics = inner.metric if isinstance(inner.metric, list) else [inner.metric]
    system_attrs = {}
    if check is not None:  # what Optuna's constraints_func stores after a trial: feasible at 0 or less
        system_attrs[_CONSTRAINTS_KEY] = [float(check.violation(candidate))]
    study.add_trial(
        optuna.trial.create_trial(
            params=fixed.params,
            distributions=fixed.distributions,
            values=[float(values[m]) for m in metrics],
            system_attrs=system_attrs,
        )
    )
