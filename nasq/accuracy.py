"""Accuracy estimates: how accurate a compressed candidate will be, at a recorded cost.

One registered interface; the config's ``accuracy.estimate`` names the implementation:

- ``short-training``: train, prune, fine-tune with fake quantization, measure validation accuracy;
- zero-cost proxies on a real batch, at initialization, with pruning and bit-widths applied
  (``grad-norm``, ``snip``, ``synflow``, ``naswot``, ``zico``; see :mod:`nasq.proxies`);
- ``supernet``: weight sharing; a supernet trained once per run, every candidate evaluated with
  inherited weights, pruned and quantized, without training (see :mod:`nasq.supernet`);
  ``supernet-finetune`` fine-tunes the inherited candidate briefly before validating it;
- ``sensitivity``: per-layer loss changes under quantization, measured once per architecture on
  supernet weights and added up for a candidate's bit policy (see :mod:`nasq.sensitivity`);
- baselines any proxy must beat: ``params``, ``flops`` (multiply-accumulates) and ``bitops``
  (MACs x weight bits x activation bits), all after pruning.

Estimates that train have a fidelity (``fidelity_keys``): a fidelity schedule (``accuracy.schedule:
asha``) scores a candidate at rising fractions of its training and stops the unpromising early.

Every estimate yields a ``score`` that the search maximizes; training-based ones also yield the
validation accuracy it equals. A score that is NaN or infinite fails the candidate with the reason.
"""

from __future__ import annotations

import math
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasq.errors import EstimateError
from nasq.registry import Registry

ESTIMATES: Registry = Registry("accuracy estimate", builtin_modules=("nasq.accuracy",))

#: zero-cost proxies, implemented in nasq.proxies (kept out of this module so that it imports no torch)
ZERO_COST_PROXIES = ("grad-norm", "snip", "synflow", "naswot", "zico")
#: layer counts after pruning, from the space's layer list: what a proxy is worth only if it beats
COUNT_BASELINES = {"params": "parameters", "flops": "multiply-accumulates", "bitops": "MACs x w_bits x a_bits"}


@dataclass
class Estimate:
    score: float  # what the search maximizes: higher should mean more accurate
    cost_s: float  # wall-clock seconds spent on this candidate
    accuracy: float | None = None  # validation accuracy with pruning and quantization applied, when measured
    model: Any = None  # the trained, compressed model, when the estimate produced one


class AccuracyEstimate(ABC):
    """Scores one candidate's accuracy.

    Contract: :meth:`estimate` returns an :class:`Estimate` (for estimates that measure accuracy,
    ``score == accuracy`` in [0, 1]) or raises; the candidate is then recorded as failed with the
    exception's message. It must be deterministic for a given ``seed`` up to floating-point
    nondeterminism. Call it through :meth:`run`, which refuses non-finite scores.
    """

    #: config fields that set its fidelity (training time): a fidelity schedule (ASHA) scales them
    fidelity_keys: tuple[str, ...] = ()

    def __init__(self, config, run_dir: str | Path | None = None) -> None:
        self.config = config
        self.run_dir = run_dir  # the search's run directory, where one-off work (a supernet) is kept

    @abstractmethod
    def estimate(self, space, candidate: dict, data, *, seed: int) -> Estimate: ...

    def prepare(self, space, data, *, run_dir, seed: int, log=print) -> dict:
        """One-off work before a search (in the driver), e.g. training a supernet; returns what it
        records in the run directory's marker (its cost, files). Default: nothing."""
        return {}

    def run(self, space, candidate: dict, data, *, seed: int, name: str = "") -> Estimate:
        est = self.estimate(space, candidate, data, seed=seed)
        if not math.isfinite(est.score):
            raise EstimateError(
                f"{name or type(self).__name__} score is {est.score} (a dead network?); the candidate cannot be ranked"
            )
        return est


@ESTIMATES.register("short-training")
class ShortTraining(AccuracyEstimate):
    """Train briefly, prune, fine-tune with fake quantization, then measure validation accuracy
    (see :mod:`nasq.train`)."""

    fidelity_keys = ("train_epochs", "finetune_epochs")

    def estimate(self, space, candidate: dict, data, *, seed: int) -> Estimate:
        from nasq.train import TrainSchedule, accuracy, compress_and_train

        c = self.config
        schedule = TrainSchedule(
            c.train_epochs,
            c.finetune_epochs,
            c.batch_size,
            c.lr,
            c.finetune_lr,
            c.distill_temperature,
            c.distill_weight,
        )
        model, cost = compress_and_train(space, candidate, data, schedule, seed=seed)
        acc = accuracy(model, data.val)
        return Estimate(acc, cost, acc, model)


@ESTIMATES.register("supernet")
class SupernetEstimate(AccuracyEstimate):
    """Validation accuracy of the candidate with weights inherited from a supernet trained once
    (``accuracy.supernet_epochs`` float + ``accuracy.supernet_qat_epochs`` quantization-aware epochs,
    or the checkpoint ``accuracy.supernet_path``). ``cost_s`` is the per-candidate evaluation; the
    supernet's one-off training time is recorded by :meth:`prepare`."""

    CHECKPOINT = "supernet.pt"

    def fingerprint(self, space, data, seed: int) -> str:
        from nasq.supernet import fingerprint

        c = self.config
        return fingerprint(
            space.name,
            data.name,
            seed,
            {
                "epochs": c.supernet_epochs,
                "qat_epochs": c.supernet_qat_epochs,
                "batch_size": c.batch_size,
                "lr": c.lr,
                "train_size": int(len(data.train.y)),
            },
        )

    def checkpoint(self, run_dir) -> Path:
        return Path(self.config.supernet_path) if self.config.supernet_path else Path(run_dir) / self.CHECKPOINT

    def prepare(self, space, data, *, run_dir, seed: int, log=print) -> dict:
        from nasq import supernet

        space.build_pruned(space.supernet_candidate())  # a space without weight sharing refuses here
        path, expected = self.checkpoint(run_dir), self.fingerprint(space, data, seed)
        if self.config.supernet_path or path.exists():  # given, or trained before a crash of this run
            _, meta = supernet.load(path, expected)
            log(f"supernet: reusing {path} (trained in {meta['train_seconds']:.0f} s)")
            return {"checkpoint": str(path), "train_seconds": meta["train_seconds"], "reused": True}
        c = self.config
        log(
            f"supernet: training once for the run ({c.supernet_epochs:g} float + {c.supernet_qat_epochs:g} "
            "quantization-aware epochs, sandwich rule)"
        )
        weights, seconds = supernet.train_supernet(
            space,
            data,
            epochs=c.supernet_epochs,
            qat_epochs=c.supernet_qat_epochs,
            batch_size=c.batch_size,
            lr=c.lr,
            seed=seed,
            log=log,
        )
        supernet.save(path, weights, {"fingerprint": expected, "space": space.name, "train_seconds": seconds})
        log(f"supernet: trained in {seconds:.0f} s; checkpoint {path}")
        return {"checkpoint": str(path), "train_seconds": round(seconds, 1), "reused": False}

    def estimate(self, space, candidate: dict, data, *, seed: int) -> Estimate:
        from nasq import supernet

        if self.run_dir is None and not self.config.supernet_path:
            raise RuntimeError("the supernet estimate needs its run directory (set by the search driver)")
        weights = _cached_weights(str(self.checkpoint(self.run_dir)), self.fingerprint(space, data, seed))
        t0 = time.perf_counter()
        c = self.config
        acc = supernet.evaluate(
            space,
            candidate,
            weights,
            data,
            seed=seed,
            bn_samples=c.bn_samples,
            finetune_epochs=self.finetune_epochs(),
            batch_size=c.batch_size,
            finetune_lr=c.finetune_lr,
        )
        return Estimate(acc, time.perf_counter() - t0, acc)

    def finetune_epochs(self) -> float:
        """Quantization-aware epochs from inherited weights before validation: none for ``supernet``."""
        return 0.0


@ESTIMATES.register("supernet-finetune")
class SupernetFinetune(SupernetEstimate):
    """``supernet``, then quantization-aware fine-tuning of the inherited, pruned, quantized candidate for
    ``accuracy.finetune_epochs`` before it is validated: inherited weights are a much better start than
    random ones, so a fraction of an epoch ranks candidates close to short training at a fraction of
    its cost. The fine-tuning length is its fidelity."""

    fidelity_keys = ("finetune_epochs",)

    def finetune_epochs(self) -> float:
        return self.config.finetune_epochs


@ESTIMATES.register("sensitivity")
class SensitivityEstimate(SupernetEstimate):
    """Compression sensitivity (see :mod:`nasq.sensitivity`): minus the predicted loss of the candidate's
    bit policy, from per-layer loss changes measured on its architecture with supernet weights. The
    table is cached per architecture, so further bit policies of an architecture cost microseconds."""

    def estimate(self, space, candidate: dict, data, *, seed: int) -> Estimate:
        from nasq.sensitivity import architecture_key, sensitivity_table

        path, expected = str(self.checkpoint(self.run_dir)), self.fingerprint(space, data, seed)
        weights = _cached_weights(path, expected)
        t0 = time.perf_counter()
        key = (path, expected, architecture_key(candidate))
        if key not in _TABLES:
            if len(_TABLES) > 4096:
                _TABLES.clear()
            _TABLES[key] = sensitivity_table(
                space, candidate, weights, data, seed=seed, bn_samples=self.config.bn_samples
            )
        loss = _TABLES[key].predicted_loss(space.per_layer(candidate, "w_bits"), space.per_layer(candidate, "a_bits"))
        return Estimate(-loss, time.perf_counter() - t0)


_TABLES: dict = {}
_WEIGHTS: dict = {}


def _cached_weights(path: str, expected: str):
    """A checkpoint's weights, loaded once per process (trials in one worker share them)."""
    from nasq import supernet

    key = (path, expected, os.path.getmtime(path) if os.path.exists(path) else None)
    if key not in _WEIGHTS:
        _WEIGHTS.clear()
        _WEIGHTS[key] = supernet.load(Path(path), expected)[0]
    return _WEIGHTS[key]


def at_fidelity(config, fraction: float):
    """The accuracy config with the estimate's fidelity keys scaled by ``fraction`` (a rung of ASHA)."""
    import dataclasses

    keys = ESTIMATES.get(config.estimate).fidelity_keys
    return dataclasses.replace(config, **{k: getattr(config, k) * fraction for k in keys})


def fidelities(config) -> list[float]:
    """The fractions of the configured training a candidate is scored at: ``[1.0]`` without a schedule,
    else ``reduction_factor ** -(rungs - 1 - k)`` for rung k."""
    if config.schedule == "none":
        return [1.0]
    return [config.reduction_factor ** -(config.rungs - 1 - k) for k in range(config.rungs)]


def proxy_batch(split, size: int, seed: int):
    """A seeded random batch of real training data (the same for every candidate of a run)."""
    import numpy as np

    idx = np.random.default_rng(seed).choice(len(split.y), size=min(size, len(split.y)), replace=False)
    return split.x[idx], split.y[idx]


class ZeroCostProxy(AccuracyEstimate):
    """A zero-cost proxy of :mod:`nasq.proxies` on ``accuracy.proxy_batch_size`` real training samples."""

    proxy = ""

    def estimate(self, space, candidate: dict, data, *, seed: int) -> Estimate:
        from nasq.proxies import proxy_score

        t0 = time.perf_counter()
        x, y = proxy_batch(data.train, self.config.proxy_batch_size, seed)
        score = proxy_score(self.proxy, space, candidate, x, y, seed=seed)
        return Estimate(score, time.perf_counter() - t0)


class CountBaseline(AccuracyEstimate):
    """A count of the pruned network's layers (``params``, ``flops`` or ``bitops``), as a score."""

    count = ""

    def estimate(self, space, candidate: dict, data, *, seed: int) -> Estimate:
        t0 = time.perf_counter()
        score = float(layer_counts(space.layers(candidate))[self.count])
        return Estimate(score, time.perf_counter() - t0)


def layer_counts(layers) -> dict[str, int]:
    """params, flops (MACs), bitops and size_bytes of a pruned, quantized layer list."""
    return {
        "params": sum(l.params for l in layers),
        "flops": sum(l.macs for l in layers),
        "bitops": sum(l.macs * l.w_bits * l.a_bits for l in layers),
        "size_bytes": int(sum(l.params * l.w_bits for l in layers) // 8),
    }


for _name in ZERO_COST_PROXIES:
    ESTIMATES.register(_name)(
        type(
            f"Proxy_{_name.replace('-', '_')}",
            (ZeroCostProxy,),
            {"proxy": _name, "__doc__": f"Zero-cost proxy '{_name}' (see nasq.proxies)."},
        )
    )
for _name, _what in COUNT_BASELINES.items():
    ESTIMATES.register(_name)(
        type(f"Count_{_name}", (CountBaseline,), {"count": _name, "__doc__": f"Baseline: {_what} after pruning."})
    )
