"""Random networks built from the blocks of real topologies, as a held-out test of ONNX model pricing.

Seven real topologies are few, and ``nasq profile validate`` chooses the ONNX predictor on them. These
networks are many and never fitted on: each stacks 2-4 stages of one or two kinds of block (a ResNet
bottleneck with its Add or Sum, a DenseNet dense block with its BatchNorms and transition, a
ShuffleNet unit with its channel shuffle, a SqueezeNet fire module, an Inception module) behind a stem
(a strided 3x3 or 7x7 conv, a max pool, sometimes an LRN), at 96-224 pixels, with widths and growth
rates off the multiples of 16 that real topologies favour. Weights are random (latency does not depend
on them); a third are quantized to int8 QDQ with ONNX Runtime's tools, as ``nasq best`` exports.
"""

from __future__ import annotations

import numpy as np

OPSET = 17


class _Graph:
    """Nodes and initializers of one network being built."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.count = rng, 0
        self.nodes: list = []
        self.inits: list = []

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def const(self, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._name("w")
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1, relu: bool = True) -> str:
        fan_in = cin // group * k * k
        w = (self.rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(fan_in)).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.1).astype(np.float32)
        y = self.node(
            "Conv",
            [x, self.const(w), self.const(b)],
            kernel_shape=[k, k],
            strides=[stride] * 2,
            pads=[k // 2] * 4,
            group=group,
        )
        return self.node("Relu", [y]) if relu else y

    def batchnorm(self, x: str, c: int) -> str:
        gamma = (1 + 0.1 * self.rng.standard_normal(c)).astype(np.float32)
        return self.node(
            "BatchNormalization",
            [
                x,
                self.const(gamma),
                self.const(np.zeros(c, np.float32)),
                self.const(np.zeros(c, np.float32)),
                self.const(np.ones(c, np.float32)),
            ],
        )


def _residual(g: _Graph, x: str, c: int, h: int) -> tuple[str, int, int]:
    rng = g.rng
    cout = int(rng.choice([1, 2])) * c if rng.random() < 0.4 else c
    stride = 2 if cout != c and h > 7 and rng.random() < 0.6 else 1
    mid = max(8, cout // int(rng.choice([2, 4])))
    y = g.conv(g.conv(x, c, mid, 1), mid, mid, 3, stride)
    y = g.conv(y, mid, cout, 1, relu=False)
    shortcut = x if cout == c and stride == 1 else g.conv(x, c, cout, 1, stride, relu=False)
    y = g.node("Sum" if rng.random() < 0.5 else "Add", [y, shortcut])
    return g.node("Relu", [y]), cout, (h + stride - 1) // stride


def _dense(g: _Graph, x: str, c: int, h: int) -> tuple[str, int, int]:
    rng = g.rng
    growth = int(rng.choice([12, 16, 24, 32]))
    for _ in range(int(rng.integers(2, 6))):
        y = g.conv(g.node("Relu", [g.batchnorm(x, c)]), c, 4 * growth, 1)
        x = g.node("Concat", [x, g.conv(y, 4 * growth, growth, 3)], axis=1)
        c += growth
    if h > 7 and rng.random() < 0.5:  # a transition: BatchNorm, Relu, 1x1 conv halving the channels, 2x2 pool
        x = g.conv(g.node("Relu", [g.batchnorm(x, c)]), c, c // 2, 1, relu=False)
        x = g.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
        c, h = c // 2, h // 2
    return x, c, h


def _shuffle(g: _Graph, x: str, c: int, h: int) -> tuple[str, int, int]:
    groups = 3 if c % 3 == 0 else 2 if c % 2 == 0 else 1
    stride = 2 if h > 7 and g.rng.random() < 0.4 else 1
    mid = max(groups, c // 4 // groups * groups)  # the branch's bottleneck; the branch gives c channels
    y = g.conv(x, c, mid, 1, group=groups)
    if groups > 1:  # the channel shuffle
        y = g.node("Reshape", [y, g.const(np.array([1, groups, mid // groups, h, h], np.int64))])
        y = g.node("Transpose", [y], perm=[0, 2, 1, 3, 4])
        y = g.node("Reshape", [y, g.const(np.array([1, mid, h, h], np.int64))])
    y = g.conv(y, mid, mid, 3, stride, group=mid, relu=False)
    y = g.conv(y, mid, c, 1, group=groups if mid % groups == 0 and c % groups == 0 else 1, relu=False)
    if stride == 1:
        return g.node("Relu", [g.node("Add", [y, x])]), c, h
    pooled = g.node("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    return g.node("Relu", [g.node("Concat", [pooled, y], axis=1)]), 2 * c, (h + 1) // 2


def _fire(g: _Graph, x: str, c: int, h: int) -> tuple[str, int, int]:
    squeeze = max(8, c // int(g.rng.choice([4, 8])))
    expand = int(g.rng.choice([2, 4])) * squeeze
    y = g.conv(x, c, squeeze, 1)
    return g.node("Concat", [g.conv(y, squeeze, expand, 1), g.conv(y, squeeze, expand, 3)], axis=1), 2 * expand, h


def _inception(g: _Graph, x: str, c: int, h: int) -> tuple[str, int, int]:
    u = int(g.rng.choice([8, 16, 32]))
    pooled = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    branches = [
        g.conv(x, c, 4 * u, 1),
        g.conv(g.conv(x, c, 3 * u, 1), 3 * u, 4 * u, 3),
        g.conv(g.conv(x, c, u, 1), u, 2 * u, 5),
        g.conv(pooled, c, 2 * u, 1),
    ]
    return g.node("Concat", branches, axis=1), 12 * u, h


BLOCKS = {"residual": _residual, "dense": _dense, "shuffle": _shuffle, "fire": _fire, "inception": _inception}


def random_block_network(rng: np.random.Generator):
    """A random float network of one or two kinds of block (see module doc); returns (ModelProto, description)."""
    from onnx import TensorProto, helper

    kinds = [str(k) for k in rng.choice(sorted(BLOCKS), size=int(rng.integers(1, 3)), replace=False)]
    res = int(rng.choice([96, 128, 160, 224]))
    g = _Graph(rng)
    c = int(rng.choice([24, 32, 48, 64]))
    x = g.conv("input", 3, c, int(rng.choice([3, 7])), 2)
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    h = (res // 2 + 1) // 2
    if rng.random() < 0.2:
        x = g.node("LRN", [x], size=5)
    stages = int(rng.integers(2, 5))
    for stage in range(stages):
        for _ in range(int(rng.integers(1, 4))):
            x, c, h = BLOCKS[kinds[int(rng.integers(len(kinds)))]](g, x, c, h)
            if c > 1024:  # keep dense and inception stacks from growing without bound
                x, c = g.conv(x, c, 512, 1), 512
        if h > 7 and stage < stages - 1:
            x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
            h = (h + 1) // 2
    classes = int(rng.choice([10, 100, 1000]))
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])])
    w = (rng.standard_normal((classes, c)) / np.sqrt(c)).astype(np.float32)
    g.node("Gemm", [x, g.const(w), g.const(np.zeros(classes, np.float32))], transB=1)
    g.nodes[-1].output[0] = "output"
    graph = helper.make_graph(
        g.nodes,
        "block_network",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, res, res])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, classes])],
        g.inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), f"{'+'.join(kinds)} {res}px"


def block_networks(n: int, seed: int, int8: bool = True) -> dict[str, object]:
    """``n`` random block networks (ModelProtos) by name; every third int8 QDQ when ``int8``."""
    from nasq.ort import quantized_qdq

    rng = np.random.default_rng(seed)
    models = {}
    for i in range(n):
        model, description = random_block_network(rng)
        name = f"net{i} {description}"
        if int8 and i % 3 == 2:
            shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
            model = quantized_qdq(model, [{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(2)])
            name += " int8"
        models[name] = model
    return models
