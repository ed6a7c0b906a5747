"""``nasq predict``: the latency of any ONNX model on a target, with every op's pricing accounted for."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasq.errors import NasqError

#: the onnx wheel's real ImageNet topologies (filler weights): latency test material, not accuracy
REAL_TOPOLOGIES = (
    "resnet50",
    "squeezenet",
    "shufflenet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "bvlc_alexnet",
    "vgg19",
    "zfnet512",
)


def real_topology(name: str) -> Path:
    import onnx

    if name not in REAL_TOPOLOGIES:
        raise NasqError(f"unknown real topology '{name}'; available: {', '.join(REAL_TOPOLOGIES)}")
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"


def prepared_model(path: str | Path, input_shape: Sequence[int] | None = None):
    """The model as nasq prices and measures it: weights made by ConstantOfShape become initializers, and a
    symbolic input shape fixed to ``input_shape`` (the dimensions after the batch, which stays the profile's)."""
    from nasq.onnx_graph import load_onnx, materialize

    model = load_onnx(path)
    fix_input_shape(model, input_shape)
    notes = []
    if any(n.op_type == "ConstantOfShape" for n in model.graph.node):
        model = materialize(model)
        notes.append(
            "weights computed by ConstantOfShape were taken as constant initializers "
            "(ONNX Runtime folds them at load time)"
        )
    return model, notes


def fix_input_shape(model, input_shape: Sequence[int] | None) -> None:
    """Give the model's input the dimensions ``input_shape`` (after the batch); NasqError where a dimension is
    symbolic and none is given, or where the given shape contradicts a fixed one."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    for inp in inputs:
        dims = inp.type.tensor_type.shape.dim
        symbolic = [i for i, d in enumerate(dims) if i > 0 and not d.HasField("dim_value")]
        if input_shape is None:
            if symbolic:
                names = ", ".join(f"{i} ('{dims[i].dim_param or '?'}')" for i in symbolic)
                raise NasqError(
                    f"input '{inp.name}' has symbolic dimensions {names}; give the shape after the batch "
                    f"with --input-shape, e.g. --input-shape "
                    f"{','.join(str(d.dim_value) if d.HasField('dim_value') else 'N' for d in dims[1:])}"
                )
            continue
        if len(inputs) > 1:
            raise NasqError(f"the model has {len(inputs)} inputs; --input-shape fixes a model with one")
        if len(input_shape) != len(dims) - 1:
            raise NasqError(
                f"--input-shape {','.join(map(str, input_shape))} has {len(input_shape)} dimensions; "
                f"input '{inp.name}' has {len(dims) - 1} after the batch"
            )
        for d, want in zip(dims[1:], input_shape):
            if d.HasField("dim_value") and d.dim_value != want:
                raise NasqError(
                    f"--input-shape {','.join(map(str, input_shape))} contradicts input '{inp.name}''s "
                    f"fixed shape {[x.dim_value or x.dim_param for x in dims]}"
                )
            d.dim_value = int(want)


def predict_model(
    model, profile, notes: list[str] | None = None, predictor: str | None = None, pricing: str = "auto"
) -> dict[str, Any]:
    """Predicted latency (ms) of an ONNX ModelProto on ``profile``'s target, with a breakdown.

    The predictor is ``predictor``, else the profile's ``onnx_predictor`` (chosen on its block networks,
    or on real topologies by validation for a profile without kernel prices), else its main predictor (chosen on networks of its space). ``pricing``: ``kernels``
    prices the kernels ONNX Runtime runs (:mod:`nasq.kernel_pricing`; ORT-measured profiles with
    runtime op costs), ``graph`` the ONNX graph's own ops (every other target), ``auto`` the first
    that the profile supports."""
    from nasq.hardware_profiles.costs import linear_ms, op_cost_ms
    from nasq.hardware_profiles.registries import PREDICTORS
    from nasq.kernel_pricing import price_kernels, prices_kernels
    from nasq.onnx_graph import graph_layers

    name = predictor or profile.data.get("onnx_predictor") or profile.predictor
    if name != profile.predictor:  # (the profile's own predictor was checked against it when it loaded)
        PREDICTORS.get(name).validate_profile(profile)
    pricer = PREDICTORS.get(name)(profile)
    if "space" in profile.data:
        raise NasqError(
            f"target '{profile.name}' prices architectures of space '{profile.data['space']}' only, not ONNX models"
        )
    batch = int(profile.metadata.get("batch_size", 1))
    if pricing not in ("auto", "kernels", "graph"):
        raise ValueError(f"pricing must be auto, kernels or graph, not {pricing!r}")
    if pricing == "kernels" and not prices_kernels(profile):
        raise NasqError(
            f"target '{profile.name}' has no measured ONNX Runtime kernel costs; re-profile it with this nasq version"
        )
    if pricing != "graph" and prices_kernels(profile):
        notes = list(notes or [])
        priced = price_kernels(model, profile, pricer, notes)
        base = getattr(pricer, "onnx_base", None)  # a calibrated predictor: its base's prices, re-weighted
        if base is not None:
            calibrate_kernel_prices(priced, profile, base, pricer.overhead_ms, notes)
        return _with_trust({"target": profile.name, "predictor": name, "batch_size": batch, **priced, "notes": notes})
    graph = graph_layers(model, batch=batch, runs_natively=profile.runs_either_natively)
    pred = pricer.predict(graph.layers)
    rate = profile.data.get("elementwise")
    how = "memory traffic at the profile's measured elementwise rate"
    if rate is None and "simulated_activation" in profile.data:
        sim = profile.data["simulated_activation"]
        rate = {"intercept_ms": sim["intercept_ms"] / 6, "per_melement_ms": sim["per_melement_ms"] / 6}
        how = "memory traffic at 1/6 of the simulated-activation chain's rate (the profile has no elementwise rate)"
    uncovered: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "ms": 0.0, "priced_as": ""})
    memory_ms = 0.0
    op_costs = profile.data.get("op_costs", {})
    boundary_ms = getattr(pricer, "boundary_ms", None)
    for op in graph.others:
        entry = uncovered[op.op_type]
        entry["count"] += 1
        if op.kind == "memory" and op.boundaries and boundary_ms is not None:
            ms = sum(boundary_ms(kind, n) for kind, n in op.boundaries)
            entry["ms"] += ms
            memory_ms += ms
            entry.setdefault("boundaries", 0)
            entry["boundaries"] += len(op.boundaries)
        measured_as = op.priced_as if op.priced_as in op_costs else op.op_type
        if op.kind == "memory" and measured_as in op_costs:
            c = op_costs[measured_as]
            ms = op_cost_ms(c, op.work)
            entry["ms"] += ms
            memory_ms += ms
            if measured_as != op.op_type:
                entry["priced_as"] = (
                    f"as one {measured_as} kernel between int8 tensors, its measured cost ({c['work']})"
                )
            else:
                entry["priced_as"] = f"its own measured cost ({c['work']})"
            if entry.get("boundaries"):
                entry["priced_as"] += (
                    f", plus {entry['boundaries']} precision boundaries around it (in float between int8 tensors)"
                )
        elif op.kind == "memory":
            if rate is None:
                entry["priced_as"] = "not modeled by this target (an accelerator model of conv/linear layers): 0 ms"
                continue
            ms = linear_ms(rate, op.elements)
            entry["ms"] += ms
            memory_ms += ms
            entry["priced_as"] = how
        elif op.kind == "fused":
            entry["priced_as"] = "fused into the preceding layer by the runtime: 0 ms"
        else:
            entry["priced_as"] = (
                "precision boundary, priced by the predictor" if op.op_type.endswith("Linear") else "no compute: 0 ms"
            )
    precisions: dict[str, int] = defaultdict(int)
    for layer in graph.layers:
        key = "int8" if profile.runs_int8(layer.w_bits, layer.a_bits) else "fp32"
        precisions[f"{key} {layer.op}"] += 1
    return _with_trust(
        {
            "target": profile.name,
            "predictor": name,
            "batch_size": batch,
            "latency_ms": pred.total_ms + memory_ms,
            "layers_ms": pred.total_ms,
            "memory_ops_ms": memory_ms,
            "layers": dict(sorted(precisions.items())),
            "macs": int(sum(l.macs for l in graph.layers)),
            "uncovered_ops": {k: {**v, "ms": round(v["ms"], 6)} for k, v in sorted(uncovered.items())},
            "notes": (notes or []) + graph.notes + pred.notes,
        }
    )


#: ops that do real arithmetic (recurrences, matrix products of two activations, transposed convs): priced unmeasured
#: as memory traffic, they are priced far under what they take
COMPUTE_OPS = frozenset(
    {
        "LSTM",
        "GRU",
        "RNN",
        "DynamicQuantizeLSTM",
        "Einsum",
        "MatMul",
        "FusedMatMul",
        "MatMulInteger",
        "QLinearMatMul",
        "MatMulIntegerToFloat",
        "Gemm",
        "FusedGemm",
        "ConvTranspose",
        "ConvInteger",
        "Conv",
        "QLinearConv",
        "NhwcConv",
        "Attention",
        "MultiHeadAttention",
        "QAttention",
        "QLinearConvTranspose",
    }
)


def _with_trust(result: dict[str, Any]) -> dict[str, Any]:
    """``untrusted``: the compute ops the price treats as memory traffic or leaves out, by count; said first."""
    untrusted = {
        op: v["count"]
        for op, v in result["uncovered_ops"].items()
        if op.split(".")[-1] in COMPUTE_OPS
        and ("not measured" in v["priced_as"] or "memory traffic" in v["priced_as"] or "not modeled" in v["priced_as"])
    }
    result["untrusted"] = untrusted
    return result


def calibrate_kernel_prices(priced: dict[str, Any], profile, base: str, overhead_ms: float, notes: list[str]) -> None:
    """Re-weight kernel prices (from the ``base`` predictor) by the profile's calibration for ONNX models, fitted
    on whole networks of real topologies' blocks (``kernel_calibration``), when it has one."""
    from nasq.kernel_pricing import apply_kernel_calibration

    fits = profile.data.get("kernel_calibration", {}).get("fits", {})
    if base not in fits:
        notes.append(
            f"the profile has no calibration for ONNX models (one fitted on whole networks): priced as its "
            f"{base} predictor prices the kernels"
        )
        return
    cal = fits[base]
    priced["calibration"] = {
        "base": base,
        "uncalibrated_ms": priced["latency_ms"],
        **dict(zip(cal["features"], cal["coefficients"])),
        "fitted_on_networks": cal["fitted_on_networks"],
    }
    priced["latency_ms"] = apply_kernel_calibration(cal, overhead_ms, priced["parts"])


def format_prediction(result: dict[str, Any], max_notes: int = 8) -> str:
    untrusted = result.get("untrusted")
    warning = (
        (
            "; NOT TO BE TRUSTED: "
            + ", ".join(f"{op} x{n}" for op, n in untrusted.items())
            + " do real compute that this target prices as memory traffic, unmeasured"
        )
        if untrusted
        else ""
    )
    lines = [
        f"{result['target']} ({result['predictor']} predictor, batch {result['batch_size']}): "
        f"{result['latency_ms']:.4g} ms predicted{warning}",
        f"  layers: {result['layers_ms']:.4g} ms for "
        + ", ".join(f"{n} {k}" for k, n in result["layers"].items())
        + f" ({result['macs'] / 1e6:.1f} M MACs)",
        f"  other ops: {result['memory_ops_ms']:.4g} ms",
    ]
    cal = result.get("calibration")
    if cal:
        lines.insert(
            1,
            f"  calibrated on {cal['fitted_on_networks']} measured networks of real topologies' blocks: "
            f"float layers x{cal['fp32_layers_ms']:.3g}, int8 layers x{cal['int8_layers_ms']:.3g}, other "
            f"ops x{cal['other_ops_ms']:.3g} (the {cal['base']} prices below: {cal['uncalibrated_ms']:.4g} ms)",
        )
    for op, v in result["uncovered_ops"].items():
        lines.append(f"    {op} x{v['count']}: {v['ms']:.4g} ms, {v['priced_as']}")
    notes = result["notes"]
    if notes:
        lines.append(f"  notes ({len(notes)}):")
        lines += [f"    {n}" for n in notes[:max_notes]]
        if len(notes) > max_notes:
            lines.append(f"    ... and {len(notes) - max_notes} more (--json lists all)")
    return "\n".join(lines)


def prices_onnx(profile) -> bool:
    """Whether ``nasq predict`` prices ONNX models for this target (a table fitted on one space's whole
    architectures prices that space's candidates only)."""
    return "space" not in profile.data


def latency_of_file(model: bytes, profile) -> float:
    """An exported model's latency on ``profile``'s target, as ``nasq predict`` prices it."""
    import onnx

    return float(predict_model(onnx.load_from_string(model), profile)["latency_ms"])


#: random inputs a network is built and exported on for pricing: its graph, not its weights, decides the price
PRICING_SAMPLES = 32


def build_untrained(space, candidate: dict, seed: int, samples: int = 256):
    """The candidate's network, pruned and quantized, with observers set on ``samples`` random inputs."""
    import numpy as np
    import torch

    from nasq.data import Split
    from nasq.train import compress, recalibrate_batchnorm

    torch.manual_seed(seed)
    model = space.build(candidate)
    x = np.random.default_rng(seed).standard_normal((samples, *space.input_shape)).astype(np.float32)
    # statistics from the data, as training would set them: an untrained network's activations otherwise shrink
    # layer after layer into denormal floats, which x86 computes slowly
    data = Split(x, np.zeros(len(x), np.int64))
    recalibrate_batchnorm(model, data, samples=len(x), batch_size=64)
    compress(space, model.eval(), candidate, data)  # (pruning traces the model: in eval mode, the statistics stay)
    return model.eval(), x


def exported_latencies(space, candidate: dict, profiles: dict[str, Any], *, seed: int = 0) -> dict[str, float]:
    """Each target's latency of a candidate, priced from its real graph: the network built (untrained) and exported
    for that target as ``nasq best`` exports it, priced like ``nasq predict`` prices that file. Targets that share
    an export (the same layers run int8, the same int8 recipe) share one. ``profiles``: target -> Profile, each
    one that :func:`prices_onnx`."""
    import tempfile

    from nasq.export import EXPORTERS, layer_modes

    model, x = build_untrained(space, candidate, seed, samples=PRICING_SAMPLES)
    bits = {l.name: (l.w_bits, l.a_bits) for l in space.layers(candidate)}
    exporter = EXPORTERS.create("onnx")
    files: dict = {}
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target, profile in profiles.items():
            modes = layer_modes(bits, profile)
            key = (
                tuple(sorted(modes.items())),
                profile.int8_recipe["reduce_range"] if "int8" in modes.values() else None,
            )
            if key not in files:
                path = Path(tmp) / f"{len(files)}.onnx"
                exporter.export(model, bits, profile, x, path)
                files[key] = path.read_bytes()
            out[target] = latency_of_file(files[key], profile)
    return out
