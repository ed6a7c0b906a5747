"""An ONNX model priced kernel by kernel, as ONNX Runtime really runs it on this CPU.

For a target measured with ONNX Runtime, ``nasq predict`` does not guess from the ONNX graph what the
runtime will do: it asks the runtime (:func:`nasq.ort.executed_kernels`) which kernels it runs after
its graph optimizations, in which layout, on which shapes, and prices each one from the profile:

* float convs in the blocked layout (``nchwc.Conv``): the table's cost of the conv measured alone,
  less the layout reorders that the lone conv paid and that a conv inside a network does not (which
  ones ONNX Runtime inserts around a lone conv follows its NCHWc rules: :func:`lone_conv_reorders`);
  a predictor that learned the in-network cost itself (``learned_in_context``: the per-kernel
  regressor, fitted on chains of layers too) gives its own estimate instead, and the profile's
  choice on its block networks decides between the two; a 1x1 depthwise one that is a per-channel scale and shift
  (a BatchNorm no conv absorbed, :data:`AFFINE`), as the memory-bound op it is: the BatchNorm's cost between convs;
* float convs it keeps in plain NCHW (``Conv``, ``FusedConv``), and int8 ones (``QLinearConv``): the
  table's cost as measured (they ran the same way alone); a grouped conv as one conv per group, the
  way the runtime runs it;
* reorders, NCHWc and channels-last pools, int8 concats, quantize / dequantize / transpose and the
  float ops: their own measured costs (``op_costs``), interpolated over the sizes they were measured at;
  a float op that the profile also measured between two convs (``in_context``: a sum, a channel shuffle,
  a ReLU after a sum), that cost, which includes what the layout reorders around it cost there; one that
  runs on dequantized input, between int8 kernels, its cost measured there (``in_int8_context``: a
  BatchNorm, a sum, a Tanh), which includes what that island costs beyond its kernels' lone probes;
* shape ops: nothing (they alias their input);
* any other kernel: as the plain float op it stands for (``QLinearSoftmax`` as ``Softmax``), else as
  memory traffic at the measured elementwise rate, and listed as uncovered with how it was priced.

Those prices are of kernels measured alone or in small sandwiches. A profile also measures whole networks
built from real topologies' blocks (:func:`nasq.hardware_profiles.validation.calibrate_onnx_pricing`) and
fits how its float layers, int8 layers and other kernels add up in them (``kernel_calibration``: one
non-negative weight per part, :data:`KERNEL_CALIBRATION_FEATURES`); the calibrated predictors apply it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from nasq.errors import NasqError
from nasq.spaces.base import LayerSpec

FLOAT_CONVS = ("nchwc.Conv", "Conv", "FusedConv")
MATRIX = {
    "Gemm": "fp32",
    "FusedGemm": "fp32",
    "MatMul": "fp32",
    "FusedMatMul": "fp32",
    "QGemm": "int8",
    "MatMulIntegerToFloat": "int8",
    "QLinearMatMul": "int8",
}
SHAPE_ONLY = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Dropout", "Constant"}
#: ONNX Runtime's channel alignment for the NCHWc conv transform (MLAS): channel counts off it stay NCHW
NCHWC_ALIGNMENT = 4
#: kernels the profiles measure under one name: the first entry of op_costs found prices the kernel
RUNTIME_OPS = (
    "nchwc.ReorderInput",
    "nchwc.ReorderOutput",
    "nchwc.MaxPool",
    "nchwc.AveragePool",
    "nchwc.GlobalAveragePool",
    "NhwcMaxPool",
    "QLinearConcat",
    "QLinearGlobalAveragePool",
    "QuantizeLinear",
    "DequantizeLinear",
    "Transpose.uint8",
)


def prices_kernels(profile) -> bool:
    """Whether a profile can price ONNX Runtime's executed kernels: measured with ORT, runtime ops included."""
    return profile.metadata.get("runtime") == "onnxruntime" and all(
        op in profile.data.get("op_costs", {}) for op in RUNTIME_OPS
    )


def lone_conv_reorders(layer: LayerSpec, block: int) -> list[tuple[str, int]]:
    """The layout reorders ONNX Runtime puts around a float conv alone in a graph, as (op, elements):
    a depthwise conv whose channels are a multiple of NCHWC_ALIGNMENT, and a dense one whose input
    channels are, runs in the blocked layout, behind a ReorderInput (unless a dense conv has fewer input
    channels than a block: it reads NCHW directly) and in front of a ReorderOutput. (A unit test checks
    this rule against the runtime on random shapes.)"""
    if block <= 0:
        return []
    pad = lambda c: -(-c // block) * block
    out = [("nchwc.ReorderOutput", pad(layer.cout) * layer.h_out**2)]
    if layer.op == "dwconv":
        if layer.cin % NCHWC_ALIGNMENT:
            return []
        return [("nchwc.ReorderInput", layer.cin * layer.h_in**2)] + out
    if layer.cin < block:
        return out
    if layer.cin % NCHWC_ALIGNMENT:
        return []
    return [("nchwc.ReorderInput", layer.cin * layer.h_in**2)] + out


def _conv_layer(kernel, precision: str, notes: list[str]) -> tuple[LayerSpec, int]:
    """A conv kernel as a table layer, and its group count (grouped convs: one group's layer)."""
    cout, cin_group, kh, kw = kernel.weight
    x = kernel.inputs[0][1]
    channels_last = bool(kernel.attrs.get("channels_last", 0))
    h, w = (x[1], x[2]) if channels_last else (x[2], x[3])
    group = int(kernel.attrs.get("group", 1))
    strides = kernel.attrs.get("strides") or [1, 1]
    bits = 8 if precision == "int8" else 32
    side = h
    if h != w or kh != kw:
        side = int(round(math.sqrt(h * w)))
        notes.append(
            f"{kernel.name}: non-square input {h}x{w} or kernel {kh}x{kw}; priced as square {side}, k{max(kh, kw)}"
        )
    cin = cin_group * group
    if group == 1:
        return LayerSpec(kernel.name, "conv", cin, cout, max(kh, kw), int(strides[0]), side, bits, bits), 1
    if group == cin == cout:
        return LayerSpec(kernel.name, "dwconv", cin, cout, max(kh, kw), int(strides[0]), side, bits, bits), 1
    one_group = LayerSpec(kernel.name, "conv", cin_group, cout // group, max(kh, kw), int(strides[0]), side, bits, bits)
    return one_group, group


#: a layout transpose of fewer channels than this (an image's) is priced by its own probe (see _op_key)
FEW_CHANNELS = 8


def _transpose_key(kernel, op_costs: dict) -> str:
    """A transpose's op_costs entry: ``Transpose`` or ``Transpose.uint8``, then ``.shuffle`` for a 5-D one (the
    channel shuffle), ``.nchw`` for NHWC -> NCHW and ``.c3`` when it moves fewer than FEW_CHANNELS channels
    (an image): each the most specific entry the profile has."""
    base = "Transpose.uint8" if kernel.inputs and kernel.inputs[0][0] == "uint8" else "Transpose"
    perm = list(kernel.attrs.get("perm") or [])
    shape = list(kernel.inputs[0][1]) if kernel.inputs else []
    if len(perm) == 5:
        candidates = [f"{base}.shuffle"]
    elif perm in ([0, 2, 3, 1], [0, 3, 1, 2]) and len(shape) == 4:
        direction, channels = ("", shape[1]) if perm == [0, 2, 3, 1] else (".nchw", shape[3])
        candidates = [base + direction + ".c3"] if channels < FEW_CHANNELS else []
        candidates.append(base + direction)
    else:
        candidates = []
    return next((key for key in candidates if key in op_costs), base)


#: the op key of a per-channel scale and shift that ONNX Runtime runs as a 1x1 depthwise conv in its blocked layout:
#: a BatchNormalization (or a Mul and Add by per-channel constants) that no conv before it absorbs, as DenseNet's after
#: each concat. It is memory-bound: priced by the BatchNorm's cost measured between two convs (CONTEXT_PROBES), not as
#: a conv layer, whose price less the reorders a lone conv pays came to a tenth of its time in DenseNet-121 here
AFFINE = "nchwc.BatchNormalization"


def is_affine(kernel) -> bool:
    """Whether a kernel is a per-channel scale and shift run as a 1x1 depthwise NCHWc conv (:data:`AFFINE`)."""
    w = kernel.weight
    return (
        kernel.op == "nchwc.Conv"
        and w is not None
        and len(w) == 4
        and list(w[1:]) == [1, 1, 1]
        and int(kernel.attrs.get("group", 1)) == w[0] > 1
        and max(kernel.attrs.get("strides") or [1]) == 1
    )


def _op_key(kernel, op_costs: dict) -> str:
    """The op_costs entry that prices a kernel, where the profile measured one apart from the plain op: a
    uint8 transpose, and transposes by shape (:func:`_transpose_key`), a max pool on uint8 (ORT's NCHW uint8
    pool is 10-30x slower than the float one) and a strided average pool (its time per window read is 2-5x a
    stride-1 pool's here)."""
    key = kernel.op
    uint8 = bool(kernel.inputs) and kernel.inputs[0][0] == "uint8"
    if is_affine(kernel):
        return AFFINE
    if kernel.op == "Transpose":
        return _transpose_key(kernel, op_costs)
    if kernel.op == "MaxPool" and uint8 and "MaxPool.uint8" in op_costs:
        return "MaxPool.uint8"
    if (
        kernel.op.endswith("AveragePool")
        and max(kernel.attrs.get("strides") or [1]) > 1
        and f"{kernel.op}.s2" in op_costs
    ):
        return f"{kernel.op}.s2"
    return key


def _plain_op(key: str) -> str:
    """The float, plain-layout op a runtime kernel stands for (the key itself when none)."""
    for prefix in ("QLinear", "nchwc."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def requantized_share(kernel) -> float:
    """The share of a ``QLinearConcat``'s input elements on a scale or zero point other than its output's:
    those it requantizes, the others it copies (a quantizer often gives one input the output's scale).
    Inputs whose quantization is not a constant count as requantized."""
    sc = kernel.scalars
    if not kernel.inputs or 0 not in sc or 1 not in sc:
        return 1.0
    requantized = sum(
        int(math.prod(shape))
        for i, (_, shape) in enumerate(kernel.inputs)
        if (sc.get(3 + 3 * i), sc.get(4 + 3 * i)) != (sc[0], sc[1])
    )
    return requantized / max(kernel.elements("inputs"), 1)


#: elementwise ops of several inputs, measured on two tensors of one shape (see _work)
BROADCASTING = {"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Pow", "PRelu"}


def _work(kernel) -> int:
    """What the profile's op costs scale with: pools, their output elements times the window; others,
    the elements of their activation inputs. An elementwise op with a broadcast or constant operand (a
    BatchNorm left as a per-channel Add) reads less than the two same-shape tensors its cost was
    measured on: it counts as the two-tensor op of the same memory traffic (read + written)."""
    if kernel.op.endswith("Pool") and not kernel.op.endswith("GlobalAveragePool") and "kernel_shape" in kernel.attrs:
        return kernel.elements("outputs") * math.prod(kernel.attrs["kernel_shape"])
    if kernel.op in BROADCASTING:
        return round((kernel.elements("inputs") + kernel.elements("outputs")) * 2 / 3)
    return kernel.elements("inputs")


#: the parts of a kernel-priced latency that an ONNX pricing calibration weighs (besides the call overhead)
KERNEL_CALIBRATION_FEATURES = ("fp32_layers_ms", "int8_layers_ms", "other_ops_ms")


def fit_kernel_calibration(parts: list[dict[str, float]], measured_ms: list[float], overhead_ms: float) -> dict:
    """Non-negative weights of the parts (:data:`KERNEL_CALIBRATION_FEATURES`) that best give the measured
    latencies less the call overhead, on relative error (every network counts alike)."""
    import numpy as np
    from scipy.optimize import nnls

    y = np.asarray(measured_ms, float)
    x = np.array([[p[f] for f in KERNEL_CALIBRATION_FEATURES] for p in parts], float)
    coef, _ = nnls(x / y[:, None], 1 - overhead_ms / y)
    return {
        "features": list(KERNEL_CALIBRATION_FEATURES),
        "coefficients": [round(float(c), 6) for c in coef],
        "fitted_on_networks": len(y),
    }


def apply_kernel_calibration(calibration: dict, overhead_ms: float, parts: dict[str, float]) -> float:
    return overhead_ms + sum(c * parts[f] for f, c in zip(calibration["features"], calibration["coefficients"]))


def price_kernels(model, profile, predictor, notes: list[str]) -> dict[str, Any]:
    """Predicted latency of an ONNX ModelProto from the kernels ONNX Runtime runs for it (see module doc)."""
    import onnxruntime

    from nasq.hardware_profiles.costs import linear_ms, op_cost_ms
    from nasq.onnx_graph import matrix_layer
    from nasq.ort import executed_kernels

    batch = int(profile.metadata.get("batch_size", 1))
    try:
        kernels = executed_kernels(
            model.SerializeToString(), threads=int(profile.metadata.get("threads", 1)), batch=batch
        )
    except Exception as exc:  # the runtime refuses the model: name why, in one line
        raise NasqError(f"ONNX Runtime cannot run the model: {str(exc).splitlines()[0][:200]}") from None
    mismatch = profile.machine_mismatch()
    if mismatch or onnxruntime.__version__ != profile.metadata.get("runtime_version"):
        notes.append(
            f"the kernels were read from this machine's ONNX Runtime {onnxruntime.__version__}; the profile "
            f"was {mismatch or 'measured with ONNX Runtime ' + str(profile.metadata.get('runtime_version'))}: "
            "the target's runtime may choose other kernels"
        )
    block = int(profile.data.get("nchwc_block_size", 16))
    op_costs = profile.data.get("op_costs", {})
    rate = profile.data.get("elementwise")
    layers_ms = 0.0
    parts = dict.fromkeys(KERNEL_CALIBRATION_FEATURES, 0.0)
    layer_counts: dict[str, int] = defaultdict(int)
    others: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "ms": 0.0, "priced_as": ""})
    macs = 0
    per_kernel = []
    for k in kernels:
        key = _op_key(k, op_costs)
        ms = 0.0
        conv = k.weight is not None and len(k.weight) == 4 and (k.op in FLOAT_CONVS or k.op == "QLinearConv")
        if conv and key != AFFINE:
            precision = "int8" if k.op == "QLinearConv" else "fp32"
            layer, groups = _conv_layer(k, precision, notes)
            if k.op == "nchwc.Conv" and getattr(predictor, "learned_in_context", False):
                ms = predictor.layer_ms(layer, precision, notes, chained=True)  # its own estimate between layers
            elif k.op == "nchwc.Conv":  # alone, it paid for reorders that it does not pay here (never below a
                alone = predictor.layer_ms(layer, precision, notes)  # fifth of it: reorders are priced by size)
                reorders = sum(op_cost_ms(op_costs[op], n) for op, n in lone_conv_reorders(layer, block))
                ms = max(alone - reorders, 0.2 * alone)
            else:
                ms = predictor.layer_ms(layer, precision, notes) * groups
            kind = "grouped conv" if groups > 1 else layer.op
            layer_counts[f"{precision} {kind}"] += 1
            macs += layer.macs * groups
            layers_ms += ms
            parts[f"{precision}_layers_ms"] += ms
        elif k.op in MATRIX and k.weight is not None and len(k.weight) == 2:
            precision = MATRIX[k.op]
            trans_b = bool(k.attrs.get("transB", 0))
            cin, cout = (k.weight[1], k.weight[0]) if trans_b else (k.weight[0], k.weight[1])
            rows = max(1, k.elements("inputs") // max(cin, 1) // max(batch, 1))
            bits = 8 if precision == "int8" else 32
            layer = matrix_layer(k.name, k.op, cin, cout, rows, bits, bits, notes)
            ms = predictor.layer_ms(layer, precision, notes)
            layer_counts[f"{precision} {layer.op}"] += 1
            macs += layer.macs
            layers_ms += ms
            parts[f"{precision}_layers_ms"] += ms
        else:
            entry = others[key]
            entry["count"] += 1
            if k.op in SHAPE_ONLY:
                entry["priced_as"] = "no compute: 0 ms"
            elif key == AFFINE and "BatchNormalization" in op_costs:
                cost = op_costs["BatchNormalization"]
                between = cost.get("in_context")
                ms = op_cost_ms({"measured": between} if between else cost, _work(k))
                entry["priced_as"] = (
                    "a per-channel scale and shift (a BatchNorm no conv absorbed) run as a 1x1 "
                    "depthwise conv: the BatchNorm's cost "
                    + (
                        "measured between two convs"
                        if between
                        else "measured alone (this profile has none measured between convs, where it takes longer)"
                    )
                    + f" ({cost['work']})"
                )
            elif key == "QLinearConcat" and "QLinearConcat.copy" in op_costs:
                share = requantized_share(k)
                ms = share * op_cost_ms(op_costs[key], _work(k)) + (1 - share) * op_cost_ms(
                    op_costs["QLinearConcat.copy"], _work(k)
                )
                entry["priced_as"] = (
                    f"its own measured costs ({op_costs[key]['work']}), requantizing the inputs on "
                    "another scale than the output's and copying the others"
                )
            elif key in op_costs and op_costs[key].get("in_int8_context") and "DequantizeLinear" in k.producers:
                ms = op_cost_ms({"measured": op_costs[key]["in_int8_context"]}, _work(k))
                entry["priced_as"] = f"its own cost measured between two int8 convs ({op_costs[key]['work']})"
            elif key in op_costs and op_costs[key].get("in_context") and k.inputs and k.inputs[0][0] == "float":
                ms = op_cost_ms({"measured": op_costs[key]["in_context"]}, _work(k))
                entry["priced_as"] = f"its own cost measured between two convs ({op_costs[key]['work']})"
            elif key in op_costs:
                ms = op_cost_ms(op_costs[key], _work(k))
                entry["priced_as"] = f"its own measured cost ({op_costs[key]['work']})"
            elif _plain_op(key) in op_costs:  # QLinearSoftmax as Softmax, nchwc.Upsample as Upsample
                ms = op_cost_ms(op_costs[_plain_op(key)], _work(k))
                entry["priced_as"] = f"not measured; as the plain float {_plain_op(key)}"
            elif rate is not None:
                ms = linear_ms(rate, k.elements("inputs") + k.elements("outputs"))
                entry["priced_as"] = "not measured; as memory traffic at the profile's elementwise rate"
            else:
                raise NasqError(
                    f"target '{profile.name}' cannot price ONNX Runtime's kernel '{key}' "
                    "(no measured cost and no elementwise rate)"
                )
            entry["ms"] += ms
        per_kernel.append({"name": k.name, "op": key, "ms": round(ms, 6)})
    memory_ms = sum(v["ms"] for v in others.values())
    parts["other_ops_ms"] = memory_ms
    return {
        "latency_ms": float(predictor.overhead_ms + layers_ms + memory_ms),
        "layers_ms": float(layers_ms),
        "memory_ops_ms": float(memory_ms),
        "layers": dict(sorted(layer_counts.items())),
        "macs": int(macs),
        "uncovered_ops": {k: {**v, "ms": round(v["ms"], 6)} for k, v in sorted(others.items())},
        "kernels": per_kernel,
        "parts": {k: round(v, 6) for k, v in parts.items()},
        "pricing": "ONNX Runtime's executed kernels (its optimized graph and the shapes of one profiled run)",
    }
