"""A learned accuracy predictor (APQ-style): fitted on candidates already scored, it ranks new ones in
microseconds, so that thousands can be pre-screened and only the promising evaluated.

Features, for any registered space:
- every parameter of the space one-hot over its choices (plus "absent", for parameters that only
  exist at some depths), and its choice's position scaled to [0, 1] when the choices are ordered numbers;
- what the space's layer list says after pruning: log params, log MACs, log BitOps, and the lowest,
  mean and count-below-thresholds of the weight and activation bit-widths (bit-widths decide the
  accuracy of a compressed network more than any other single choice).

The model is gradient-boosted trees with a Huber loss (scikit-learn; robust to the few dead networks
whose accuracy is chance), refitted from scratch each time (APQ retrains its
predictor as the search goes; fitting on a few hundred rows takes well under a second).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from nasq.errors import NasqError


class CandidateEncoder:
    """Fixed-length numeric features of a space's candidates (see the module docstring)."""

    def __init__(self, space) -> None:
        self.space = space
        self.choices: dict[str, list] = space.choices()
        self.names = [f"{p}={c}" for p, cs in self.choices.items() for c in [*cs, "<absent>"]]
        self.ordered = {p for p, cs in self.choices.items()
                        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cs)}
        self.names += [f"{p}:position" for p in self.choices if p in self.ordered]
        self.names += ["log_params", "log_macs", "log_bitops", "min_w_bits", "min_a_bits", "mean_w_bits",
                       "mean_a_bits", "w_bits<=2", "a_bits<=2", "w_bits<=4", "a_bits<=4"]

    def encode(self, candidate: dict, layers=None) -> np.ndarray:
        """``layers``: the candidate's layer list, when the caller has it already."""
        unknown = set(candidate) - set(self.choices)
        if unknown:
            raise NasqError(f"candidate has parameters unknown to space '{self.space.name}': {sorted(unknown)}")
        out: list[float] = []
        for param, choices in self.choices.items():
            value = candidate.get(param, "<absent>")
            out += [float(value == c) for c in choices] + [float(param not in candidate)]
        for param, choices in self.choices.items():
            if param in self.ordered:
                order = sorted(choices)
                out.append(order.index(candidate[param]) / max(len(order) - 1, 1) if param in candidate else -1.0)
        layers = self.space.layers(candidate) if layers is None else layers
        w = np.array([l.w_bits for l in layers], float)
        a = np.array([l.a_bits for l in layers], float)
        out += [math.log1p(sum(l.params for l in layers)), math.log1p(sum(l.macs for l in layers)),
                math.log1p(sum(l.macs * l.w_bits * l.a_bits for l in layers)), w.min(), a.min(), w.mean(), a.mean(),
                float((w <= 2).sum()), float((a <= 2).sum()), float((w <= 4).sum()), float((a <= 4).sum())]
        return np.array(out)

    def encode_all(self, candidates: Sequence[dict]) -> np.ndarray:
        return np.stack([self.encode(c) for c in candidates])


class AccuracyPredictor:
    """Fits accuracy (or any score) from candidates; :meth:`predict` ranks new ones.

    Example:
        >>> predictor = AccuracyPredictor(space).fit(scored_candidates, accuracies)  # doctest: +SKIP
        >>> best = max(pool, key=lambda c: predictor.predict([c])[0])               # doctest: +SKIP
    """

    MIN_ROWS = 8

    def __init__(self, space, *, seed: int = 0) -> None:
        self.encoder = CandidateEncoder(space)
        self.seed = seed
        self.model = None
        self.fitted_on = 0

    def fit(self, candidates: Sequence[dict], scores: Sequence[float]) -> "AccuracyPredictor":
        from sklearn.ensemble import GradientBoostingRegressor

        y = np.asarray(scores, float)
        if len(candidates) != len(y):
            raise ValueError("one score per candidate")
        keep = np.isfinite(y)
        if keep.sum() < self.MIN_ROWS:
            raise NasqError(f"the accuracy predictor needs at least {self.MIN_ROWS} scored candidates, "
                            f"got {int(keep.sum())}")
        x = self.encoder.encode_all([c for c, k in zip(candidates, keep) if k])
        self.model = GradientBoostingRegressor(loss="huber", n_estimators=300, max_depth=4, learning_rate=0.05, subsample=0.8,
                                               random_state=self.seed).fit(x, y[keep])
        self.fitted_on = int(keep.sum())
        return self

    def predict(self, candidates: Sequence[dict]) -> np.ndarray:
        return self.predict_features(self.encoder.encode_all(candidates))

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Predictions from :class:`CandidateEncoder` features (as a batch scorer computes them)."""
        if self.model is None:
            raise NasqError("the accuracy predictor is not fitted yet")
        return self.model.predict(x)
