"""Zero-cost accuracy proxies, computed on a compressed candidate at initialization with real data.

Each candidate is built, pruned (torch-pruning, as the candidate says) and given its per-layer
bit-widths, with activation observers calibrated on a real training batch; a proxy then scores it
from one or two batches, without training. Proxies rank, they do not predict an accuracy: a higher
score should mean a more accurate network once trained.

- ``grad_norm``: sum over weight tensors of the L2 norm of the loss gradient (Abdelfattah et al. 2021);
- ``snip``: sum of |w * dL/dw| (Lee et al. 2019, as a proxy in Abdelfattah et al. 2021);
- ``synflow``: sum of |w * dR/dw| for R the output sum of the network with absolute weights on an
  all-ones input, in float64 (Tanaka et al. 2020). The activations are made linear (with absolute
  weights and a positive input every rectifier is the identity, except ReLU6's clip at 6, which
  synflow's overflowing products would hit everywhere) and activation quantizers are left out (their
  ranges come from real data, not from an all-ones input); weights are used as quantized;
- ``naswot``: log|det K| of the Hamming kernel of the binary activation patterns of a batch
  (Mellor et al. 2021);
- ``zico``: sum over weight tensors of log(sum of mean|g| / std(g)) of the gradients over two
  batches (Li et al. 2023).

Weights are the conv and linear weights (not BatchNorm's), as in the papers' reference code.
Non-finite scores (dead networks give -inf NASWOT or zero-gradient ZiCo) raise
:class:`nasq.errors.EstimateError`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from nasq.errors import EstimateError as ProxyError


def _weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad]


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    model.train()
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    return [w.grad.detach().clone() if w.grad is not None else torch.zeros_like(w) for w in _weights(model)]


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(sum(g.norm() for g in _loss_grads(model, x, y)))


def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    grads = _loss_grads(model, x, y)
    return float(sum((w.detach() * g).abs().sum() for w, g in zip(_weights(model), grads)))


def _linearized(model: nn.Module) -> nn.Module:
    """A float64 copy with activations replaced by identities, activation quantizers off and every
    parameter made non-negative, weights as quantized (|fake-quantized w|)."""
    from nasq.compress import FLOAT_BITS, QUANT_LAYERS, ActivationQuantizer, fake_quantize_weight

    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.GELU, nn.SiLU, nn.Hardswish)):
                setattr(parent, name, nn.Identity())
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ActivationQuantizer):
                m.bits = FLOAT_BITS
            elif isinstance(m, QUANT_LAYERS):
                param = m.conv.weight if hasattr(m, "conv") else m.linear.weight
                param.copy_(fake_quantize_weight(param, m.w_bits))
                m.w_bits = FLOAT_BITS
        for p in model.parameters():
            p.abs_()
    return model.double()


def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    del y
    model = _linearized(model)
    model.eval()  # BatchNorm at its initial statistics: an identity
    out = model(torch.ones((1, *x.shape[1:]), dtype=torch.float64))
    out.sum().backward()
    score = sum(float((w.detach() * w.grad).abs().sum()) for w in _weights(model) if w.grad is not None)
    return math.log(score) if score > 0 else -math.inf  # the raw score spans hundreds of decades


def naswot(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    del y
    n = len(x)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(module, inputs, output) -> None:
        codes = (output.detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if not handles:
        raise ProxyError("naswot needs ReLU activations; the network has none")
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else -math.inf


def zico(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    half = len(x) // 2
    if half < 1:
        raise ProxyError("zico needs at least two samples (two batches)")
    per_batch = [_loss_grads(model, x[i * half : (i + 1) * half], y[i * half : (i + 1) * half]) for i in range(2)]
    score = 0.0
    for grads in zip(*per_batch):
        g = torch.stack(grads).reshape(2, -1)
        std, mean_abs = g.std(dim=0), g.abs().mean(dim=0)
        keep = std > 0
        total = float((mean_abs[keep] / std[keep]).sum())
        if total > 0:
            score += math.log(total)
    if score == 0.0:
        return -math.inf  # no weight got a gradient that varies: a dead network
    return score


#: name -> proxy(model, x, y): higher should mean more accurate after training
PROXIES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "grad-norm": grad_norm,
    "snip": snip,
    "synflow": synflow,
    "naswot": naswot,
    "zico": zico,
}


def compressed_at_init(space, candidate: dict, x: np.ndarray, *, seed: int) -> nn.Module:
    """The candidate's network at initialization, pruned and with its bit-widths, observers set on ``x``
    (a network without activation quantizers, such as an architecture-only space's, skips that pass).
    BatchNorm stays unfolded (proxies see the network as training would)."""
    from nasq.compress import ActivationQuantizer
    from nasq.data import Split
    from nasq.train import calibrate

    torch.manual_seed(seed)
    model = space.build(candidate)
    space.compress(model, candidate)
    space.quantize(model, candidate)
    if any(isinstance(m, ActivationQuantizer) for m in model.modules()):
        calibrate(model, Split(x, np.zeros(len(x), np.int64)), batches=1, batch_size=len(x))
    return model


def proxy_score(name: str, space, candidate: dict, x: np.ndarray, y: np.ndarray, *, seed: int) -> float:
    """One proxy on the compressed candidate, with a real batch (``x``, ``y``); ProxyError if not finite."""
    if name not in PROXIES:
        raise KeyError(f"unknown proxy '{name}'; available: {', '.join(PROXIES)}")
    model = compressed_at_init(space, candidate, x, seed=seed)
    score = PROXIES[name](model, torch.from_numpy(x), torch.from_numpy(y))
    if not math.isfinite(score):
        raise ProxyError(f"{name} is {score} for this candidate (a dead network?); it cannot be ranked")
    return score
