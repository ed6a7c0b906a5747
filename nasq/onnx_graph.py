"""Any ONNX model as the latency predictors see it: its compute layers, and every other op priced or named.

This is the graph-op pricing used for targets not measured with ONNX Runtime (ORT targets price the
kernels the runtime really executes instead: :mod:`nasq.kernel_pricing`).

``nasq predict`` reads a model (float, or int8 QDQ as ONNX Runtime's quantizer writes it), infers its
shapes, and turns each Conv / Gemm / MatMul into a :class:`LayerSpec` with its precision (int8 when
both its input and its weight come through 8-bit DequantizeLinear nodes). Every other op is put in
one of three classes, and reported with how it was priced (never a silent zero):

``fused``       activations and BatchNormalization right after a Conv/Gemm: ONNX Runtime folds them
                into the layer at load time, so they cost nothing of their own; so is a residual add
                right after a dense float conv (the blocked float conv adds it into its output), and a
                ReLU straight into a QuantizeLinear (dropped: the uint8 range clips alike);
``no compute``  shape ops, Q/DQ (priced as precision boundaries by the predictor), constants;
``memory``      everything else (Add, Concat, pools, Transpose, Softmax, LRN, ...): priced as memory
                traffic, elements read and written, at the profile's measured ``elementwise`` rate.
                An add between int8 tensors is one QLinearAdd kernel when it is an ``Add`` from two
                DequantizeLinear into a QuantizeLinear, else a float op that also pays the precision
                boundaries around it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasq.errors import NasqError
from nasq.spaces.base import LayerSpec

FUSED = {"Relu", "Clip", "LeakyRelu", "BatchNormalization", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh"}
NO_COMPUTE = {
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Shape",
    "Constant",
    "Identity",
    "Dropout",
    "QuantizeLinear",
    "DequantizeLinear",
    "ConstantOfShape",
    "Cast",
}
LAYER_OPS = {"Conv", "Gemm", "MatMul"}


@dataclass
class OtherOp:
    name: str
    op_type: str
    kind: str  # fused | no compute | memory
    elements: int = 0  # elements read and written (the generic memory-traffic price)
    work: int = 0  # what the profile's per-op cost scales with (see OP_WORK)
    boundaries: list[tuple[str, int]] = field(default_factory=list)  # (quantize | dequantize, elements) it runs
    priced_as: str = ""  # an op_costs entry to price it by instead of its own type (a fused int8 kernel)


@dataclass
class GraphLayers:
    layers: list[LayerSpec] = field(default_factory=list)
    others: list[OtherOp] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_onnx(path: str | Path):
    import onnx

    path = Path(path)
    if not path.is_file():
        raise NasqError(f"model file '{path}' does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError, onnx raises its own: all mean "not ONNX"
        raise NasqError(f"'{path}' is not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node:
        raise NasqError(f"'{path}' is not an ONNX model (no graph nodes)")
    return model


def materialize(model, seed: int = 0):
    """Replace weights computed by ConstantOfShape (the onnx wheel's "light" test models) with random
    initializers of the same shape, so the model can be measured and quantized like a real one."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    rng = np.random.default_rng(seed)
    keep = []
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in inits:
            shape = [int(v) for v in numpy_helper.to_array(inits[node.input[0]])]
            if len(shape) > 1:  # weights
                value = rng.standard_normal(shape) / math.sqrt(max(1, int(np.prod(shape[1:]))))
            else:  # biases, BN scales, means, variances: ones keep every op well-defined
                value = np.ones(shape)
            model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
            if model.ir_version < 4:  # initializers must also be graph inputs there
                model.graph.input.append(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, shape))
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    used = {i for n in model.graph.node for i in n.input}
    unused = {t.name for t in model.graph.initializer if t.name not in used}
    kept_inits = [t for t in model.graph.initializer if t.name not in unused]
    kept_inputs = [i for i in model.graph.input if i.name not in unused]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept_inits)
    del model.graph.input[:]
    model.graph.input.extend(kept_inputs)
    if model.opset_import[0].version < 13:  # per-channel Q/DQ (what int8 export writes) needs opset 13
        from onnx import version_converter

        with contextlib.suppress(Exception):  # an op the converter cannot move: keep the model as it is
            model = version_converter.convert_version(model, 13)
    return model


def _shapes(model, batch: int) -> dict[str, list[int]]:
    import onnx

    inits = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if not d.HasField("dim_value"):
                if i == 0:
                    d.dim_value = batch
                else:
                    raise NasqError(
                        f"input '{inp.name}' has a symbolic dimension {i} ('{d.dim_param}'); "
                        "give the model fixed input shapes (batch may stay symbolic)"
                    )
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise NasqError(f"shape inference failed on the model: {str(exc).splitlines()[0][:200]}") from None
    shapes: dict[str, list[int]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    return shapes


def _dq_bits(producer, inits) -> int | None:
    """Bit-width of a DequantizeLinear (from its zero point's type), or None if ``producer`` is not one."""
    from onnx import TensorProto

    if producer is None or producer.op_type != "DequantizeLinear":
        return None
    if len(producer.input) > 2 and producer.input[2] in inits:
        dtype = inits[producer.input[2]].data_type
        return {
            TensorProto.UINT8: 8,
            TensorProto.INT8: 8,
            TensorProto.INT16: 16,
            TensorProto.UINT16: 16,
            TensorProto.INT4: 4,
            TensorProto.UINT4: 4,
        }.get(dtype, 8)
    return 8


def graph_layers(model, batch: int = 1, runs_natively=None) -> GraphLayers:
    """The model's compute layers (in graph order) and its other ops, classified. A layer nasq exported as
    simulated (float arithmetic on a sub-8-bit grid, its bits in the model's ``nasq.simulated_bits`` property)
    takes those bits where ``runs_natively(w_bits, a_bits)`` (a bit-flexible target runs either); elsewhere it is the float
    layer it is in the file, its fake-quantization ops priced as the memory ops they are."""
    import json

    shapes = _shapes(model, batch)
    inits = {t.name: t for t in model.graph.initializer}
    simulated = json.loads({p.key: p.value for p in model.metadata_props}.get("nasq.simulated_bits", "{}"))
    producer = {o: n for n in model.graph.node for o in n.output}
    out = GraphLayers()
    layer_outputs: set[str] = set()
    float_conv_outputs: set[str] = set()  # a float conv's output, before any activation: a residual add fuses
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        attrs = {a.name: a for a in node.attribute}
        if node.op_type in LAYER_OPS:
            spec = _layer(node, name, attrs, shapes, producer, inits, batch, out.notes)
            if spec is not None:
                grouped = spec.op == "conv" and "group" in attrs and attrs["group"].i != 1
                if node.op_type == "Conv" and spec.w_bits >= 32 and spec.a_bits >= 32 and not grouped:
                    float_conv_outputs.update(node.output)
                bits = simulated.get(name)
                if bits and runs_natively is not None and runs_natively(*bits):
                    # float arithmetic in the file, on bit-widths that nasq's exporter recorded and the target runs
                    spec = dataclasses.replace(spec, w_bits=int(bits[0]), a_bits=int(bits[1]))
                out.layers.append(spec)
                layer_outputs.update(node.output)
                continue
        if node.op_type in FUSED and node.input and node.input[0] in layer_outputs:
            out.others.append(OtherOp(name, node.op_type, "fused"))
            layer_outputs.update(node.output)  # Conv -> BN -> Relu all fuse
            if node.op_type == "BatchNormalization" and node.input[0] in float_conv_outputs:
                float_conv_outputs.update(node.output)  # folded into the conv's weights
            continue
        if _dropped_before_quantization(node, consumers):
            out.others.append(OtherOp(name, node.op_type, "fused"))
            continue
        if node.op_type in ("Add", "Sum") and len(node.input) == 2 and any(t in float_conv_outputs for t in node.input):
            # ONNX Runtime's blocked (NCHWc) float conv adds a second input into its output itself (and
            # applies the activation after it): a residual add right after a float conv costs nothing
            out.others.append(OtherOp(name, node.op_type, "fused"))
            layer_outputs.update(node.output)
            continue
        if node.op_type in NO_COMPUTE:
            out.others.append(OtherOp(name, node.op_type, "no compute"))
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[0] in layer_outputs:
                layer_outputs.update(node.output)  # a layer's output Q/DQ pair still lets a Relu fuse
            continue
        tensors = [t for t in list(node.input) + list(node.output) if t and t not in inits]
        if any(t not in shapes for t in tensors):
            out.notes.append(f"{name} ({node.op_type}): a tensor's shape is unknown; priced on the known ones")
        elements = sum(int(np.prod(shapes[t])) for t in tensors if t in shapes)
        other = OtherOp(name, node.op_type, "memory", elements, _work(node, attrs, shapes, inits))
        if node.op_type in ("Add", "Sum") and len(node.input) == 2:
            _quantized_add(other, node, producer, consumers, shapes, inits)
        out.others.append(other)
    if not out.layers:
        raise NasqError("the model has no Conv, Gemm or MatMul layer with constant weights to price")
    return out


def _dropped_before_quantization(node, consumers) -> bool:
    """A ReLU (or Clip) read only by QuantizeLinear nodes: ONNX Runtime drops it, the uint8 range clips alike."""
    after = consumers.get(node.output[0]) if node.output else None
    return node.op_type in ("Relu", "Clip") and bool(after) and all(c.op_type == "QuantizeLinear" for c in after or ())


def _quantized_add(other: OtherOp, node, producer, consumers, shapes, inits) -> None:
    """A residual add between int8 tensors, as ONNX Runtime runs it: an ``Add`` read from two DequantizeLinear
    and written to one QuantizeLinear becomes one QLinearAdd kernel; any other add between quantized
    tensors (a ``Sum``, or an ``Add`` with a float side) runs in float behind its dequantized inputs and in
    front of its quantized output, and pays for those precision boundaries."""
    dequantized = [t for t in node.input if _dq_bits(producer.get(t), inits) and not _constant(t, producer, inits)]
    after = consumers.get(node.output[0], [])
    if len(after) == 1 and _dropped_before_quantization(after[0], consumers):
        after = consumers[after[0].output[0]]
    quantized_out = [c for c in after if c.op_type == "QuantizeLinear"]
    if not dequantized:
        return
    if node.op_type == "Add" and len(dequantized) == 2 and quantized_out:
        other.priced_as = "QLinearAdd"
        return
    other.boundaries = [("dequantize", int(np.prod(shapes[t]))) for t in dequantized if t in shapes]
    if quantized_out and node.output[0] in shapes:
        other.boundaries.append(("quantize", int(np.prod(shapes[node.output[0]]))))


def _work(node, attrs, shapes, inits) -> int:
    """Pools scale with their window reads (output elements x kernel area); other ops with the
    elements of their activation inputs."""
    from onnx import helper

    if node.op_type in ("MaxPool", "AveragePool") and "kernel_shape" in attrs and node.output[0] in shapes:
        return int(np.prod(shapes[node.output[0]]) * np.prod(helper.get_attribute_value(attrs["kernel_shape"])))
    return int(sum(np.prod(shapes[t]) for t in node.input if t and t in shapes and t not in inits))


def _constant(tensor: str, producer, inits, depth: int = 0) -> bool:
    """Whether a tensor is an initializer, or made from one by ops the runtime folds at load time."""
    if tensor in inits:
        return True
    node = producer.get(tensor)
    if node is None or depth > 8:
        return False
    if node.op_type == "ConstantOfShape" or node.op_type == "Constant":
        return True
    return node.op_type in ("DequantizeLinear", "Reshape", "Transpose", "Identity", "Cast", "Flatten") and _constant(
        node.input[0], producer, inits, depth + 1
    )


def _layer(node, name, attrs, shapes, producer, inits, batch, notes) -> LayerSpec | None:
    from onnx import helper

    x, w = node.input[0], node.input[1]
    for t in (x, w):  # through Q/DQ and casts, a tensor has its source's shape
        src = t
        while (
            src not in shapes
            and producer.get(src) is not None
            and producer[src].op_type in ("DequantizeLinear", "QuantizeLinear", "Cast", "Identity")
        ):
            src = producer[src].input[0]
        if src in shapes:
            shapes[t] = shapes[src]
    if x not in shapes or w not in shapes:
        notes.append(f"{name} ({node.op_type}): shapes of its input or weight unknown; priced as memory traffic")
        return None
    xs, ws = shapes[x], shapes[w]
    weight_const = _constant(w, producer, inits)
    a_bits = _dq_bits(producer.get(x), inits) or 32
    w_bits = _dq_bits(producer.get(w), inits) or 32
    if node.op_type == "Conv":
        if len(xs) != 4 or len(ws) != 4:
            notes.append(f"{name}: only 2-D convolutions are priced as layers; this one as memory traffic")
            return None
        group = helper.get_attribute_value(attrs["group"]) if "group" in attrs else 1
        strides = helper.get_attribute_value(attrs["strides"]) if "strides" in attrs else [1, 1]
        cout, cin_per_group, kh, kw = ws
        cin = xs[1]
        h = xs[2]
        if xs[2] != xs[3] or kh != kw:
            h = int(round(math.sqrt(xs[2] * xs[3])))
            notes.append(
                f"{name}: non-square input {xs[2]}x{xs[3]} or kernel {kh}x{kw}; priced as square {h}, k{max(kh, kw)}"
            )
        if group == 1:
            op = "conv"
        elif group == cin == cout:
            op = "dwconv"
        else:
            op, cin = "conv", cin_per_group
            notes.append(f"{name}: grouped conv (groups={group}) priced as a dense conv with the same MACs")
        return LayerSpec(name, op, cin, cout, max(kh, kw), int(strides[0]), h, w_bits=w_bits, a_bits=a_bits)
    # Gemm / MatMul
    if not weight_const or len(ws) != 2:
        notes.append(f"{name} ({node.op_type}): activation x activation product; priced as memory traffic")
        return None
    trans_b = node.op_type == "Gemm" and "transB" in attrs and helper.get_attribute_value(attrs["transB"])
    cin, cout = (ws[1], ws[0]) if trans_b else (ws[0], ws[1])
    return matrix_layer(name, node.op_type, cin, cout, int(np.prod(xs[:-1])) // max(batch, 1), w_bits, a_bits, notes)


def matrix_layer(
    name: str, op_type: str, cin: int, cout: int, rows: int, w_bits: int, a_bits: int, notes: list[str]
) -> LayerSpec:
    """A product with a constant cin x cout weight over ``rows`` rows per sample: a linear layer, or for
    several rows (a transformer's tokens, a 1x1 conv written as MatMul) a 1x1 conv on about as many positions."""
    if rows > 1:
        side = max(1, int(round(math.sqrt(rows))))
        notes.append(f"{name}: {op_type} over {rows} rows per sample priced as a 1x1 conv on {side}x{side} positions")
        return LayerSpec(name, "conv", cin, cout, 1, 1, side, w_bits=w_bits, a_bits=a_bits)
    return LayerSpec(name, "linear", cin, cout, w_bits=w_bits, a_bits=a_bits)
