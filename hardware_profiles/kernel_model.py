"""A learned per-kernel latency regressor, stored as plain JSON (no pickle).

Features of one layer: its op (dense conv, depthwise conv, linear), whether it runs int8, its
bit-widths, its channel counts after pruning, kernel, stride, input size, MACs and tensor sizes. The
target is log(latency / MACs): time per MAC levels off for large layers, so beyond the measured sizes
the regressor scales with MACs instead of saturating. The model is scikit-learn's gradient boosting
with shallow trees, whose trees are written out as arrays and evaluated here with numpy.

Example:
    >>> model = fit_kernel_model(layers, precisions, latencies_ms)     # doctest: +SKIP
    >>> KernelModel(model).predict_ms(layer, "int8")                   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nasq.errors import NasqError
from nasq.spaces.base import LayerSpec

FEATURES = (
    "conv",
    "dwconv",
    "linear",
    "int8",
    "w_bits",
    "a_bits",
    "log2_cin",
    "log2_cout",
    "kernel",
    "stride",
    "log2_h_in",
    "log2_macs",
    "log2_in_numel",
    "log2_out_numel",
    "cin_x4",
    "cin_x8",
    "cin_x16",
    "cout_x4",
    "cout_x8",
    "cout_x16",
    "log2_cin_padded16",
    "log2_cout_padded16",
    "chained",
)


def features(layer: LayerSpec, precision: str, chained: bool = False) -> list[float]:
    """The regressor's inputs (FEATURES). Channel alignment matters as much as size: CPU kernels work on
    blocks of 4, 8 or 16 channels and fall back to slower paths for the rest (see predictors.DW_ALIGNMENT);
    without these features the cross-validated median error was 33% instead of 15% on this project's Xeon.
    ``chained``: the layer runs between layers of its own kind and layout (no layout reorders at its
    edges), as measured in chains of identical layers; else as measured alone."""
    int8 = precision == "int8"
    pad = lambda c: -(-c // 16) * 16
    return [
        float(layer.op == "conv"),
        float(layer.op == "dwconv"),
        float(layer.op == "linear"),
        float(int8),
        8.0 if int8 else 32.0,
        8.0 if int8 else 32.0,
        math.log2(layer.cin),
        math.log2(layer.cout),
        float(layer.kernel),
        float(layer.stride),
        math.log2(max(layer.h_in, 1)),
        math.log2(max(layer.macs, 1)),
        math.log2(max(layer.in_numel, 1)),
        math.log2(max(layer.out_numel, 1)),
        *(float(c % a == 0) for c in (layer.cin, layer.cout) for a in (4, 8, 16)),
        math.log2(pad(layer.cin)),
        math.log2(pad(layer.cout)),
        float(chained),
    ]


def fit_kernel_model(
    layers: Sequence[LayerSpec],
    precisions: Sequence[str],
    latency_ms: Sequence[float] | np.ndarray,
    *,
    chained: Sequence[bool] | None = None,
    seed: int = 0,
    n_estimators: int = 250,
    max_depth: int = 5,
) -> dict:
    from sklearn.ensemble import GradientBoostingRegressor

    chained = chained if chained is not None else [False] * len(layers)
    x = np.array([features(l, p, c) for l, p, c in zip(layers, precisions, chained)])
    macs = np.array([max(l.macs, 1) for l in layers], float)
    y = np.log(np.asarray(latency_ms, float) / macs)
    gbr = GradientBoostingRegressor(
        n_estimators=n_estimators, max_depth=max_depth, learning_rate=0.08, subsample=0.8, random_state=seed
    ).fit(x, y)
    trees = []
    for est in gbr.estimators_[:, 0]:
        t = est.tree_
        trees.append(
            {
                "left": t.children_left.tolist(),
                "right": t.children_right.tolist(),
                "feature": t.feature.tolist(),
                "threshold": [round(float(v), 6) for v in t.threshold],
                "value": [round(float(v), 6) for v in t.value[:, 0, 0]],
            }
        )
    return {
        "features": list(FEATURES),
        "target": "log(latency_ms / macs)",
        "init": float(gbr.init_.constant_[0][0]),
        "learning_rate": gbr.learning_rate,
        "trees": trees,
        "fitted_on_layers": len(y),
    }


def validate_kernel_model(model: object, source: str) -> None:
    if (
        not isinstance(model, dict)
        or model.get("features") != list(FEATURES)
        or not isinstance(model.get("trees"), list)
    ):
        raise NasqError(f"profile {source}: kernel_model must have features {list(FEATURES)} and a list of trees")
    for i, tree in enumerate(model["trees"]):
        sizes = {len(tree.get(k, [])) for k in ("left", "right", "feature", "threshold", "value")}
        if len(sizes) != 1 or not sizes.pop():
            raise NasqError(f"profile {source}: kernel_model.trees[{i}] has arrays of different or zero length")


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    """The number of splits on a tree's longest path."""
    depth, level = 0, [0]
    while True:
        level = [c for n in level if left[n] != -1 for c in (left[n], right[n])]
        if not level:
            return depth
        depth += 1


class KernelModel:
    """Evaluates a stored regressor."""

    def __init__(self, model: dict) -> None:
        self.init, self.lr = float(model["init"]), float(model["learning_rate"])
        trees = model["trees"]
        # all trees walked at once, one level per step (a screen prices thousands of layers a second): arrays of
        # trees x nodes, a leaf's children pointing to itself
        width = max(len(t["left"]) for t in trees)
        self.left = np.zeros((len(trees), width), np.int64)
        self.right = np.zeros((len(trees), width), np.int64)
        self.feature = np.zeros((len(trees), width), np.int64)
        self.threshold = np.zeros((len(trees), width))
        self.value = np.zeros((len(trees), width))
        self.depth = 0
        for i, t in enumerate(trees):
            n = len(t["left"])
            left, right = np.asarray(t["left"]), np.asarray(t["right"])
            leaf = left == -1
            self.left[i, :n] = np.where(leaf, np.arange(n), left)
            self.right[i, :n] = np.where(leaf, np.arange(n), right)
            self.feature[i, :n] = np.where(leaf, 0, t["feature"])
            self.threshold[i, :n] = t["threshold"]
            self.value[i, :n] = t["value"]
            self.depth = max(self.depth, _depth(left, right))
        self.rows = np.arange(len(trees))

    def _raw(self, x: np.ndarray) -> float:
        node = np.zeros(len(self.rows), np.int64)
        for _ in range(self.depth):
            go_left = x[self.feature[self.rows, node]] <= self.threshold[self.rows, node]
            node = np.where(go_left, self.left[self.rows, node], self.right[self.rows, node])
        return float(self.init + self.lr * self.value[self.rows, node].sum())

    def predict_ms(self, layer: LayerSpec, precision: str, chained: bool = False) -> float:
        return float(math.exp(self._raw(np.array(features(layer, precision, chained)))) * max(layer.macs, 1))


# --- what to measure: random layers, then more where the regressor errs (nn-Meter's adaptive sampling) ----

#: input sizes real CNNs run their layers at (ResNet / MobileNet: 112..7, SqueezeNet / AlexNet: 55, 27, 13)
COMMON_SIZES = (7, 13, 14, 27, 28, 55, 56, 112)


def random_layers(rng: np.random.Generator, n: int, *, max_macs: float = 3e8) -> list[LayerSpec]:
    """Layers spanning what real CNNs contain: 1x1/3x3/5x5/7x7 dense and depthwise convs from 3 to 1024
    channels on 4..112 pixel inputs (and stems on 96..224-pixel images), and linear layers up to 2048 x 1000.
    Half of them as real CNNs have them: channels a multiple of 8 (16 from 32 up), sizes from COMMON_SIZES.
    CPU kernels run those on their fast paths, at up to twice the speed per MAC of a neighbouring odd
    count (an int8 16->64 3x3 conv at 55x55: 127 us, while 15->56 at 41x41 ran at half its speed per MAC);
    a regressor fitted on odd counts only priced the real topologies' convs up to 2x high."""
    out: list[LayerSpec] = []
    while len(out) < n:
        kind = rng.choice(["conv", "conv", "conv", "dwconv", "linear", "stem"], p=[0.28, 0.2, 0.15, 0.2, 0.07, 0.1])
        aligned = rng.random() < 0.5

        def logc(lo: int, hi: int) -> int:
            c = int(round(2 ** rng.uniform(math.log2(lo), math.log2(hi))))
            step = 16 if c >= 32 else 8
            return max(step, int(round(c / step)) * step) if aligned else c  # noqa: B023 (called this iteration)

        def size(lo: int, hi: int) -> int:
            common = [h for h in COMMON_SIZES if lo <= h <= hi]
            if aligned and common:  # noqa: B023 (called this iteration)
                return int(rng.choice(common))
            return int(round(2 ** rng.uniform(math.log2(lo), math.log2(hi))))

        if kind == "linear":
            spec = LayerSpec("", "linear", logc(16, 2048), logc(10, 1000))
        elif kind == "stem":
            # an image's 3 channels: int8 stems cost far more per MAC than other convs, and not in proportion to
            # their output channels (3->64 3x3 at 224: 905 us, 3->40: 648 us), so they span real stems' widths
            spec = LayerSpec(
                "", "conv", 3, logc(16, 96), int(rng.choice([3, 3, 5, 7])), 2, int(rng.choice([96, 112, 128, 160, 224]))
            )
        elif kind == "dwconv":
            c = logc(8, 1024)
            spec = LayerSpec("", "dwconv", c, c, int(rng.choice([3, 5, 7])), int(rng.choice([1, 2])), size(4, 112))
        else:
            k = int(rng.choice([1, 1, 3, 3, 5])) if kind == "conv" else 1
            spec = LayerSpec("", "conv", logc(8, 1024), logc(8, 1024), k, int(rng.choice([1, 1, 2])), size(4, 112))
        if spec.macs <= max_macs and spec.h_out >= 1:
            out.append(spec)
    return out


def random_chainable(rng: np.random.Generator, n: int, *, max_macs: float = 1.5e8) -> list[LayerSpec]:
    """Shape-preserving float layers (cin == cout, stride 1), which can be measured in chains of
    themselves: dense 1x1 / 3x3 and depthwise 3x3 / 5x5 / 7x7 convs, 8 to 512 channels, 7 to 56 pixels."""
    out: list[LayerSpec] = []
    while len(out) < n:
        c = int(round(2 ** rng.uniform(3, 9)))
        h = int(round(2 ** rng.uniform(math.log2(7), math.log2(56))))
        if rng.random() < 0.5:
            spec = LayerSpec("", "conv", c, c, int(rng.choice([1, 1, 3])), 1, h)
        else:
            spec = LayerSpec("", "dwconv", c, c, int(rng.choice([3, 5, 7])), 1, h)
        if spec.macs <= max_macs:
            out.append(spec)
    return out


def perturb(rng: np.random.Generator, layer: LayerSpec, *, max_macs: float = 3e8) -> LayerSpec:
    """A nearby layer: channels and size scaled by up to 1.5x either way, same op and kernel."""
    for _ in range(20):
        scale = lambda v, lo: max(lo, int(round(v * 2 ** rng.uniform(-0.6, 0.6))))
        if layer.op == "linear":
            spec = LayerSpec("", "linear", scale(layer.cin, 2), scale(layer.cout, 2))
        elif layer.op == "dwconv":
            c = scale(layer.cin, 2)
            spec = LayerSpec("", "dwconv", c, c, layer.kernel, layer.stride, scale(layer.h_in, 2))
        else:
            cin = layer.cin if layer.cin <= 4 else scale(layer.cin, 2)
            spec = LayerSpec("", "conv", cin, scale(layer.cout, 2), layer.kernel, layer.stride, scale(layer.h_in, 2))
        if spec.macs <= max_macs:
            return spec
    return layer


def cross_validated_errors(
    layers: Sequence[LayerSpec],
    precisions: Sequence[str],
    latency_ms: Sequence[float],
    folds: int = 5,
    seed: int = 0,
    chained: Sequence[bool] | None = None,
) -> np.ndarray:
    """Relative error of every measured point, predicted by a model fitted without its fold."""
    n = len(layers)
    order = np.random.default_rng(seed).permutation(n)
    errors = np.zeros(n)
    y = np.asarray(latency_ms, float)
    chained = list(chained) if chained is not None else [False] * n
    for fold in range(folds):
        test = order[fold::folds]
        train = np.setdiff1d(order, test)
        km = KernelModel(
            fit_kernel_model(
                [layers[i] for i in train],
                [precisions[i] for i in train],
                y[train],
                chained=[chained[i] for i in train],
                n_estimators=80,
            )
        )
        for i in test:
            errors[i] = abs(km.predict_ms(layers[i], precisions[i], chained[i]) - y[i]) / y[i]
    return errors
