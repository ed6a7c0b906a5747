"""Compression primitives: fake quantization per layer, dependency-aware pruning, BN folding.

Per-layer settings are keyed by the layer's qualified module name (``"blocks.s0b1.expand"``), never
by module objects, so that they can be saved and rebuilt.

Bit-widths: 2..8 are integer fake quantization; ``FLOAT_BITS`` (32) means the layer stays float.
Weights are quantized symmetrically per output channel, activations (the layer's input)
asymmetrically per tensor with an exponential-moving-average min/max observer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

FLOAT_BITS = 32
BIT_CHOICES = (2, 4, 6, 8, FLOAT_BITS)


def _check_bits(bits: int) -> None:
    if bits != FLOAT_BITS and not 2 <= bits <= 8:
        raise ValueError(f"bit-width {bits} not supported; allowed: 2..8 or {FLOAT_BITS} (float)")


def fake_quantize_weight(weight: torch.Tensor, bits: int, qmax: int | None = None) -> torch.Tensor:
    """Symmetric per-output-channel fake quantization (levels -(2^(b-1)-1) .. 2^(b-1)-1, or -qmax .. qmax)."""
    if bits == FLOAT_BITS:
        return weight
    qmax = qmax or 2 ** (bits - 1) - 1
    flat = weight.detach().reshape(weight.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / qmax).clamp_min(1e-8)
    zero_point = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -qmax, qmax)


def activation_qparams(lo: float, hi: float, bits: int) -> tuple[float, int]:
    """Asymmetric per-tensor scale and zero point covering [lo, hi] (which always contains 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmax = 2**bits - 1
    scale = max((hi - lo) / qmax, 1e-8)
    zero_point = int(min(max(round(-lo / scale), 0), qmax))
    return scale, zero_point


class ActivationQuantizer(nn.Module):
    """Fake-quantizes its input to ``bits`` with an EMA min/max observer (straight-through gradient).

    In ``export_mode`` it is written with plain arithmetic (Div, Round, Clip, Mul) so that any
    bit-width exports to ONNX as simulated quantization in float.
    """

    def __init__(self, bits: int = FLOAT_BITS, momentum: float = 0.1) -> None:
        super().__init__()
        _check_bits(bits)
        self.bits = bits
        self.momentum = momentum
        self.export_mode = False
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("observed", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits == FLOAT_BITS:
            return x
        if self.training or not bool(self.observed):
            with torch.no_grad():
                lo, hi = x.min(), x.max()
                if bool(self.observed):
                    self.lo.lerp_(lo, self.momentum)
                    self.hi.lerp_(hi, self.momentum)
                else:
                    self.lo.copy_(lo)
                    self.hi.copy_(hi)
                    self.observed.fill_(True)
        scale, zero_point = activation_qparams(float(self.lo), float(self.hi), self.bits)
        qmax = 2**self.bits - 1
        if self.export_mode:
            q = torch.clamp(torch.round(x / scale) + zero_point, 0, qmax)
            return (q - zero_point) * scale
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, qmax)


class QuantConvBNAct(nn.Module):
    """Conv2d -> BatchNorm -> optional ReLU6, with fake-quantized weights and input activations.

    After :func:`fold_batchnorm` the BN is folded into the conv (``bn`` becomes Identity), so that
    quantization-aware fine-tuning sees exactly the weights that are exported.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout)
        self.act: nn.Module = nn.ReLU6() if act else nn.Identity()
        self.input_quant = ActivationQuantizer()
        self.w_bits = FLOAT_BITS
        self.w_qmax: int | None = None  # the weights' largest level, when the deployed recipe narrows it
        self.output_quant: ActivationQuantizer | None = None  # where the target quantizes the output (int8 kernels)

    @classmethod
    def wrap(cls, conv: nn.Conv2d) -> QuantConvBNAct:
        """A user's trained conv as a quantizable layer (its BatchNorm and activation stay where the model has them)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.conv, layer.bn, layer.act = conv, nn.Identity(), nn.Identity()
        layer.input_quant = ActivationQuantizer()
        layer.w_bits, layer.w_qmax, layer.output_quant = FLOAT_BITS, None, None
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x)
        if self.w_bits == FLOAT_BITS:  # the plain module call lets torch-pruning trace the conv
            x = self.conv(x)
        else:
            weight = fake_quantize_weight(self.conv.weight, self.w_bits, self.w_qmax)
            x = nn.functional.conv2d(
                x, weight, self.conv.bias, self.conv.stride, self.conv.padding, 1, self.conv.groups
            )
        x = self.act(self.bn(x))
        return x if self.output_quant is None else self.output_quant(x)


class QuantLinear(nn.Module):
    """Linear layer with fake-quantized weights and input activations."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.linear = nn.Linear(cin, cout)
        self.input_quant = ActivationQuantizer()
        self.w_bits = FLOAT_BITS
        self.w_qmax: int | None = None

    @classmethod
    def wrap(cls, linear: nn.Linear) -> QuantLinear:
        """A user's trained linear layer as a quantizable one."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.linear, layer.input_quant = linear, ActivationQuantizer()
        layer.w_bits, layer.w_qmax = FLOAT_BITS, None
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x)
        if self.w_bits == FLOAT_BITS:
            return self.linear(x)
        return nn.functional.linear(
            x, fake_quantize_weight(self.linear.weight, self.w_bits, self.w_qmax), self.linear.bias
        )


QUANT_LAYERS = (QuantConvBNAct, QuantLinear)


def quant_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's quantizable layers by qualified name, in definition order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, QUANT_LAYERS)}


def apply_bits(model: nn.Module, w_bits: Mapping[str, int], a_bits: Mapping[str, int]) -> None:
    """Set per-layer weight and activation bit-widths; every quantizable layer must be named."""
    layers = quant_layers(model)
    missing = set(layers) - set(w_bits) | set(layers) - set(a_bits)
    unknown = (set(w_bits) | set(a_bits)) - set(layers)
    if missing or unknown:
        raise ValueError(
            f"bit-widths do not match the model's layers: missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    for name, layer in layers.items():
        _check_bits(w_bits[name])
        _check_bits(a_bits[name])
        layer.w_bits = int(w_bits[name])
        layer.input_quant.bits = int(a_bits[name])
        layer.input_quant.observed.fill_(False)


def apply_int8_recipe(model: nn.Module, profile, example_input: torch.Tensor) -> None:
    """Quantize the layers that ``profile``'s target runs on int8 kernels as ONNX Runtime will run them, so that
    fine-tuning and the torch model's predictions see what the exported model computes:

    * weights in the target's range (``int8_recipe``: -64..64 on a CPU without VNNI, else -127..127);
    * the output of an int8 conv quantized to 8 bits, since an int8 conv kernel writes uint8: with the input
      quantizer of the layer that reads it, where that layer takes 8-bit input (one grid for the tensor, as ONNX
      Runtime has one), else with a quantizer of its own. A linear layer's output stays float (the logits).

    Direct consumers are found by running ``example_input`` through the model."""
    qmax = int(profile.int8_recipe.get("weight_range", 127))
    layers = quant_layers(model)
    int8 = {n for n, l in layers.items() if profile.runs_int8(l.w_bits, l.input_quant.bits)}
    for name in int8:
        layers[name].w_qmax = qmax if qmax != 127 else None
    readers = direct_consumers(model, example_input)
    for name in int8:
        layer = layers[name]
        if not isinstance(layer, QuantConvBNAct):
            continue
        eight_bit = [c for c in readers.get(name, []) if layers[c].input_quant.bits == 8]
        layer.output_quant = layers[eight_bit[0]].input_quant if eight_bit else ActivationQuantizer(8)


@torch.no_grad()
def direct_consumers(model: nn.Module, example_input: torch.Tensor) -> dict[str, list[str]]:
    """Quantizable layer -> the quantizable layers that read its output tensor as it is (no op between). Traced on a
    copy: a forward pass sets observers that have seen nothing yet."""
    import copy

    model = copy.deepcopy(model)
    layers = quant_layers(model)
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # id of an output tensor -> (layer, the tensor kept alive)
    readers: dict[str, list[str]] = {}

    def after(name):
        return lambda module, inputs, output: produced.__setitem__(id(output), (name, output))

    def before(name):
        def hook(module, inputs):
            source = produced.get(id(inputs[0]))
            if source is not None and source[1] is inputs[0]:
                readers.setdefault(source[0], []).append(name)

        return hook

    for name, m in layers.items():
        m.register_forward_hook(after(name))
        m.register_forward_pre_hook(before(name))
    model.eval()(example_input)  # the hooks go with the copy
    return readers


def set_export_mode(model: nn.Module, enabled: bool) -> None:
    for m in model.modules():
        if isinstance(m, ActivationQuantizer):
            m.export_mode = enabled


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> None:
    """Fold every QuantConvBNAct's BatchNorm into its conv (the conv gains a bias)."""
    for m in model.modules():
        if isinstance(m, QuantConvBNAct) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv, m.bn = folded_conv(m.conv, m.bn), nn.Identity()


@torch.no_grad()
def folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``conv`` followed by ``bn`` (in eval mode) as one conv with a bias."""
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, groups=conv.groups, bias=True
    )
    folded.weight.copy_(conv.weight * factor.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    folded.bias.copy_((bias - bn.running_mean) * factor + bn.bias)
    return folded


@torch.no_grad()
def bake_weights(model: nn.Module) -> None:
    """Replace each layer's float weights by their fake-quantized values (for float export)."""
    for m in quant_layers(model).values():
        param = m.conv.weight if isinstance(m, QuantConvBNAct) else m.linear.weight
        param.copy_(fake_quantize_weight(param, m.w_bits, m.w_qmax))
        m.w_bits = FLOAT_BITS


def kept_channels(channels: int, ratio: float) -> int:
    """How many of ``channels`` survive pruning by ``ratio`` (at least one)."""
    return max(1, channels - int(round(channels * ratio)))


def prune_channels(model: nn.Module, ratios: Mapping[str, float], example_input: torch.Tensor) -> None:
    """Remove the output channels of the named conv (or linear) layers with the smallest group L1 norm.

    torch-pruning's dependency graph carries each removal to everything coupled with it (the BN,
    the following depthwise conv and its BN, the next conv's input channels).
    """
    import torch_pruning as tp

    layers = quant_layers(model)
    unknown = set(ratios) - set(layers)
    if unknown:
        raise ValueError(f"pruning ratios name unknown layers: {sorted(unknown)}")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
    for name, ratio in ratios.items():
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"pruning ratio {ratio} for '{name}' not in [0, 1)")
        layer = layers[name]
        if isinstance(layer, QuantLinear):
            module, prune_fn, width = layer.linear, tp.prune_linear_out_channels, layer.linear.out_features
        else:
            module, prune_fn, width = layer.conv, tp.prune_conv_out_channels, layer.conv.out_channels
        n_keep = kept_channels(width, ratio)
        if n_keep == width:
            continue
        whole = graph.get_pruning_group(module, prune_fn, idxs=list(range(width)))
        importance = tp.importance.GroupMagnitudeImportance(p=1)(whole)  # L1 over the group, BN scales included
        drop = torch.argsort(importance)[: width - n_keep].tolist()
        group = graph.get_pruning_group(module, prune_fn, idxs=drop)
        if not graph.check_pruning_group(group):
            raise ValueError(f"cannot prune {len(drop)} channels of '{name}'")
        group.prune()


def distinct_levels(values: Iterable[float]) -> int:
    return len({round(float(v), 6) for v in values})
