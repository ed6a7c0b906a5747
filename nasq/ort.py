"""ONNX Runtime helpers shared by the profiler and the exporter: sessions, int8 QDQ, timing.

The int8 recipe is the one that is really fast on x86 (see shared ECOSYSTEM notes): pre-process
with ``quant_pre_process`` first, QDQ with uint8 activations and int8 per-channel weights (7-bit on a CPU
without VNNI, whose u8s8 kernels saturate otherwise), and
create sessions with the ``WeightBiasQuantization`` transformer disabled so that layers left in
float stay float.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def session(
    model: str | Path | bytes,
    *,
    threads: int = 1,
    optimized_path: str | Path | None = None,
    profile_prefix: str | Path | None = None,
):
    """A CPU session as nasq measures with: sequential, all graph optimizations, int8 left as exported;
    ``optimized_path``: ORT writes the graph it runs there; ``profile_prefix``: ORT profiles every node."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(
        src, opts, providers=["CPUExecutionProvider"], disabled_optimizers=["WeightBiasQuantization"]
    )


def executed_ops(model: str | Path | bytes, *, threads: int = 1) -> Counter:
    """Op types of the graph ORT really runs after its optimizations (QLinearConv vs Conv...)."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        opt = Path(tmp) / "optimized.onnx"
        session(model, threads=threads, optimized_path=opt)
        return Counter(node.op_type for node in onnx.load(str(opt)).graph.node)


class _Feeds:
    """A CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._it = iter(list(feeds))

    def get_next(self):
        return next(self._it, None)


def quantize_qdq(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: Sequence[dict[str, np.ndarray]],
    nodes_to_quantize: Iterable[str] | None = None,
    input_qparams: Mapping[str, tuple[float, int]] | None = None,
    output_qparams: Mapping[str, tuple[float, int]] | None = None,
    reduce_range: bool | None = None,
    float_outputs: Sequence[str] = (),
) -> None:
    """int8 QDQ (uint8 activations, int8 per-channel weights) of the listed nodes (all when None).

    ``input_qparams`` fixes the (scale, uint8 zero point) of a node's input instead of calibrating it,
    and ``output_qparams`` those of a layer's output (its node ``<layer>.act``'s, else its own), so that an
    exported model quantizes exactly as it was trained. ``reduce_range``: weights in -64..64, for a CPU without
    VNNI (see :func:`nasq.hardware_profiles.machine.int8_recipe`); None: as this machine needs.
    ``float_outputs``: op types whose outputs are left float.
    """
    if reduce_range is None:
        from nasq.hardware_profiles.machine import int8_recipe_here

        reduce_range = int8_recipe_here()["reduce_range"]
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre))
        overrides = {}
        if input_qparams or output_qparams:
            graph_nodes = {n.name: n for n in onnx.load(str(pre)).graph.node}
            tensors = {
                graph_nodes[node].input[0]: qparams
                for node, qparams in (input_qparams or {}).items()
                if node in graph_nodes
            }
            for layer, qparams in (output_qparams or {}).items():
                node = graph_nodes.get(f"{layer}.act") or graph_nodes.get(layer)
                if node is not None:
                    tensors.setdefault(node.output[0], qparams)  # a reader's own input range is the same grid
            for tensor, (scale, zero_point) in tensors.items():
                overrides[tensor] = [
                    {"scale": np.array(scale, np.float32), "zero_point": np.array(zero_point, np.uint8)}
                ]
        extra = {"TensorQuantOverrides": overrides} if overrides else {}
        if float_outputs:
            extra["OpTypesToExcludeOutputQuantization"] = list(float_outputs)
        quiet = _RankOneWeights()
        logging.getLogger().addFilter(quiet)
        try:
            quantize_static(
                str(pre),
                str(out_path),
                _Feeds(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=reduce_range,
                nodes_to_quantize=list(nodes_to_quantize) if nodes_to_quantize is not None else None,
                extra_options=extra or None,
            )
        finally:
            logging.getLogger().removeFilter(quiet)
        if nodes_to_quantize is not None:
            _float_readers_read_float(out_path, set(nodes_to_quantize))


def _float_readers_read_float(path: str | Path, quantized: set[str]) -> None:
    """ONNX Runtime's quantizer hands a quantized tensor to all its readers; where a float op produced it, give the
    readers that stay float (a residual add beside an int8 conv) the float tensor back, as in the model that was
    trained, whose int8 layers quantize their own inputs. (The output of an int8 layer exists only quantized.)"""
    import onnx

    model = onnx.load(str(path))
    producer = {out: n for n in model.graph.node for out in n.output}
    for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear"]:
        q = producer.get(dq.input[0])
        source = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if source is None or source.name in quantized:
            continue  # a weight, the graph's input, or an int8 layer's own output
        for node in model.graph.node:
            if node.name not in quantized and node.op_type != "QuantizeLinear":
                node.input[:] = [q.input[0] if name == dq.output[0] else name for name in node.input]
    onnx.save(model, str(path))


class _RankOneWeights(logging.Filter):
    """Drops ONNX Runtime's quantizer warning that a rank-1 weight (a BatchNorm's scale) has no channel axis: it
    quantizes that weight per tensor instead, as it should, and warned once per BatchNorm left unfused."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


def quantized_qdq(model, calibration: Sequence[dict[str, np.ndarray]]):
    """:func:`quantize_qdq` of a whole in-memory ModelProto: its int8 QDQ version, as a ModelProto."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        fp32, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(fp32))
        quantize_qdq(fp32, out, calibration)
        return onnx.load(str(out))


def time_interleaved(
    runs: Sequence[tuple[object, dict[str, np.ndarray]]],
    *,
    repetitions: int,
    warmup: int = 5,
    burst: int = 3,
    min_seconds: float = 0.0,
    reference: tuple[object, dict[str, np.ndarray]] | None = None,
    samples: list[list[float]] | None = None,
) -> list[float]:
    """Median latency (ms) of each (session, feed), measured round-robin so noise hits all alike.

    Each turn runs a model ``burst`` times back to back and times the last run: the latency of a
    model in steady use, with its weights in cache. (Timing single runs round-robin over many
    models measures cold caches instead, much slower.) Rounds go on until there are ``repetitions`` of
    them and ``min_seconds`` have passed: a shared machine's speed moves over seconds, and medians over
    a longer window are comparable from one run to the next.
    ``reference``: one more (session, feed) timed in every round, always warm (the last of 3 back to
    back, whatever ``burst``); its median is appended to the result, as a gauge of the machine's speed
    during these rounds. ``samples``: a list that receives each model's timings, round by round (the
    reference's last), for :func:`window_spread`.
    """
    everything = [*runs, reference] if reference is not None else list(runs)
    for sess, feed in everything:
        for _ in range(warmup):
            sess.run(None, feed)
    samples_out, samples = samples, [[] for _ in everything]
    deadline = time.perf_counter() + min_seconds
    rounds = 0
    while rounds < repetitions or time.perf_counter() < deadline:
        rounds += 1
        for i, (sess, feed) in enumerate(everything):
            for _ in range((burst if i < len(runs) else 3) - 1):
                sess.run(None, feed)
            t0 = time.perf_counter_ns()
            sess.run(None, feed)
            samples[i].append((time.perf_counter_ns() - t0) / 1e6)
    if samples_out is not None:
        samples_out.extend(samples)
    return [statistics.median(s) for s in samples]


def window_spread(
    samples: Sequence[Sequence[float]], windows: int = 3, reference: Sequence[float] | None = None
) -> dict | None:
    """The measurement's own noise: each model's rounds cut into ``windows`` consecutive parts, how far
    apart the parts' medians lie (largest over smallest, minus 1), median and 90th percentile over the
    models. With the ``reference``'s timings of the same rounds, the same of each model's time over the
    reference's (what a speed gauge leaves of the noise). A predictor's error within these figures is
    indistinguishable from the machine's; run to run, slow spells that outlast a window move it more.
    None with fewer than 3 rounds per part."""

    def spreads(series):
        out = []
        for s in series:
            if len(s) < 3 * windows:
                return []
            medians = [float(np.median(part)) for part in np.array_split(np.asarray(s, float), windows)]
            out.append(max(medians) / min(medians) - 1)
        return out

    raw = spreads(samples)
    if not raw:
        return None
    result = {
        "windows": windows,
        "rounds": len(samples[0]),
        "median": round(float(np.median(raw)), 4),
        "p90": round(float(np.quantile(raw, 0.9)), 4),
    }
    if reference is not None:
        gauged = spreads([np.asarray(s, float) / np.asarray(reference, float) for s in samples])
        if gauged:
            result["over_reference"] = {
                "median": round(float(np.median(gauged)), 4),
                "p90": round(float(np.quantile(gauged, 0.9)), 4),
            }
    return result


def gauged_medians(
    samples: Sequence[Sequence[float]], reference: Sequence[float], reference_ms: float = 1.0
) -> list[float]:
    """Each model's latency at the speed where the reference takes ``reference_ms``: the median over the rounds
    of its time over the reference's time in the same round, times ``reference_ms``. The reference is a gauge
    timed in every round (a layer; or, ``reference_ms`` 1, a series of speed ratios). Gauged round by round, a
    slow spell within the run cancels too (see :func:`nasq.hardware_profiles.measurement.at_profile_speed`)."""
    ref = np.asarray(reference, float)
    return [float(np.median(np.asarray(s, float) / ref)) * reference_ms for s in samples]


DTYPES = {
    "tensor(float)": np.float32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(double)": np.float64,
}


@dataclass
class Kernel:
    """One node of the graph ONNX Runtime really runs (after its graph optimizations), with the shapes
    and element types it ran on. ``op`` is the op type, prefixed ``nchwc.`` for the blocked-layout
    (NCHWc) kernels of the ``com.microsoft.nchwc`` domain."""

    name: str
    op: str
    attrs: dict
    inputs: list[tuple[str, list[int]]]  # (element type, shape) of each activation input (not constants)
    outputs: list[tuple[str, list[int]]]
    weight: list[int] | None = None  # the constant weight's shape of a conv or a matrix product
    scalars: dict[int, float] = field(default_factory=dict)  # scalar constant inputs (scales...) by position
    producers: list[str] = field(default_factory=list)  # op of the kernel that wrote each activation input ("" input)

    def elements(self, which: str = "inputs") -> int:
        return int(sum(np.prod(s) for _, s in (self.inputs if which == "inputs" else self.outputs)))


#: kernels with a constant weight, and the input it is
WEIGHT_INPUT = {
    "Conv": 1,
    "nchwc.Conv": 1,
    "FusedConv": 1,
    "Gemm": 1,
    "FusedGemm": 1,
    "MatMul": 1,
    "FusedMatMul": 1,
    "QLinearConv": 3,
    "QGemm": 3,
    "QLinearMatMul": 3,
    "MatMulIntegerToFloat": 1,
}


def executed_kernels(model: bytes, *, threads: int = 1, batch: int = 1) -> list[Kernel]:
    """The kernels ONNX Runtime runs for ``model``, in order, read from the optimized graph it writes and
    from its node profile of one run on random input (the shapes each kernel ran on; the timings of
    that run are not used). This is nn-Meter's kernel detection done by the runtime itself: which
    convs run in the blocked NCHWc layout, where it reorders, which int8 ops fuse into QLinear kernels."""
    import json

    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(model)
    names = {n.name for n in proto.graph.node}
    for i, node in enumerate(proto.graph.node):  # the node profile names kernels by node: name them all
        if not node.name:
            node.name = f"nasq_{i}_{node.op_type}" + ("_" * (f"nasq_{i}_{node.op_type}" in names))
    model = proto.SerializeToString()
    with tempfile.TemporaryDirectory() as tmp:
        sess = session(
            model, threads=threads, optimized_path=Path(tmp) / "optimized.onnx", profile_prefix=Path(tmp) / "profile"
        )
        rng = np.random.default_rng(0)
        feed = {}
        for inp in sess.get_inputs():
            shape = [d if isinstance(d, int) else batch for d in inp.shape]
            dtype = DTYPES.get(inp.type, np.float32)
            feed[inp.name] = (
                rng.standard_normal(shape) if np.issubdtype(dtype, np.floating) else rng.integers(0, 8, shape)
            ).astype(dtype)
        sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
        optimized = onnx.load(str(Path(tmp) / "optimized.onnx"))
    shapes = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            args = e["args"]
            shapes[e["name"][: -len("_kernel_time")]] = (
                [next(iter(d.items())) for d in args.get("input_type_shape", [])],
                [next(iter(d.items())) for d in args.get("output_type_shape", [])],
            )
    inits = {t.name: list(t.dims) for t in optimized.graph.initializer}
    scalars = {
        t.name: float(numpy_helper.to_array(t).reshape(-1)[0])
        for t in optimized.graph.initializer
        if int(np.prod(t.dims)) == 1
    }
    writer = {
        out: ("nchwc." if n.domain == "com.microsoft.nchwc" else "") + n.op_type
        for n in optimized.graph.node
        for out in n.output
    }
    kernels = []
    for node in optimized.graph.node:
        if node.name not in shapes:
            raise RuntimeError(
                f"node '{node.name}' ({node.op_type}) of the optimized graph did not show in the runtime's node profile"
            )
        ins, outs = shapes[node.name]
        op = ("nchwc." if node.domain == "com.microsoft.nchwc" else "") + node.op_type
        at = WEIGHT_INPUT.get(op)
        weight = inits.get(node.input[at]) if at is not None and len(node.input) > at else None
        present = [name for name in node.input if name]  # the profile lists the inputs given
        activations = [(name, t, list(s)) for name, (t, s) in zip(present, ins) if name not in inits]
        kernels.append(
            Kernel(
                node.name,
                op,
                {a.name: helper.get_attribute_value(a) for a in node.attribute},
                [(t, s) for _, t, s in activations],
                [(t, list(s)) for t, s in outs],
                weight,
                {i: scalars[name] for i, name in enumerate(node.input) if name in scalars},
                [writer.get(name, "") for name, _, _ in activations],
            )
        )
    return kernels
