"""Exporters: a trained, compressed candidate -> a deployable file for a target.

The ``onnx`` exporter writes one ONNX model in which each layer is, per the target:

* ``int8``: ONNX Runtime int8 QDQ (uint8 activations, int8 per-channel weights, in the reduced range
  -64..64 where the target's CPU lacks VNNI: its ``int8_recipe``), when the layer chose 8-bit weights and
  activations and the target runs int8;
* ``float``: plain fp32, when the layer chose float weights and activations;
* ``simulated``: any other bit-widths, which the target cannot run natively: weights rounded to
  their quantization levels and activations fake-quantized with float arithmetic, so the file
  computes exactly what was trained, at float speed.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasq.registry import Registry

EXPORTERS: Registry = Registry("exporter", builtin_modules=("nasq.export",))


@dataclass
class ExportInfo:
    path: Path
    layer_modes: dict[str, str]  # layer name -> int8 | float | simulated
    executed_ops: dict[str, int] = field(default_factory=dict)  # op types ORT really runs

    @property
    def simulated_layers(self) -> list[str]:
        return [name for name, mode in self.layer_modes.items() if mode == "simulated"]


class Exporter(ABC):
    """Writes a compressed model for a target.

    Contract: :meth:`export` writes ``path`` (atomically) from a trained, compressed model whose
    layers carry ``layer_bits`` (name -> (weight bits, activation bits)), and returns which mode
    each layer was exported in.
    """

    @abstractmethod
    def export(
        self, model, layer_bits: Mapping[str, tuple[int, int]], profile, calibration: np.ndarray, path: Path
    ) -> ExportInfo: ...


def layer_modes(layer_bits: Mapping[str, tuple[int, int]], profile) -> dict[str, str]:
    modes = {}
    for name, (w, a) in layer_bits.items():
        if profile.runs_int8(w, a):
            modes[name] = "int8"
        elif w == a == 32:
            modes[name] = "float"
        else:
            modes[name] = "simulated"
    return modes


@EXPORTERS.register("onnx")
class OnnxExporter(Exporter):
    """ONNX with int8 QDQ where the target runs int8 (see the module docstring)."""

    opset = 17

    def export(self, model, layer_bits, profile, calibration, path) -> ExportInfo:
        import onnx
        import torch

        from nasq.compress import FLOAT_BITS, activation_qparams, bake_weights, quant_layers, set_export_mode
        from nasq.fileio import write_bytes_atomic
        from nasq.ort import executed_ops, quantize_qdq

        modes = layer_modes(layer_bits, profile)
        model = copy.deepcopy(model).eval()
        layers = quant_layers(model)
        input_qparams, output_qparams = {}, {}  # the trained ranges of int8 layers, handed to ONNX Runtime
        for name, layer in layers.items():
            q, out = layer.input_quant, getattr(layer, "output_quant", None)
            if modes[name] == "int8" and bool(q.observed):
                input_qparams[name] = activation_qparams(float(q.lo), float(q.hi), 8)
            if modes[name] == "int8" and out is not None and bool(out.observed):
                output_qparams[name] = activation_qparams(float(out.lo), float(out.hi), 8)
        for name, layer in layers.items():
            if getattr(layer, "output_quant", None) is not None:  # ONNX Runtime's own Q/DQ stands for it
                layer.output_quant = None
            if modes[name] != "simulated":  # int8 layers are quantized by ONNX Runtime from float weights
                layer.w_bits = FLOAT_BITS
                layer.input_quant.bits = FLOAT_BITS
        bake_weights(model)
        set_export_mode(model, True)

        with tempfile.TemporaryDirectory() as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            with warnings.catch_warnings():  # tracer warnings about Python scalars in the quantizers
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (torch.from_numpy(calibration[:1]),),
                    str(fp32),
                    dynamo=False,
                    opset_version=self.opset,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                )
            graph_model = onnx.load(str(fp32))
            _drop_repeated_activations(graph_model)
            _name_nodes_by_layer(graph_model, set(layers))
            onnx.save(graph_model, str(fp32))
            int8_layers = [n for n, m in modes.items() if m == "int8"]
            if int8_layers:
                nodes = {n.name for n in graph_model.graph.node}
                wanted = [n for layer in int8_layers for n in (layer, f"{layer}.act") if n in nodes]
                feeds = [{"input": calibration[i : i + 32]} for i in range(0, min(len(calibration), 256), 32)]
                out = Path(tmp) / "int8.onnx"
                quantize_qdq(
                    fp32,
                    out,
                    feeds,
                    nodes_to_quantize=wanted,
                    input_qparams=input_qparams,
                    output_qparams=output_qparams,
                    reduce_range=profile.int8_recipe["reduce_range"],
                    float_outputs=("Gemm",),
                )  # the logits stay float (QGemm writes float)
                final = out.read_bytes()
            else:
                final = fp32.read_bytes()
        final = _with_simulated_bits(final, {n: layer_bits[n] for n, m in modes.items() if m == "simulated"})
        write_bytes_atomic(path, final)
        return ExportInfo(Path(path), modes, dict(executed_ops(final)))


#: the model property that records the bit-widths of simulated layers (by node name): the graph cannot show them (a
#: DequantizeLinear's type shows an int8 layer's), and a bit-flexible target prices them (nasq.onnx_graph)
SIMULATED_BITS = "nasq.simulated_bits"


def _with_simulated_bits(model: bytes, bits: Mapping[str, tuple[int, int]]) -> bytes:
    import json

    import onnx

    if not bits:
        return model
    proto = onnx.load_from_string(model)
    onnx.helper.set_model_props(
        proto,
        {
            **{p.key: p.value for p in proto.metadata_props},
            SIMULATED_BITS: json.dumps({n: list(b) for n, b in sorted(bits.items())}),
        },
    )
    return proto.SerializeToString()


def _drop_repeated_activations(model) -> None:
    """A Relu (or a Clip to the same bounds) of a tensor that one already made is the identity: its readers read
    that tensor (a trained model's layer applies the activation its model calls after it too)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    outputs = {o.name for o in model.graph.output}
    rename: dict[str, str] = {}
    keep = []
    for node in model.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        src = producer.get(node.input[0]) if node.input else None
        if node.op_type == "Relu" and src is not None and src.op_type == "Relu" and node.output[0] not in outputs:
            rename[node.output[0]] = node.input[0]
            continue
        keep.append(node)
    if len(keep) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(keep)


def _name_nodes_by_layer(model, layer_names: set[str]) -> None:
    """Name each Conv/Gemm node after the layer that owns its weight, and its activation ``<layer>.act``."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2:
            continue
        weight = node.input[1]
        layer = weight.rsplit(".", 2)[0]
        if layer in layer_names:
            node.name = layer
            nxt = consumers.get(node.output[0], [])
            if len(nxt) == 1 and nxt[0].op_type in ("Clip", "Relu"):
                nxt[0].name = f"{layer}.act"
