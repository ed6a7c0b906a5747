"""Compression sensitivity: how much each layer's loss grows when it alone is quantized, per bit-width.

For a candidate's architecture and pruning, the network gets trained weights from the supernet
(:mod:`nasq.supernet`), its BatchNorm statistics re-estimated and folded. On a seeded calibration
batch of real training images, the cross-entropy loss is measured in float, then with one layer's
weights (or its input activations) at each bit-width the space allows, every other layer in float:
the measured loss change (the measured-perturbation variant of HAWQ's Hessian-weighted noise, which
needs no Hessian). A bit policy is then scored without training by adding up its layers' changes:

    predicted loss = float loss + sum over layers of (change for its weight bits + change for its activation bits)

One table per architecture (pruning included) costs a few hundred forward passes of one batch; it is
cached, so that every further bit policy of an architecture the search has seen costs microseconds
(HAQ and HAWQ search bits of one fixed network this way).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nasq.compress import FLOAT_BITS, quant_layers


@dataclass
class SensitivityTable:
    float_loss: float
    #: (layer, "w" | "a", bits) -> loss change with only that quantized
    changes: dict[tuple[str, str, int], float]
    seconds: float

    def predicted_loss(self, w_bits: dict[str, int], a_bits: dict[str, int]) -> float:
        total = self.float_loss
        for layer, bits in w_bits.items():
            if bits != FLOAT_BITS:
                total += self.changes[(layer, "w", bits)]
        for layer, bits in a_bits.items():
            if bits != FLOAT_BITS:
                total += self.changes[(layer, "a", bits)]
        return total


def architecture_key(candidate: dict) -> str:
    """The candidate without its bit-widths: what a sensitivity table depends on."""
    return json.dumps({k: v for k, v in candidate.items() if not k.endswith((".w_bits", ".a_bits"))}, sort_keys=True)


@torch.no_grad()
def sensitivity_table(
    space,
    candidate: dict,
    weights: dict[str, torch.Tensor],
    data,
    *,
    seed: int,
    samples: int = 256,
    bn_samples: int = 1000,
) -> SensitivityTable:
    """The loss changes of the candidate's architecture (see the module docstring)."""
    import time

    from nasq.compress import fold_batchnorm
    from nasq.supernet import inherited_network

    t0 = time.perf_counter()
    model = inherited_network(space, candidate, weights, data, seed=seed, bn_samples=bn_samples)
    fold_batchnorm(model)
    model.eval()
    idx = np.random.default_rng(seed + 1).choice(len(data.train.y), min(samples, len(data.train.y)), replace=False)
    x, y = torch.from_numpy(data.train.x[idx]), torch.from_numpy(data.train.y[idx])

    def loss() -> float:
        return float(nn.functional.cross_entropy(model(x), y))

    layers = quant_layers(model)
    for layer in layers.values():
        layer.w_bits, layer.input_quant.bits = FLOAT_BITS, FLOAT_BITS
    base = loss()
    changes: dict[tuple[str, str, int], float] = {}
    for param, options in space.choices(candidate).items():
        if not param.endswith((".w_bits", ".a_bits")):
            continue
        name, kind = param.rsplit(".", 1)
        layer = layers[name]
        for bits in (b for b in options if b != FLOAT_BITS):
            if kind == "w_bits":
                layer.w_bits = bits
                changes[(name, "w", bits)] = loss() - base
                layer.w_bits = FLOAT_BITS
            else:
                layer.input_quant.bits = bits
                layer.input_quant.observed.fill_(False)  # observes this batch's range on its first call
                changes[(name, "a", bits)] = loss() - base
                layer.input_quant.bits = FLOAT_BITS
    return SensitivityTable(base, changes, time.perf_counter() - t0)
