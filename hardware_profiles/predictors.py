"""Latency predictors: the interface, and the table predictor for measured profiles.

A predictor turns a candidate's layer list (:class:`nasq.spaces.LayerSpec`, after pruning, with
bit-widths) into a latency in milliseconds, with a per-layer breakdown and notes on every layer it
had to price by a fallback (never a silent zero).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from nasq.errors import NasqError
from nasq.hardware_profiles.costs import linear_ms, op_cost_ms
from nasq.hardware_profiles.profile import Profile
from nasq.hardware_profiles.registries import PREDICTORS
from nasq.hardware_profiles.schema import HOUR_MS
from nasq.spaces.base import LayerSpec

T = TypeVar("T")


@dataclass
class Prediction:
    total_ms: float
    layer_ms: dict[str, float] = field(default_factory=dict)
    boundary_ms: float = 0.0
    overhead_ms: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: additive parts of the total by kind (e.g. ``fp32_conv_ms``, ``boundary_ms``, ``layers``), for calibration
    components: dict[str, float] = field(default_factory=dict)


class LatencyPredictor(ABC):
    """Predicts a network's latency on one target from its layers.

    Contract: :meth:`predict` returns a positive ``total_ms`` for every list of layers whose ops
    the profile can price, and names each layer priced by a fallback in ``notes``; it raises
    NasqError for an op it cannot price at all. :meth:`validate_profile` checks the profile's
    predictor-specific fields when the profile is loaded.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    @classmethod
    @abstractmethod
    def validate_profile(cls, profile: Profile) -> None:
        """Raise NasqError naming the first missing or bad field."""

    @abstractmethod
    def predict(self, layers: Sequence[LayerSpec]) -> Prediction: ...

    def predict_candidate(self, space, candidate: dict, layers: Sequence[LayerSpec] | None = None) -> Prediction:
        """A candidate of ``space``: by default, its layers (``layers``, when the caller has them already).
        Predictors fitted on whole architectures of one space (published tables) override this and
        refuse other spaces."""
        return self.predict(space.layers(candidate) if layers is None else layers)


def _require(profile: Profile, key: str, typ: type[T]) -> T:
    value = profile.data.get(key)
    if not isinstance(value, typ):
        raise NasqError(f"profile {profile.source}: field '{key}' must be {typ.__name__}, got {value!r}")
    return value


def _positive(profile: Profile, where: str, value: object, high: float | None = None) -> float:
    """A non-negative finite number, at most ``high`` where given (a physical bound); NasqError naming both."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise NasqError(f"profile {profile.source}: {where} must be a non-negative number, got {value!r}")
    if high is not None and value > high:
        raise NasqError(f"profile {profile.source}: {where} = {value!r} is out of range; allowed: 0 to {high:g}")
    return float(value)


LAYER_FIELDS = ("op", "cin", "cout", "kernel", "stride", "h_in", "precision", "latency_ms")
OPS = ("conv", "dwconv", "linear")
PRECISIONS = ("fp32", "int8")


@PREDICTORS.register("table")
class TablePredictor(LatencyPredictor):
    """Lookup with interpolation over measured per-layer latencies, plus boundary and call costs.

    Profile fields:
      ``overhead_ms``: per-inference-call cost (Python and session overhead);
      ``boundary``: ``{"quantize"|"dequantize": {"intercept_ms", "per_melement_ms"}}``, the cost of an
      fp32->int8 (resp. int8->fp32) transition as a linear function of the tensor's elements;
      ``simulated_activation`` (optional): the same linear cost for the float arithmetic that simulates a
      sub-8-bit activation quantizer in front of a layer that runs in fp32 (what the exporter writes);
      ``layers``: measured entries ``{op, cin, cout, kernel, stride, h_in, precision, latency_ms}``
      with precision ``fp32`` or ``int8`` (int8 entries exclude their boundary costs).

    A layer is priced by bilinear interpolation over (cin, cout) among the entries of the same
    (op, kernel, stride, h_in, precision, alignment class); just outside the measured channel range it
    is scaled by MACs from the nearest entry; far outside it, or with no entry of that geometry, by the
    profile's per-kernel regressor when it has one, else from the nearest entry or geometry of the same
    op scaled by MACs (all noted). A layer runs int8 iff the profile runs int8 and its weights and
    activations both have 8 bits; otherwise it runs (and is priced) in fp32.
    """

    @classmethod
    def validate_profile(cls, profile: Profile) -> None:
        _positive(profile, "overhead_ms", profile.data.get("overhead_ms"), HOUR_MS)
        layers = _require(profile, "layers", list)
        if not layers:
            raise NasqError(f"profile {profile.source}: 'layers' is empty")
        for i, entry in enumerate(layers):
            if not isinstance(entry, dict) or any(f not in entry for f in LAYER_FIELDS):
                raise NasqError(f"profile {profile.source}: layers[{i}] must have fields {', '.join(LAYER_FIELDS)}")
            if entry["op"] not in OPS or entry["precision"] not in PRECISIONS:
                raise NasqError(
                    f"profile {profile.source}: layers[{i}] has op {entry['op']!r} / precision "
                    f"{entry['precision']!r}; allowed ops {OPS}, precisions {', '.join(PRECISIONS)}"
                )
            for key in ("cin", "cout", "kernel", "stride", "h_in"):
                if not isinstance(entry[key], int) or isinstance(entry[key], bool) or entry[key] < 1:
                    raise NasqError(
                        f"profile {profile.source}: layers[{i}].{key} must be a positive integer, got {entry[key]!r}"
                    )
            _positive(profile, f"layers[{i}].latency_ms", entry["latency_ms"], HOUR_MS)
        if profile.int8:
            boundary = _require(profile, "boundary", dict)
            for kind in ("quantize", "dequantize"):
                if not isinstance(boundary.get(kind), dict):
                    raise NasqError(f"profile {profile.source}: boundary lacks '{kind}'")
                for key in ("intercept_ms", "per_melement_ms"):
                    _positive(profile, f"boundary.{kind}.{key}", boundary[kind].get(key), HOUR_MS)
        block = profile.data.get("nchwc_block_size", 0)
        if not isinstance(block, int) or isinstance(block, bool) or block < 0:
            raise NasqError(f"profile {profile.source}: nchwc_block_size must be a non-negative integer, got {block!r}")
        for optional in ("simulated_activation", "elementwise"):
            if optional in profile.data:
                sim = _require(profile, optional, dict)
                for key in ("intercept_ms", "per_melement_ms"):
                    _positive(profile, f"{optional}.{key}", sim.get(key), HOUR_MS)
        if "kernel_model" in profile.data:
            from nasq.hardware_profiles.kernel_model import validate_kernel_model

            validate_kernel_model(profile.data["kernel_model"], profile.source)

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self.overhead_ms = float(profile.data["overhead_ms"])
        self.boundary = dict(profile.data.get("boundary", {}))
        if "simulated_activation" in profile.data:
            self.boundary["simulated_activation"] = profile.data["simulated_activation"]
        self.kernel_model = None
        if "kernel_model" in profile.data:
            from nasq.hardware_profiles.kernel_model import KernelModel

            self.kernel_model = KernelModel(profile.data["kernel_model"])
        self._groups: dict[tuple, dict[tuple[int, int], float]] = defaultdict(dict)
        self._memo: dict[tuple, tuple[float, tuple[str, ...]]] = {}
        for e in profile.data["layers"]:
            key = (
                e["op"],
                e["kernel"],
                e["stride"],
                e["h_in"],
                e["precision"],
                _alignment(e["op"], e["precision"], e["cin"]),
            )
            self._groups[key][(e["cin"], e["cout"])] = float(e["latency_ms"])

    def precision(self, layer: LayerSpec) -> str:
        return "int8" if self.profile.runs_int8(layer.w_bits, layer.a_bits) else "fp32"

    def boundary_ms(self, kind: str, numel: int) -> float:
        return linear_ms(self.boundary[kind], numel)

    def layer_ms(self, layer: LayerSpec, precision: str, notes: list[str], chained: bool = False) -> float:
        """A layer's cost as measured alone; ``chained``: it runs between float layers (no layout
        reorders at its edges), which only the per-kernel regressor distinguishes."""
        key = (layer.op, layer.kernel, layer.stride, layer.h_in, precision, _alignment(layer.op, precision, layer.cin))
        table = self._groups.get(key)
        if table is None:  # a class the profile did not measure: the nearest better-aligned one
            table = next(
                (self._groups[k] for k in sorted(g for g in self._groups if g[:5] == key[:5] and g[5] > key[5])), None
            )
        if table is None and layer.cin <= STEM_CHANNELS:  # an image stem: the nearest size measured, by output pixels
            stems = [
                k
                for k in self._groups
                if k[:3] == key[:3]
                and k[4] == precision
                and layer.cin in {c for c, _ in self._groups[k]}
                and max(c for c, _ in self._groups[k]) <= STEM_CHANNELS
                and abs(math.log(k[3] / max(layer.h_in, 1))) <= math.log(STEM_SIZE_RANGE)
            ]
            if stems:
                near = min(stems, key=lambda k: abs(math.log(k[3] / max(layer.h_in, 1))))
                proxy = LayerSpec(layer.name, layer.op, layer.cin, layer.cout, layer.kernel, layer.stride, near[3])
                notes.append(
                    f"{layer.name}: stem at {layer.h_in} pixels priced from those measured at {near[3]}, "
                    "by output pixels"
                )
                return _interpolate(self._groups[near], proxy, notes) * layer.h_out**2 / max(proxy.h_out**2, 1)
        if table is None and self.kernel_model is not None:
            notes.append(
                f"{layer.name}: no {layer.op} k{layer.kernel} s{layer.stride} h{layer.h_in} {precision} "
                "in the table; priced by the per-kernel regressor"
            )
            return self.kernel_model.predict_ms(layer, precision, chained)
        if table is None:
            same_op = [k for k in self._groups if k[0] == layer.op and k[4] == precision]
            if not same_op:
                raise NasqError(f"target '{self.profile.name}' cannot price op '{layer.op}' in {precision}")
            key = min(
                same_op,
                key=lambda k: (
                    abs(math.log(max(k[3], 1) / max(layer.h_in, 1))),
                    k[1] != layer.kernel,
                    k[2] != layer.stride,
                ),
            )
            table = self._groups[key]
            notes.append(
                f"{layer.name}: no {layer.op} k{layer.kernel} s{layer.stride} h{layer.h_in} {precision} "
                f"measured; scaled by MACs from k{key[1]} s{key[2]} h{key[3]}"
            )
            proxy = LayerSpec(layer.name, layer.op, layer.cin, layer.cout, key[1], key[2], key[3])
            return _interpolate(table, proxy, notes) * layer.macs / max(proxy.macs, 1)
        if self.kernel_model is not None and _far_outside(table, layer):
            notes.append(
                f"{layer.name}: {layer.cin}x{layer.cout} channels far beyond the measured ones (MAC scaling "
                "would ignore how much better large kernels use the CPU); priced by the per-kernel regressor"
            )
            return self.kernel_model.predict_ms(layer, precision, chained)
        return _interpolate(table, layer, notes)

    def _layer_ms_cached(self, layer: LayerSpec, precision: str, notes: list[str], chained: bool) -> float:
        """:meth:`layer_ms`, remembered per layer geometry: a search prices the same layers over and over
        (screening thousands of candidates a second needs it), with the notes of its fallbacks, which name
        each layer that reuses them."""
        key = (
            layer.op,
            layer.cin,
            layer.cout,
            layer.kernel,
            layer.stride,
            layer.h_in,
            layer.w_bits,
            layer.a_bits,
            precision,
            chained,
        )
        memo = self._memo.get(key)
        if memo is None:
            fresh: list[str] = []
            cost = self.layer_ms(layer, precision, fresh, chained)
            prefix = f"{layer.name}:"
            memo = (cost, tuple(n[len(prefix) :] if n.startswith(prefix) else " " + n for n in fresh))
            if len(self._memo) > 200_000:
                self._memo.clear()
            self._memo[key] = memo
        notes.extend(f"{layer.name}:{n}" for n in memo[1])
        return memo[0]

    def op_ms(self, op: str, work: int) -> float:
        """A measured op outside the layer table (``op_costs``), else memory traffic at the elementwise
        rate, else free (profiles from before these were measured)."""
        costs = self.profile.data.get("op_costs", {})
        if op in costs:
            return op_cost_ms(costs[op], work)
        if "elementwise" in self.profile.data:
            return linear_ms(self.profile.data["elementwise"], 1.5 * work)
        return 0.0

    def predict(self, layers: Sequence[LayerSpec]) -> Prediction:
        """Layers in order, with a boundary wherever the precision changes and the ops between layers as
        an ONNX Runtime export runs them: a global average pool in float (the quantizer leaves it out),
        a residual add as one int8 kernel when its inputs and its consumer are int8, else in float
        (fused into the conv before it when that conv is float)."""
        pred = Prediction(total_ms=0.0, overhead_ms=self.overhead_ms)
        parts: dict[str, float] = defaultdict(float)
        precisions = [self.precision(layer) for layer in layers]
        inputs: list[str] = []  # the precision each layer's input arrives in
        previous = "fp32"  # the network's input is float

        def boundary(kind: str, numel: int) -> float:
            parts["transitions"] += 1
            return self.boundary_ms(kind, numel)

        for i, layer in enumerate(layers):
            precision = precisions[i]
            extra = 0.0
            if layer.op == "linear" and i and layers[i - 1].op != "linear" and layers[i - 1].h_out > 1:
                pooled = layers[i - 1].out_numel
                if previous == "int8":
                    pred.boundary_ms += boundary("dequantize", pooled)
                extra += self.op_ms("GlobalAveragePool", pooled)
                previous = "fp32"
            inputs.append(previous)
            if precision != previous:
                pred.boundary_ms += boundary("quantize" if precision == "int8" else "dequantize", layer.in_numel)
            chained = (
                i > 0
                and precision == previous == precisions[i - 1] == "fp32"
                and layer.a_bits >= 32
                and "linear" not in (layer.op, layers[i - 1].op)
            )
            cost = self._layer_ms_cached(layer, precision, pred.notes, chained)
            parts[f"{precision}_{layer.op}_ms"] += cost
            if precision == "fp32" and layer.op == "conv" and layer.cout % FP32_CONV_ALIGNMENT:
                parts["fp32_unaligned_conv_melements"] += (layer.in_numel + layer.out_numel) / 1e6
            if precision == "fp32" and layer.a_bits < 32 and "simulated_activation" in self.boundary:
                simulated = self.boundary_ms("simulated_activation", layer.in_numel)
                parts["simulated_activation_ms"] += simulated
                cost += simulated
            previous = precision
            if layer.residual and i - layer.residual + 1 >= 0:
                skip = inputs[i - layer.residual + 1]
                after = layers[i + 1] if i + 1 < len(layers) else None
                consumer = (
                    precisions[i + 1]
                    if after is not None and not (after.op == "linear" and layer.h_out > 1)
                    else "fp32"
                )
                if precision == skip == consumer == "int8":
                    add = self.op_ms("QLinearAdd", 2 * layer.out_numel)
                elif precision == "fp32" and skip == "fp32":
                    add = 0.0  # fused into the float conv before it
                else:
                    add = self.op_ms("Add", 2 * layer.out_numel)
                    if skip == "int8":
                        pred.boundary_ms += boundary("dequantize", layer.out_numel)
                    if precision == "int8":
                        pred.boundary_ms += boundary("dequantize", layer.out_numel)
                    previous = "fp32"
                parts["adds"] += add > 0
                extra += add
            parts["other_ops_ms"] += extra
            pred.layer_ms[layer.name] = cost + extra
        if previous == "int8" and layers:
            pred.boundary_ms += boundary("dequantize", layers[-1].out_numel)
        parts["boundary_ms"] = pred.boundary_ms
        parts["layers"] = len(layers)
        pred.components = dict(parts)
        pred.total_ms = self.overhead_ms + pred.boundary_ms + sum(pred.layer_ms.values())
        return pred


@PREDICTORS.register("kernel-regressor")
class KernelRegressorPredictor(TablePredictor):
    """Every layer priced by the profile's learned per-kernel regressor (``kernel_model``), plus the
    table predictor's boundaries, simulated activations and call overhead."""

    #: it prices a float conv between layers of a network itself (``chained``), without the lone layer's reorders
    learned_in_context = True

    @classmethod
    def validate_profile(cls, profile: Profile) -> None:
        super().validate_profile(profile)
        _require(profile, "kernel_model", dict)

    def layer_ms(self, layer: LayerSpec, precision: str, notes: list[str], chained: bool = False) -> float:
        return self.kernel_model.predict_ms(layer, precision, chained)


#: What an end-to-end calibration weighs: the table's own parts, plus counts for per-layer and
#: per-transition costs the isolated measurements cannot see (layout reorders, fusion, residual adds),
#: and the elements in and out of float convs whose output channels leave ONNX Runtime's blocked (NCHWc)
#: layout: the table measures float convs on a grid of aligned channel counts only, and on this
#: project's Xeon the in-network cost of the others was most of the error left on all-float networks.
CALIBRATION_FEATURES = (
    "fp32_conv_ms",
    "fp32_dwconv_ms",
    "fp32_linear_ms",
    "int8_conv_ms",
    "int8_dwconv_ms",
    "int8_linear_ms",
    "boundary_ms",
    "simulated_activation_ms",
    "other_ops_ms",
    "layers",
    "transitions",
    "adds",
    "fp32_unaligned_conv_melements",
)

#: A float conv's output channel count off a multiple of this leaves the blocked layout (see above).
FP32_CONV_ALIGNMENT = 8


def calibration_features(prediction: Prediction, names: Sequence[str] = CALIBRATION_FEATURES) -> list[float]:
    return [float(prediction.components.get(name, 0.0)) for name in names]


def fit_calibration(
    predictions: Sequence[Prediction], measured_ms: Sequence[float], features: Sequence[str] = CALIBRATION_FEATURES
) -> dict:
    """Non-negative least squares of measured whole-network latencies on the table's parts.

    Fitted on relative error (rows scaled by 1/measured), since every network's error counts alike.
    """
    from scipy.optimize import nnls

    x = np.array([[1.0, *calibration_features(p, features)] for p in predictions])
    y = np.asarray(measured_ms, float)
    coef, _ = nnls(x / y[:, None], np.ones_like(y))
    return {
        "features": list(features),
        "intercept_ms": float(coef[0]),
        "coefficients": [float(c) for c in coef[1:]],
        "fitted_on_networks": len(y),
    }


def apply_calibration(calibration: dict, prediction: Prediction) -> float:
    # the profile's own feature list: profiles fitted before a feature was added simply lack it
    features = calibration_features(prediction, calibration["features"])
    return calibration["intercept_ms"] + sum(c * f for c, f in zip(calibration["coefficients"], features))


class _Calibrated:
    """A base predictor's parts re-weighted by an end-to-end calibration on measured whole networks, stored
    in the profile field named by ``calibration_field`` (``features``, ``coefficients``, ``intercept_ms``)."""

    calibration_field = "calibration"
    #: the predictor whose kernel prices it re-weights for an ONNX model (``kernel_calibration.fits``)
    onnx_base = "table"

    @classmethod
    def validate_profile(cls, profile: Profile) -> None:
        super().validate_profile(profile)
        _validate_kernel_calibration(profile, cls.onnx_base)
        key = cls.calibration_field
        cal = _require(profile, key, dict)
        features = cal.get("features")
        if not isinstance(features, list) or not features or not set(features) <= set(CALIBRATION_FEATURES):
            raise NasqError(
                f"profile {profile.source}: {key}.features must be a list of names from {list(CALIBRATION_FEATURES)}"
            )
        coefs = cal.get("coefficients")
        if not isinstance(coefs, list) or len(coefs) != len(features):
            raise NasqError(
                f"profile {profile.source}: {key}.coefficients must list one number per feature ({len(features)})"
            )
        for i, c in enumerate(coefs):
            _positive(profile, f"{key}.coefficients[{i}]", c)
        _positive(profile, f"{key}.intercept_ms", cal.get("intercept_ms"))

    def predict(self, layers: Sequence[LayerSpec]) -> Prediction:
        pred = super().predict(layers)
        pred.total_ms = apply_calibration(self.profile.data[self.calibration_field], pred)
        return pred


def _validate_kernel_calibration(profile: Profile, base: str) -> None:
    """The ONNX-model calibration of ``base``'s kernel prices, when the profile has one (see nasq.kernel_pricing)."""
    from nasq.kernel_pricing import KERNEL_CALIBRATION_FEATURES

    if "kernel_calibration" not in profile.data:
        return
    fits = _require(profile, "kernel_calibration", dict).get("fits")
    if not isinstance(fits, dict):
        raise NasqError(f"profile {profile.source}: kernel_calibration.fits must map predictor names to fits")
    if base not in fits:
        return
    fit, where = fits[base], f"kernel_calibration.fits.{base}"
    if (
        not isinstance(fit, dict)
        or fit.get("features") != list(KERNEL_CALIBRATION_FEATURES)
        or not isinstance(fit.get("coefficients"), list)
        or len(fit["coefficients"]) != len(KERNEL_CALIBRATION_FEATURES)
    ):
        raise NasqError(
            f"profile {profile.source}: {where} must have features {list(KERNEL_CALIBRATION_FEATURES)} "
            "and one coefficient each"
        )
    for i, c in enumerate(fit["coefficients"]):
        _positive(profile, f"{where}.coefficients[{i}]", c)
    _positive(profile, f"{where}.fitted_on_networks", fit.get("fitted_on_networks"))


@PREDICTORS.register("calibrated")
class CalibratedPredictor(_Calibrated, TablePredictor):
    """The table predictor's parts, re-weighted by an end-to-end calibration on measured whole
    networks (profile field ``calibration``: ``features``, ``coefficients``, ``intercept_ms``)."""


@PREDICTORS.register("calibrated-regressor")
class CalibratedRegressorPredictor(_Calibrated, KernelRegressorPredictor):
    """The per-kernel regressor's parts (every layer by the learned model, a float conv in context),
    re-weighted by an end-to-end calibration fitted on them (profile field ``regressor_calibration``).
    The regressor prices a float conv between layers, the table only alone (with the reorders a lone conv
    pays); the calibration then has less to correct. On this project's Xeon, two fresh profiles: 88% and 79%
    of their 80 networks within +-10% out of fold, against 75% and 74% for the table's calibration."""

    calibration_field = "regressor_calibration"
    onnx_base = "kernel-regressor"


#: ONNX Runtime runs depthwise convs on kernels chosen by channel count: fp32 ones whose count is not a
#: multiple of 4 on its NCHW path instead of NCHWc (77 us instead of 7 us for 162 channels, 5x5, 4x4
#: pixels, on this project's Xeon); int8 ones fastest at multiples of 16, slower at other multiples of 8,
#: slowest otherwise (5x5 at 14x14: 16 channels 16 us, 24 channels 27 us, 12 channels 31 us).
DW_ALIGNMENT = {"fp32": (4,), "int8": (16, 8)}


#: a conv with at most this many input channels reads an image: a stem (see layer_ms)
STEM_CHANNELS = 4
#: ... priced from stems measured within this factor of its input size
STEM_SIZE_RANGE = 1.5


def _alignment(op: str, precision: str, channels: int) -> int:
    """The table's alignment class of a layer: the largest of its precision's alignments that divides
    its channel count (1 for none); every op other than depthwise conv is one class (0)."""
    if op != "dwconv":
        return 0
    return next((a for a in DW_ALIGNMENT.get(precision, ()) if channels % a == 0), 1)


def _far_outside(table: dict[tuple[int, int], float], layer: LayerSpec, factor: float = 1.5) -> bool:
    """Whether a layer's channel counts lie beyond the table's measured range by more than ``factor``."""
    cins, couts = [c for c, _ in table], [c for _, c in table]
    return (
        layer.cin > factor * max(cins)
        or layer.cin * factor < min(cins)
        or layer.cout > factor * max(couts)
        or layer.cout * factor < min(couts)
    )


def _interpolate(table: dict[tuple[int, int], float], layer: LayerSpec, notes: list[str]) -> float:
    """Bilinear interpolation over the (cin, cout) grid; MAC scaling outside it."""
    cins = np.array(sorted({c for c, _ in table}))
    couts = np.array(sorted({c for _, c in table}))
    ci, co = layer.cin, layer.cout
    if layer.op == "dwconv":  # cin == cout: the grid is its diagonal
        chans = np.array(sorted(c for c, _ in table))
        lat = np.array([table[(c, c)] for c in chans])
        c = min(max(ci, chans[0]), chans[-1])
        value = float(np.interp(c, chans, lat))
        if c != ci:
            notes.append(f"{layer.name}: {ci} channels outside measured {chans[0]}..{chans[-1]}; scaled by MACs")
            value *= ci / c
        return value
    cc = min(max(ci, cins[0]), cins[-1])
    oc = min(max(co, couts[0]), couts[-1])
    # interpolate along cout for each measured cin, then along cin
    rows = []
    for c in cins:
        pts = sorted((o, v) for (i, o), v in table.items() if i == c)
        rows.append(np.interp(oc, [p[0] for p in pts], [p[1] for p in pts]))
    value = float(np.interp(cc, cins, rows))
    if (cc, oc) != (ci, co):
        notes.append(
            f"{layer.name}: {ci}x{co} channels outside measured {cins[0]}..{cins[-1]} x "
            f"{couts[0]}..{couts[-1]}; scaled by MACs"
        )
        value *= (ci * co) / (cc * oc)
    return value
