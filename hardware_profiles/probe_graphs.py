"""The small ONNX graphs a profiler measures, and the tables of what it measures: one layer (alone or chained), a
precision boundary, the float arithmetic that simulates a sub-8-bit activation, an op outside the layer table
(alone, between two convs, or between two int8 convs), a kernel ONNX Runtime runs in place of ONNX ops, and an
Identity graph for the per-call overhead. Shared by the ONNX Runtime and TVM profilers."""

from __future__ import annotations

import math

import numpy as np

from nasq.spaces.base import LayerSpec

OPSET = 17


def layer_graph(spec: LayerSpec, batch: int, rng: np.random.Generator):
    """A one-layer fp32 ONNX model for ``spec`` and its input feed."""
    from onnx import TensorProto, helper, numpy_helper

    if spec.op == "linear":
        x_shape, y_shape = [batch, spec.cin], [batch, spec.cout]
        w = (rng.standard_normal((spec.cout, spec.cin)) / np.sqrt(spec.cin)).astype(np.float32)
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="layer", transB=1)
    else:
        groups = spec.cin if spec.op == "dwconv" else 1
        x_shape = [batch, spec.cin, spec.h_in, spec.h_in]
        y_shape = [batch, spec.cout, spec.h_out, spec.h_out]
        fan_in = spec.cin // groups * spec.kernel**2
        w = rng.standard_normal((spec.cout, spec.cin // groups, spec.kernel, spec.kernel)).astype(np.float32)
        w /= np.sqrt(fan_in)
        pad = spec.kernel // 2
        node = helper.make_node(
            "Conv",
            ["x", "w", "b"],
            ["y"],
            name="layer",
            group=groups,
            kernel_shape=[spec.kernel] * 2,
            strides=[spec.stride] * 2,
            pads=[pad] * 4,
        )
    b = (rng.standard_normal(spec.cout) * 0.1).astype(np.float32)
    graph = helper.make_graph(
        [node],
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return model, {"x": rng.standard_normal(x_shape).astype(np.float32)}


def chain_graph(spec: LayerSpec, n: int, batch: int, rng: np.random.Generator):
    """``n`` copies of a shape-preserving float layer (cin == cout, stride 1) in a row, each with its own
    weights and a Relu, as a network chains them: ONNX Runtime keeps its blocked layout between them."""
    from onnx import TensorProto, helper, numpy_helper

    groups = spec.cin if spec.op == "dwconv" else 1
    shape = [batch, spec.cin, spec.h_in, spec.h_in]
    nodes, inits, prev = [], [], "x"
    for i in range(n):
        w = rng.standard_normal((spec.cout, spec.cin // groups, spec.kernel, spec.kernel)).astype(np.float32)
        w /= np.sqrt(spec.cin // groups * spec.kernel**2)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(spec.cout, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node(
                "Conv",
                [prev, f"w{i}", f"b{i}"],
                [f"c{i}"],
                group=groups,
                kernel_shape=[spec.kernel] * 2,
                pads=[spec.kernel // 2] * 4,
            ),
            helper.make_node("Relu", [f"c{i}"], ["y" if i == n - 1 else f"r{i}"]),
        ]
        prev = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return model, {"x": np.abs(rng.standard_normal(shape)).astype(np.float32)}


def boundary_graph(kind: str, channels: int, height: int):
    """An fp32 -> int8 (``quantize``) or int8 -> fp32 (``dequantize``) boundary as ORT runs it: int8
    convs run channels-last, so a QuantizeLinear is followed by an NCHW -> NHWC Transpose, and a
    DequantizeLinear preceded by the opposite one."""
    from onnx import TensorProto, helper, numpy_helper

    nchw, nhwc = [1, channels, height, height], [1, height, height, channels]
    if kind == "quantize":
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
            helper.make_node("Transpose", ["q"], ["y"], perm=[0, 2, 3, 1]),
        ]
        io = (TensorProto.FLOAT, nchw, TensorProto.UINT8, nhwc)
    else:
        nodes = [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
            helper.make_node("DequantizeLinear", ["t", "s", "z"], ["y"]),
        ]
        io = (TensorProto.UINT8, nhwc, TensorProto.FLOAT, nchw)
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info("x", io[0], io[1])],
        [helper.make_tensor_value_info("y", io[2], io[3])],
        [
            numpy_helper.from_array(np.array(0.05, np.float32), "s"),
            numpy_helper.from_array(np.array(128, np.uint8), "z"),
        ],
    )
    x = np.random.default_rng(0).standard_normal(io[1]).astype(np.float32)
    feed = {"x": x if kind == "quantize" else (x * 40 + 128).clip(0, 255).astype(np.uint8)}
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), feed


def simulated_activation_graph(numel: int):
    """The float arithmetic the exporter writes for a fake-quantized activation below 8 bits."""
    from onnx import TensorProto, helper, numpy_helper

    consts = {"s": 0.05, "z": 7.0, "lo": 0.0, "hi": 15.0}
    nodes = [
        helper.make_node("Div", ["x", "s"], ["a"]),
        helper.make_node("Round", ["a"], ["b"]),
        helper.make_node("Add", ["b", "z"], ["c"]),
        helper.make_node("Clip", ["c", "lo", "hi"], ["d"]),
        helper.make_node("Sub", ["d", "z"], ["e"]),
        helper.make_node("Mul", ["e", "s"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fake_quant",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, numel])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, numel])],
        [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in consts.items()],
    )
    feed = {"x": np.random.default_rng(0).standard_normal((1, numel)).astype(np.float32)}
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), feed


def add_graph(numel: int):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x2"], ["y"])],
        "add",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, numel]) for n in ("x", "x2")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, numel])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


#: ops outside the layer table that real topologies use, measured one by one: (op, attributes, inputs)
OP_PROBES: tuple[tuple[str, dict, int], ...] = (
    ("Add", {}, 2),
    ("Mul", {}, 2),
    ("Sum", {}, 2),
    ("Concat", {"axis": 1}, 2),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, 1),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}, 1),
    ("AveragePool.s2", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, 1),
    ("GlobalAveragePool", {}, 1),
    ("LRN", {"size": 5}, 1),
    ("Softmax", {"axis": 1}, 1),
    ("Transpose", {"perm": [0, 2, 3, 1]}, 1),
    ("Relu", {}, 1),
    ("Sigmoid", {}, 1),
    ("Tanh", {}, 1),
    ("BatchNormalization", {}, 1),
)
#: (channels, height) of the op probes: 25 k to 800 k elements, across the caches (an op's time per element
#: grows as its tensors leave them: costs are interpolated between these sizes, not fitted lines), and a tiny
#: one, the fixed cost of a kernel call (networks run many small ones, which a price proportional to the
#: smallest size measured put far too low)
OP_PROBE_SIZES = ((64, 112), (32, 112), (64, 56), (128, 28), (256, 14), (512, 7), (16, 7))


def op_graph(op: str, attrs: dict, n_inputs: int, channels: int, height: int):
    """One ``op`` on [1, channels, height, height] float input(s); returns (model, feed, work). Inputs are
    distinct tensors, as in a network: a residual add or a concat of one tensor with itself reads half
    the memory, and runs faster than a network's."""
    from onnx import TensorProto, helper, numpy_helper

    shape = [1, channels, height, height]
    inputs = ["x", "x2"][:n_inputs]
    inits = []
    if op == "BatchNormalization":
        inits = [
            numpy_helper.from_array(np.full(channels, v, np.float32), n)
            for n, v in (("g", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0))
        ]
        inputs = ["x", "g", "b", "m", "v"]
    x_shape = [1, channels * height * height] if op == "Softmax" else shape
    xs = [n for n in ("x", "x2") if n in inputs]  # the graph's inputs; the rest are initializers
    node = helper.make_node(op.split(".")[0], inputs, ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        op,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, x_shape) for n in xs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    numel = channels * height * height
    if "Pool" in op and "kernel_shape" in attrs:
        work = pool_work(attrs, channels, height)
    else:
        work = numel * (2 if n_inputs == 2 else 1)
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal(x_shape).astype(np.float32) for n in xs}
    return model, feed, work


#: float ops also measured in context, between two convs, as networks run them (see sandwich_graph): there, with
#: the layout reorders they bring (a ShuffleNet unit's channel shuffle between two 1x1 convs), they take several
#: times their lone probes' times; each is measured over the sandwich named second. A BatchNorm that no conv
#: before it absorbs (DenseNet's, after a concat) runs there as a 1x1 depthwise NCHWc conv, a per-channel scale
#: and shift (:data:`nasq.kernel_pricing.AFFINE`), far dearer than that conv priced as a layer
CONTEXT_PROBES = (("Sum", None), ("Transpose.shuffle", None), ("Relu", "Sum"), ("BatchNormalization", None))
#: the context probes whose op takes the tensor out of the blocked layout and back (a reorder on each side)
BRING_REORDERS = ("Sum", "Transpose.shuffle")


def sandwich_graph(op: str | None, channels: int, height: int):
    """Two float 1x1 convs in a row, which ONNX Runtime runs in its blocked (NCHWc) layout with nothing between,
    and ``op`` between them: ``Sum`` (with another input tensor), ``Transpose.shuffle`` (a 2-group channel
    shuffle: Reshape, 5-D Transpose, Reshape), ``Relu`` (after such a Sum), ``BatchNormalization`` (after a ReLU,
    which keeps the first conv from absorbing it: it runs as a 1x1 depthwise conv in the blocked layout, as after
    DenseNet's concats), or None; returns (model, feed)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shape = [1, channels, height, height]
    inits = [
        numpy_helper.from_array(
            (rng.standard_normal((channels, channels, 1, 1)) / np.sqrt(channels)).astype(np.float32), f"w{i}"
        )
        for i in (1, 2)
    ]
    inits += [numpy_helper.from_array(np.zeros(channels, np.float32), f"b{i}") for i in (1, 2)]
    nodes, inputs, prev = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"])], ["x"], "a"
    if op in ("Sum", "Relu"):
        nodes.append(helper.make_node("Sum", ["a", "x2"], ["s"]))
        inputs, prev = ["x", "x2"], "s"
    if op == "Relu":
        nodes.append(helper.make_node("Relu", ["s"], ["r"]))
        prev = "r"
    if op == "BatchNormalization":  # after the first conv's ReLU, which the conv absorbs and the BatchNorm not
        inits += [
            numpy_helper.from_array(rng.uniform(lo, hi, channels).astype(np.float32), n)
            for n, lo, hi in (("g", 0.5, 1.5), ("bb", -0.1, 0.1), ("m", -0.1, 0.1), ("v", 0.5, 1.5))
        ]
        nodes += [
            helper.make_node("Relu", ["a"], ["r"]),
            helper.make_node("BatchNormalization", ["r", "g", "bb", "m", "v"], ["n"]),
        ]
        prev = "n"
    if op == "Transpose.shuffle":
        inits += [
            numpy_helper.from_array(np.array(v, np.int64), n)
            for n, v in (("s5", [1, 2, channels // 2, height, height]), ("s4", shape))
        ]
        nodes += [
            helper.make_node("Reshape", ["a", "s5"], ["g"]),
            helper.make_node("Transpose", ["g"], ["t"], perm=[0, 2, 1, 3, 4]),
            helper.make_node("Reshape", ["t", "s4"], ["u"]),
        ]
        prev = "u"
    nodes.append(helper.make_node("Conv", [prev, "w2", "b2"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "sandwich",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return model, {n: rng.standard_normal(shape).astype(np.float32) for n in inputs}


#: float ops also measured between two int8 convs, in the float island ONNX Runtime runs them in there (dequantize,
#: the op, quantize), which costs more than its kernels' lone probes add up to (a BatchNorm island after a
#: concat, DenseNet's, most; see int8_sandwich_graph)
INT8_CONTEXT_PROBES = ("BatchNormalization", "Sum", "Tanh")


def int8_sandwich_graph(op: str | None, channels: int, height: int):
    """Two 1x1 convs, int8 QDQ: the first's output concatenated with a second input (``channels`` channels in all,
    which no quantizer folds into the conv before it), then ``op`` on it (``BatchNormalization``, with the ReLU
    that follows it in DenseNet; ``Sum`` with a third, float input, and the ReLU after a residual sum; or a unary
    op), then the second conv; None: no op. Returns (model, feed)."""
    from onnx import TensorProto, helper, numpy_helper

    from nasq.ort import quantized_qdq

    rng = np.random.default_rng(0)
    half = max(channels // 2, 1)
    shape = [1, half, height, height]
    inits = [
        numpy_helper.from_array((rng.standard_normal((co, ci, 1, 1)) / np.sqrt(ci)).astype(np.float32), name)
        for name, co, ci in (("w1", half, half), ("w2", half, 2 * half))
    ]
    inits += [numpy_helper.from_array(np.zeros(half, np.float32), n) for n in ("b1", "b2")]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Concat", ["r", "x2"], ["cat"], axis=1),
    ]
    prev = "cat"
    if op == "BatchNormalization":
        inits += [
            numpy_helper.from_array((v + 0.1 * rng.random(2 * half)).astype(np.float32), n)
            for n, v in (("g", 1.0), ("be", 0.1), ("mu", 0.0), ("var", 1.0))
        ]
        nodes += [
            helper.make_node(op, ["cat", "g", "be", "mu", "var"], ["bn"]),
            helper.make_node("Relu", ["bn"], ["o"]),
        ]
        prev = "o"
    elif op == "Sum":
        nodes += [helper.make_node(op, ["cat", "x3"], ["s"]), helper.make_node("Relu", ["s"], ["o"])]
        prev = "o"
    elif op is not None:
        nodes.append(helper.make_node(op, ["cat"], ["o"]))
        prev = "o"
    nodes.append(helper.make_node("Conv", [prev, "w2", "b2"], ["y"]))
    inputs = {"x": shape, "x2": shape, **({"x3": [1, 2 * half, height, height]} if op == "Sum" else {})}
    graph = helper.make_graph(
        nodes,
        "int8_sandwich",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    feed = {n: np.abs(rng.standard_normal(s)).astype(np.float32) for n, s in inputs.items()}
    return quantized_qdq(model, [feed]), feed


def pool_work(attrs: dict, channels: int, height: int) -> int:
    """A pool's work as nasq.kernel_pricing counts it: output elements x window."""
    k, stride, pad = attrs["kernel_shape"][0], attrs["strides"][0], attrs["pads"][0]
    out = (height + 2 * pad - k) // stride + 1
    return channels * out * out * k * k


def qlinear_add_graph(channels: int, height: int):
    """A residual add between int8 layers as ORT runs it: DequantizeLinear on both inputs, Add,
    QuantizeLinear, which ORT fuses into one QLinearAdd; returns (model, feed, work)."""
    from onnx import TensorProto, helper, numpy_helper

    shape = [1, height, height, channels]
    nodes = [
        helper.make_node("DequantizeLinear", ["a", "s", "z"], ["fa"]),
        helper.make_node("DequantizeLinear", ["b", "s", "z"], ["fb"]),
        helper.make_node("Add", ["fa", "fb"], ["sum"]),
        helper.make_node("QuantizeLinear", ["sum", "s2", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qlinear_add",
        [helper.make_tensor_value_info(n, TensorProto.UINT8, shape) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, shape)],
        [
            numpy_helper.from_array(np.array(0.05, np.float32), "s"),
            numpy_helper.from_array(np.array(0.1, np.float32), "s2"),
            numpy_helper.from_array(np.array(128, np.uint8), "z"),
        ],
    )
    rng = np.random.default_rng(0)
    feed = {n: rng.integers(0, 256, shape, dtype=np.uint8) for n in ("a", "b")}
    return (
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]),
        feed,
        2 * channels * height * height,
    )


#: the kernels ONNX Runtime runs in place of ONNX ops after its graph optimizations (see
#: nasq.ort.executed_kernels), measured as themselves: blocked-layout (NCHWc) reorders and pools,
#: channels-last int8 pools and concats, and the parts of a precision boundary; each as (op, domain, attributes)
RUNTIME_PROBES: tuple[tuple[str, str, dict], ...] = (
    ("nchwc.ReorderInput", "com.microsoft.nchwc", {}),
    ("nchwc.ReorderOutput", "com.microsoft.nchwc", {}),
    ("nchwc.MaxPool", "com.microsoft.nchwc", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("nchwc.AveragePool", "com.microsoft.nchwc", {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}),
    ("nchwc.AveragePool.s2", "com.microsoft.nchwc", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0]}),
    ("nchwc.GlobalAveragePool", "com.microsoft.nchwc", {}),
    ("NhwcMaxPool", "com.microsoft", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("QLinearConcat", "com.microsoft", {"axis": 3}),
    ("QLinearConcat.copy", "com.microsoft", {"axis": 3}),
    ("QLinearGlobalAveragePool", "com.microsoft", {"channels_last": 1}),
    ("QuantizeLinear", "", {}),
    ("DequantizeLinear", "", {}),
    ("Transpose.uint8", "", {"perm": [0, 2, 3, 1]}),
    # int8 kernels that run many times slower on uint8 than their float probe: a max pool left in NCHW (after a
    # float LRN), a strided average pool, and the channel shuffle, which ORT turns into a 5-D transpose in NHWC
    ("MaxPool.uint8", "", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    (
        "QLinearAveragePool",
        "com.microsoft",
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "channels_last": 1},
    ),
    ("Transpose.uint8.shuffle", "", {"perm": [0, 4, 3, 1, 2]}),
    ("Transpose.shuffle", "", {"perm": [0, 2, 1, 3, 4]}),
    # layout transposes by direction and by channel count: back to NCHW (out of an int8 conv into a float op)
    # costs more per element than into NHWC, and an image's 3 channels more again
    ("Transpose.uint8.nchw", "", {"perm": [0, 3, 1, 2]}),
    ("Transpose.nchw", "", {"perm": [0, 3, 1, 2]}),
    ("Transpose.uint8.c3", "", {"perm": [0, 2, 3, 1]}),
    ("Transpose.c3", "", {"perm": [0, 2, 3, 1]}),
    ("Transpose.uint8.nchw.c3", "", {"perm": [0, 3, 1, 2]}),
    ("Transpose.nchw.c3", "", {"perm": [0, 3, 1, 2]}),
)


def runtime_graph(op: str, domain: str, attrs: dict, channels: int, height: int):
    """One of RUNTIME_PROBES on a [1, channels, height, height] tensor (channels-last for the int8 ones);
    returns (model, feed, work), work as nasq.kernel_pricing prices the kernel."""
    from onnx import TensorProto, helper, numpy_helper

    f32, u8 = TensorProto.FLOAT, TensorProto.UINT8
    nchw, nhwc = [1, channels, height, height], [1, height, height, channels]
    numel = channels * height * height
    q = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "z"),
    ]
    op_type = op.split(".")[1] if op.startswith("nchwc.") else op.split(".")[0]
    inputs, inits, work = ["x"], [], numel
    x_type, shape = f32, nchw
    if op == "nchwc.ReorderOutput":
        attrs = {**attrs, "channels": channels}
    elif "Pool" in op and "kernel_shape" in attrs:
        work = pool_work(attrs, channels, height)
    if op in ("NhwcMaxPool", "QLinearConcat", "QLinearConcat.copy", "QLinearGlobalAveragePool", "QLinearAveragePool"):
        x_type, shape = u8, nhwc
    elif op == "Transpose.uint8.shuffle":  # a channel shuffle of 2 groups as ORT runs it between int8 layers
        x_type, shape = u8, [1, height, height, 2, channels // 2]
    elif op == "Transpose.shuffle":  # ShuffleNet's float channel shuffle: [1, groups, channels / groups, h, w]
        shape = [1, 2, channels // 2, height, height]
    elif op.startswith("Transpose."):  # a layout transpose: NCHW -> NHWC, or NHWC -> NCHW (".nchw")
        if op.endswith(".c3"):  # an image's channels, on about as many elements
            channels, height = 3, max(1, round(height * math.sqrt(channels / 3)))
        shape = [1, height, height, channels] if ".nchw" in op else [1, channels, height, height]
        numel = work = channels * height * height
        x_type = u8 if op.startswith("Transpose.uint8") else f32
    if op == "QLinearConcat":  # inputs on their own scales, as a quantizer calibrates them: requantized, not copied
        inputs, work = ["s", "z", "x", "s1", "z", "x2", "s2", "z"], 2 * numel
        inits = q + [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("s1", 0.07), ("s2", 0.03))]
    elif op == "QLinearConcat.copy":  # inputs on the output's scale: copied (see kernel_pricing.requantized_share)
        inputs, work, inits = ["s", "z", "x", "s", "z", "x2", "s", "z"], 2 * numel, q
    elif op in ("QLinearGlobalAveragePool", "QLinearAveragePool"):
        inputs, inits = ["x", "s", "z", "s", "z"], q
    elif op == "QuantizeLinear":
        inputs, inits = ["x", "s", "z"], q
    elif op == "DequantizeLinear":
        inputs, inits, x_type = ["x", "s", "z"], q, u8
    elif op == "MaxPool.uint8":
        x_type = u8
    node = helper.make_node(op_type, inputs, ["y"], domain=domain, **attrs)
    y_type = f32 if op == "DequantizeLinear" else u8 if op == "QuantizeLinear" or x_type == u8 else f32
    xs = [n for n in ("x", "x2") if n in inputs]  # distinct tensors, as in a network
    graph = helper.make_graph(
        [node],
        op,
        [helper.make_tensor_value_info(n, x_type, shape) for n in xs],
        [helper.make_tensor_value_info("y", y_type, None)],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", OPSET),
            helper.make_opsetid("com.microsoft", 1),
            helper.make_opsetid("com.microsoft.nchwc", 1),
        ],
    )
    rng = np.random.default_rng(0)
    feed = {
        n: rng.integers(0, 256, shape).astype(np.uint8)
        if x_type == u8
        else rng.standard_normal(shape).astype(np.float32)
        for n in xs
    }
    return model, feed, work


def nchwc_block_size(threads: int = 1) -> int:
    """The channel block of ONNX Runtime's NCHWc kernels on this CPU (16 with AVX-512, 8 with AVX2; 0
    when it does not use the layout): a float conv with fewer input channels reads plain NCHW input,
    so the smallest input channel count that ORT reorders is the block size."""
    from nasq.ort import executed_ops
    from nasq.spaces.base import LayerSpec

    rng = np.random.default_rng(0)
    for cin in (4, 8, 16, 32):
        model, _ = layer_graph(LayerSpec("probe", "conv", cin, 32, 3, 1, 8), 1, rng)
        ops = executed_ops(model.SerializeToString(), threads=threads)
        if ops.get("ReorderInput"):
            return cin
        if not ops.get("ReorderOutput"):
            return 0
    return 0


def identity_graph():
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), {"x": np.zeros((1, 1), np.float32)}


#: image stems (3 input channels, stride 2) measured as table layers beside the space's: they cost far more per MAC
#: than other convs, int8 ones most, every CNN has one, often its costliest layer, and the per-kernel regressor
#: priced them low; stems of other sizes are priced from the nearest size measured, by output pixels
#: (TablePredictor)
STEM_SHAPES = tuple(
    LayerSpec("stem", "conv", 3, cout, k, 2, h) for k in (3, 5, 7) for h in (96, 160, 224) for cout in (16, 32, 64, 96)
)
QUICK_STEM_SHAPES = tuple(LayerSpec("stem", "conv", 3, cout, k, 2, 224) for k in (3, 7) for cout in (16, 64))
