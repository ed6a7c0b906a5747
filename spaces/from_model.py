"""The search space of one trained model: its channel groups' pruning ratios and its layers' bit-widths.

Derived from the model by :func:`nasq.models.tracing.trace_model`: every prunable group (torch-pruning's dependency
graph: channels coupled by residual adds share one ratio) has a ``<group>.prune`` parameter, every conv and linear
layer ``<layer>.w_bits`` and ``<layer>.a_bits``. A candidate is the trained model with the least important channels
of each group removed (L1 magnitude over the group), its BatchNorms folded into the convs before them, and its
layers fake-quantized; it is fine-tuned with distillation from the original (:func:`nasq.train.compress_and_train`).

Per-layer overrides, by qualified name or glob pattern (torchao's per-FQN style), in the config's ``model.layers``:
``prune: false`` keeps a layer's output channels, ``quantize: false`` keeps it float, ``w_bits`` / ``a_bits`` fix
its bit-widths.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasq.compress import BIT_CHOICES, FLOAT_BITS, kept_channels
from nasq.errors import NasqError
from nasq.models.loading import LayerOverride, ModelSpec
from nasq.spaces import SPACES
from nasq.spaces.base import Candidate, LayerSpec, SearchSpace, Suggester

PRUNE_RATIOS = (0.0, 0.25, 0.5, 0.75)


@dataclass(frozen=True)
class ModelSpaceOptions:
    prune_ratios: tuple[float, ...] = PRUNE_RATIOS
    bits: tuple[int, ...] = BIT_CHOICES
    layers: Mapping[str, LayerOverride] = field(default_factory=dict)
    remove_blocks: bool = True  # search the removal of residual blocks (trace.blocks)


@SPACES.register("from-model")
class ModelSpace(SearchSpace):
    """The space of compressed versions of one trained model (see the module docstring)."""

    name = "from-model"
    #: candidates start from trained weights: no float training before pruning, fine-tuning distils the original
    pretrained = True

    def __init__(
        self,
        model: ModelSpec | None = None,
        options: ModelSpaceOptions = ModelSpaceOptions(),
        weights_data: bytes | None = None,
        module=None,
    ) -> None:
        from nasq.models.loading import load_model
        from nasq.models.tracing import trace_model

        if model is None:
            raise NasqError(
                "space 'from-model' needs a model: give the config a model block (factory, weights, input_shape)"
            )
        if weights_data is None and model.weights:
            file = Path(model.weights).expanduser()
            weights_data = file.read_bytes() if file.is_file() else None  # (load_model names a missing file)
        self.spec, self.options, self._weights_data, self._module = model, options, weights_data, module
        loaded = load_model(model, weights_data=weights_data, module=module)
        self.original = loaded.module
        self.input_shape = tuple(loaded.input_shape)
        self.num_classes = loaded.num_outputs
        for ratio in options.prune_ratios:
            if not 0.0 <= ratio < 1.0:
                raise NasqError(f"model.prune_ratios: {ratio} is not in [0, 1)")
        for bits in options.bits:
            if bits != FLOAT_BITS and not 2 <= bits <= 8:
                raise NasqError(f"model.bits: {bits} not supported; allowed: 2..8 or {FLOAT_BITS} (float)")
        names = {n for n, _ in self.original.named_modules()}
        for pattern in options.layers:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise NasqError(
                    f"model.layers: '{pattern}' matches no module of the model; its layers are named "
                    f"like {', '.join(sorted(n for n in names if n)[:4])}"
                )
        frozen = {n for n in names if not self._override(n).prune}
        self.trace = trace_model(self.original, self.input_shape, frozen=frozen)
        order = {l.name: i for i, l in enumerate(self.trace.layers)}
        self.trace.groups.sort(key=lambda g: order[g.name])  # parameters in execution order
        self.blocks = self._removable_blocks()  # (once: every sample of the space reads it)
        # named after the model, its layers and what pruning makes of them (the layer shapes a profile covers), so
        # that a local profile measured for it is found again for it only
        from nasq.spaces import remember_space

        shapes = json.dumps(
            [
                [[l.op, l.cin, l.cout, l.kernel, l.stride, l.h_in] for l in self.trace.layers],
                sorted(options.prune_ratios),
                sorted(frozen),
            ]
        )
        factory = model.factory.rsplit(":", 1)[-1]
        self.name = f"from-model:{factory}:{hashlib.sha1(shapes.encode()).hexdigest()[:8]}"
        remember_space(self)

    def __getstate__(self) -> dict:
        """Pickled as what rebuilds it (a Ray actor, a searcher's checkpoint): the model's code may not be
        importable by name where it is unpickled (a model handed over in Python travels itself)."""
        return {"spec": self.spec, "options": self.options, "weights": self._weights_data, "module": self._module}

    def __setstate__(self, state: dict) -> None:
        ModelSpace.__init__(
            self, state["spec"], state["options"], weights_data=state["weights"], module=state.get("module")
        )

    def _override(self, layer: str) -> LayerOverride:
        """The last override whose name or pattern matches ``layer`` (exact names win over patterns)."""
        found = LayerOverride()
        for pattern, o in self.options.layers.items():
            if fnmatch.fnmatchcase(layer, pattern) and pattern != layer:
                found = o
        return self.options.layers.get(layer, found)

    # -- the space --------------------------------------------------------------------------------

    def _removable_blocks(self) -> dict[str, str]:
        """The residual blocks a candidate may remove (``<block>.remove``): none holds a layer an override keeps."""
        if not self.options.remove_blocks:
            return {}
        kept = [l.name for l in self.trace.layers if self._override(l.name) != LayerOverride()]
        return {b: left for b, left in self.trace.blocks.items() if not any(n.startswith(b + ".") for n in kept)}

    @staticmethod
    def removed(candidate: Candidate) -> list[str]:
        return [k[: -len(".remove")] for k, v in candidate.items() if k.endswith(".remove") and v]

    def _present(self, candidate: Candidate) -> list:
        """The traced layers the candidate keeps (those of removed blocks go)."""
        gone = tuple(b + "." for b in self.removed(candidate))
        return [l for l in self.trace.layers if not (gone and l.name.startswith(gone))]

    def define(self, trial: Suggester) -> None:
        for group in self.trace.groups:
            trial.suggest_categorical(f"{group.name}.prune", self.options.prune_ratios)
        for block in self.blocks:
            trial.suggest_categorical(f"{block}.remove", [False, True])
        for layer in self.trace.layers:
            o = self._override(layer.name)
            for kind, fixed in (("w_bits", o.w_bits), ("a_bits", o.a_bits)):
                choices = [FLOAT_BITS] if not o.quantize else [fixed] if fixed else list(self.options.bits)
                trial.suggest_categorical(f"{layer.name}.{kind}", choices)

    def build(self, candidate: Candidate):
        """The trained model (a copy), its conv and linear layers made quantizable, still at float and unpruned."""
        from torch import nn

        from nasq.compress import QuantConvBNAct, QuantLinear

        model = copy.deepcopy(self.original)
        for block in self.removed(candidate):  # what is left of a residual block without its branch
            model.set_submodule(block, nn.ReLU() if self.trace.blocks[block] == "relu" else nn.Identity())
        for layer in self._present(candidate):
            m = model.get_submodule(layer.name)
            model.set_submodule(layer.name, QuantLinear.wrap(m) if layer.op == "linear" else QuantConvBNAct.wrap(m))
        return model

    def quantize(self, model, candidate: Candidate) -> None:
        from nasq.compress import apply_bits

        present = {l.name for l in self._present(candidate)}
        apply_bits(
            model,
            {n: b for n, b in self.per_layer(candidate, "w_bits").items() if n in present},
            {n: b for n, b in self.per_layer(candidate, "a_bits").items() if n in present},
        )

    def teacher(self):
        """The original model, for distillation."""
        return self.original

    def compress(self, model, candidate: Candidate) -> None:
        """Prune, then fold each conv's BatchNorm into it (:meth:`prune`, :meth:`fold_batchnorms`)."""
        self.prune(model, candidate)
        self.fold_batchnorms(model)

    def prune(self, model, candidate: Candidate) -> None:
        """Prune each group as the candidate says: the trained weights' least important channels go."""
        import torch

        from nasq.compress import prune_channels

        present = {l.name for l in self._present(candidate)}
        ratios = {
            g.name: candidate[f"{g.name}.prune"]
            for g in self.trace.groups
            if candidate[f"{g.name}.prune"] > 0 and g.name in present
        }
        prune_channels(model, ratios, torch.zeros(1, *self.input_shape))

    def fold_batchnorms(self, model) -> None:
        """Fold each BatchNorm that only reads a conv's output into that conv, so that quantization-aware
        fine-tuning sees the weights that are exported."""
        from torch import nn

        from nasq.compress import folded_conv

        names = {n for n, _ in model.named_modules()}
        for conv_name, bn_name in self.trace.batchnorm_after.items():
            if conv_name not in names:  # (in a removed block)
                continue
            bn = model.get_submodule(bn_name)
            if isinstance(bn, nn.BatchNorm2d):  # (not folded already)
                layer = model.get_submodule(conv_name)
                layer.conv = folded_conv(layer.conv, bn)
                model.set_submodule(bn_name, nn.Identity())
        # the activation that alone reads a conv's output, applied in the layer too (the model's own call of it is
        # then a no-op): an int8 conv's output is quantized after it, on the non-negative range ONNX Runtime
        # quantizes (its quantizer drops the ReLU in front of a QuantizeLinear)
        for conv_name, kind in self.trace.activation_after.items():
            if conv_name in names:
                model.get_submodule(conv_name).act = nn.ReLU() if kind == "relu" else nn.ReLU6()

    def widths(self, candidate: Candidate) -> dict[str, tuple[int, int]]:
        """Each layer's (input, output) channels after the candidate's pruning."""
        cin = {l.name: l.cin for l in self.trace.layers}
        cout = {l.name: l.cout for l in self.trace.layers}
        for g in self.trace.groups:
            removed = g.channels - kept_channels(g.channels, candidate[f"{g.name}.prune"])
            for name, share in g.outputs.items():
                cout[name] -= removed * share
            for name, share in g.inputs.items():
                cin[name] -= removed * share
        return {n: (cin[n], cout[n]) for n in cin}

    def layers(self, candidate: Candidate) -> list[LayerSpec]:
        widths = self.widths(candidate)
        specs = []
        for l in self._present(candidate):
            cin, cout = widths[l.name]
            if l.op == "dwconv":
                cin = cout
            elif l.op == "conv" and l.groups > 1:  # (not traced as compressible: kept for completeness)
                cin //= l.groups
            specs.append(
                LayerSpec(
                    l.name,
                    l.op,
                    cin,
                    cout,
                    l.kernel,
                    l.stride,
                    l.h_in,
                    w_bits=candidate[f"{l.name}.w_bits"],
                    a_bits=candidate[f"{l.name}.a_bits"],
                    residual=self.trace.residuals.get(l.name, 0),
                )
            )
        return specs

    def profile_shapes(self, *, quick: bool = False) -> list[LayerSpec]:
        """Every layer at every pruning ratio of its input and output channels (the ratios' extremes when quick)."""
        ratios = sorted(self.options.prune_ratios)
        if quick and len(ratios) > 2:
            ratios = [ratios[0], ratios[len(ratios) // 2], ratios[-1]]
        shapes, seen = [], set()
        for l in self.trace.layers:
            for r_in in ratios:
                for r_out in ratios:
                    cin = l.cin if l.op == "dwconv" else kept_channels(l.cin, r_in)
                    cout = l.cout if l.op == "linear" and l is self.trace.layers[-1] else kept_channels(l.cout, r_out)
                    if l.op == "dwconv":
                        cin = cout
                    spec = LayerSpec("", l.op, cin, cout, l.kernel, l.stride, l.h_in)
                    if spec not in seen:
                        seen.add(spec)
                        shapes.append(spec)
        return shapes

    def describe(self) -> dict[str, Any]:
        """What was derived, for the run's log: groups, layers, and what is left as it is."""
        return {
            "groups": {g.name: g.channels for g in self.trace.groups},
            "layers": [l.name for l in self.trace.layers],
            "batchnorms_folded": len(self.trace.batchnorm_after),
            "removable_blocks": list(self.blocks),
            "left_as_they_are": self.trace.unsupported,
        }
