"""Accuracy estimates: how accurate a compressed candidate will be, at a recorded cost.

One registered interface; the config's ``accuracy.estimate`` names the implementation. Later
estimates (zero-cost proxies, sensitivity, supernets, learned predictors) slot in beside
``short-training``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from nasq.registry import Registry

ESTIMATES: Registry = Registry("accuracy estimate", builtin_modules=("nasq.accuracy",))


@dataclass
class Estimate:
    accuracy: float  # validation accuracy in [0, 1] with pruning and quantization applied
    cost_s: float  # wall-clock seconds spent on this candidate
    model: Any = None  # the trained, compressed model, when the estimate produced one


class AccuracyEstimate(ABC):
    """Scores one candidate's accuracy.

    Contract: :meth:`estimate` returns an :class:`Estimate` with a finite accuracy in [0, 1], or
    raises (the candidate is then recorded as failed with the exception's message). It must be
    deterministic for a given ``seed`` up to floating-point nondeterminism.
    """

    def __init__(self, config) -> None:
        self.config = config

    @abstractmethod
    def estimate(self, space, candidate: dict, data, *, seed: int) -> Estimate: ...


@ESTIMATES.register("short-training")
class ShortTraining(AccuracyEstimate):
    """Train briefly, prune, fine-tune with fake quantization, then measure validation accuracy
    (see :mod:`nasq.train`)."""

    def estimate(self, space, candidate: dict, data, *, seed: int) -> Estimate:
        from nasq.train import TrainSchedule, accuracy, compress_and_train

        c = self.config
        schedule = TrainSchedule(c.train_epochs, c.finetune_epochs, c.batch_size, c.lr, c.finetune_lr)
        model, cost = compress_and_train(space, candidate, data, schedule, seed=seed)
        acc = accuracy(model, data.val)
        if not math.isfinite(acc):
            raise FloatingPointError("validation accuracy is not finite")
        return Estimate(acc, cost, model)
