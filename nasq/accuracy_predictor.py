"""A learned accuracy predictor (APQ-style): fitted on candidates already scored, it ranks new ones in
microseconds, so that thousands can be pre-screened and only the promising evaluated.

Features, for any registered space:
- every parameter of the space one-hot over its choices (plus "absent", for parameters that only
  exist at some depths), and its choice's position scaled to [0, 1] when the choices are ordered numbers;
- the space's own structural features (:meth:`nasq.spaces.base.SearchSpace.features`; NAS-Bench-201: which
  operations lie on live input-to-output paths, which the one-hot edges leave trees and ridge to guess);
- what the space's layer list says after pruning: log params, log MACs, log BitOps, and the lowest,
  mean and count-below-thresholds of the weight and activation bit-widths, and of each layer's lower
  of the two (a layer is as coarse as its coarser operand; bit-widths decide the
  accuracy of a compressed network more than any other single choice).

The model fits the scores' ranks, not the scores: a few dead networks at chance accuracy pull any
least-squares fit of raw scores towards themselves, and only the order matters for screening. It is the
mean of two scikit-learn models of the rank: gradient-boosted trees (depth 3), which find the
interactions once a few hundred candidates are known, and a ridge regression on standardized features
(its penalty chosen by leave-one-out), which extrapolates sensibly from a few dozen (`docs/benchmarks.md`
compares it with trees on the raw scores on NAS-Bench-201 and NAS-Bench-Macro). The predicted rank is mapped back onto the score scale through the fitted scores'
quantiles (linear beyond the best and worst seen, so the order is kept), because a search compares
predictions with measured scores. It is refitted from scratch each time (APQ retrains its predictor as
the search goes; fitting on a few hundred rows takes well under a second).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nasq.errors import NasqError


class CandidateEncoder:
    """Fixed-length numeric features of a space's candidates (see the module docstring)."""

    def __init__(self, space) -> None:
        self.space = space
        self.choices: dict[str, list] = space.choices()
        self.names = [f"{p}={c}" for p, cs in self.choices.items() for c in [*cs, "<absent>"]]
        self.ordered = {
            p
            for p, cs in self.choices.items()
            if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cs)
        }
        self.names += [f"{p}:position" for p in self.choices if p in self.ordered]
        self.names += [
            "log_params",
            "log_macs",
            "log_bitops",
            "min_w_bits",
            "min_a_bits",
            "mean_w_bits",
            "mean_a_bits",
            "w_bits<=2",
            "a_bits<=2",
            "w_bits<=4",
            "a_bits<=4",
            "min(w,a)_bits<=2",
            "min(w,a)_bits<=4",
        ]
        self.structural = list(space.features(space.sample(seed=0)))
        self.names += self.structural

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
        out += [
            math.log1p(sum(l.params for l in layers)),
            math.log1p(sum(l.macs for l in layers)),
            math.log1p(sum(l.macs * l.w_bits * l.a_bits for l in layers)),
            w.min(),
            a.min(),
            w.mean(),
            a.mean(),
            float((w <= 2).sum()),
            float((a <= 2).sum()),
            float((w <= 4).sum()),
            float((a <= 4).sum()),
            float((np.minimum(w, a) <= 2).sum()),
            float((np.minimum(w, a) <= 4).sum()),
        ]
        if self.structural:
            features = self.space.features(candidate)
            out += [float(features[k]) for k in self.structural]
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
        self.model: tuple | None = None
        self.fitted_on = 0
        self._quantiles: tuple[np.ndarray, np.ndarray] | None = None  # (rank, score) of the fitted rows
        self._rows: tuple[np.ndarray, np.ndarray] | None = None  # (features, rank) it was fitted on
        self._gp: dict = {}  # the Gaussian processes behind upper_bound, by ``among``, fitted on first use

    def fit(
        self, candidates: Sequence[dict], scores: Sequence[float], extra: np.ndarray | None = None
    ) -> AccuracyPredictor:
        """``extra``: more feature columns, one row per candidate (a zero-cost proxy's score, say); whoever
        predicts then appends the same columns."""
        from scipy.stats import rankdata
        from sklearn.ensemble import GradientBoostingRegressor
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        y = np.asarray(scores, float)
        if len(candidates) != len(y):
            raise ValueError("one score per candidate")
        keep = np.isfinite(y)
        if keep.sum() < self.MIN_ROWS:
            raise NasqError(
                f"the accuracy predictor needs at least {self.MIN_ROWS} scored candidates, got {int(keep.sum())}"
            )
        x = self.encoder.encode_all([c for c, k in zip(candidates, keep) if k])
        if extra is not None:
            extra = np.asarray(extra, float).reshape(len(candidates), -1)
            x = np.hstack([x, extra[keep]])
        y = y[keep]
        rank = (rankdata(y) - 0.5) / len(y)  # in (0, 1); ties share their mean rank
        trees = GradientBoostingRegressor(
            n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=self.seed
        ).fit(x, rank)
        with np.errstate(all="ignore"):  # constant columns standardize to 0/0; the scaler handles them
            ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12))).fit(x, rank)
        self.model = (trees, ridge)
        q, first = np.unique(rank, return_index=True)  # tied scores share one rank: keep one point per rank
        self._quantiles = (q, y[first])
        self._rows, self._gp = (x, rank), {}
        self.fitted_on = len(y)
        return self

    def upper_bound(self, x: np.ndarray, kappa: float = 2.0, among: np.ndarray | None = None) -> np.ndarray:
        """An optimistic score for each row of features (as :meth:`predict_features` takes them): the mean plus
        ``kappa`` standard deviations of a Gaussian process fitted on the same rows' ranks (Matern 5/2 on
        standardized features, its length scale and noise fitted by marginal likelihood), on the score scale.

        The trees and the ridge say what is likely; they are confidently wrong about a region no evaluated
        candidate resembles. The process's deviation grows with the distance from everything evaluated, so a
        search that ranks by this bound now and then (GP-UCB, Srinivas et al. 2010) goes and looks there.

        ``among``: the features of the candidates the bound will rank (``x`` is usually some of them). The
        features are then standardized over the fitted rows and these together, not over the fitted rows
        alone. It matters for a feature that never varied among the evaluated candidates: standardized over
        them it weighs nothing, and a candidate that has it looks no farther from them than any other. On
        NAS-Bench-201 under Pixel 3's tightest budget no cell evaluated early has a live 3x3 convolution,
        and the best cells have exactly one; over the candidates too, those few are the farthest, and the
        exploration finds them (see "Search efficiency" in docs/benchmarks.md)."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from sklearn.preprocessing import StandardScaler

        if self._rows is None:
            raise NasqError("the accuracy predictor is not fitted yet")
        among = None if among is None else np.asarray(among, float)
        key = None if among is None else hash(np.ascontiguousarray(among).tobytes())
        if key not in self._gp:  # one process per ``among`` (a search ranks the same candidates several times)
            rows, rank = self._rows
            scaler = StandardScaler().fit(rows if among is None else np.vstack([rows, among]))
            kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(5.0, (1e-1, 1e3), nu=2.5) + WhiteKernel(
                1e-2, (1e-6, 1.0)
            )
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # a length scale or the noise at its bound
                gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=self.seed)
                self._gp = {**dict(list(self._gp.items())[-3:]), key: (scaler, gp.fit(scaler.transform(rows), rank))}
        scaler, gp = self._gp[key]
        mean, sd = gp.predict(scaler.transform(np.asarray(x, float)), return_std=True)
        return self.to_score(mean + kappa * sd)

    def predict(self, candidates: Sequence[dict], extra: np.ndarray | None = None) -> np.ndarray:
        x = self.encoder.encode_all(candidates)
        if extra is not None:
            x = np.hstack([x, np.asarray(extra, float).reshape(len(candidates), -1)])
        return self.predict_features(x)

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Predictions from :class:`CandidateEncoder` features (as a batch scorer computes them), with the
        ``extra`` columns the predictor was fitted with appended."""
        if self.model is None:
            raise NasqError("the accuracy predictor is not fitted yet")
        rank = np.mean([m.predict(x) for m in self.model], axis=0)
        return self.to_score(rank)

    def to_score(self, rank: np.ndarray) -> np.ndarray:
        """Predicted ranks onto the score scale: the fitted scores' quantile function, continued linearly
        (with the slope over the top and bottom tenth) beyond the best and worst seen, and strictly
        increasing, so that distinct ranks never collapse onto one score."""
        assert self._quantiles is not None, "fit() first"
        q, ys = self._quantiles
        span = float(ys[-1] - ys[0]) or 1.0
        k = max(1, len(q) // 10)

        def slope(dy: float, dq: float) -> float:  # tied ranks (dq == 0) and flat ends get a small positive slope
            return max(dy / dq if dq > 0 else 0.0, 0.01 * span)

        top = slope(ys[-1] - ys[-1 - k], q[-1] - q[-1 - k]) if len(q) > 1 else span
        low = slope(ys[k] - ys[0], q[k] - q[0]) if len(q) > 1 else span
        rank = np.asarray(rank, float)
        out = np.interp(rank, q, ys)
        out = np.where(rank > q[-1], ys[-1] + (rank - q[-1]) * top, out)
        out = np.where(rank < q[0], ys[0] + (rank - q[0]) * low, out)
        return out + 1e-6 * span * rank
