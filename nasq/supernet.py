"""Weight sharing: one supernet trained once, from which every candidate inherits its weights.

As in Once-for-All and APQ, the supernet is the space's largest network. A candidate's network
(pruned layers narrowed to their leading channels, smaller kernels as centred crops) takes slices of
the supernet's tensors by name, so that training any sub-network trains the supernet.

Training (sandwich rule, as in BigNAS/OFA): each step trains the largest network, the smallest one
and two random ones on the same batch and applies their summed gradients. A first phase trains in
float; a second one samples per-layer bit-widths and trains with fake quantization (APQ's
quantization-aware supernet), so that inherited weights tolerate the bits a candidate asks for.

Evaluation of a candidate: inherit its weights, re-estimate BatchNorm statistics on training images
(shared statistics are wrong for every sub-network), fold BatchNorm, set its bit-widths, calibrate
the activation observers, and measure validation accuracy. No training per candidate.

A checkpoint stores the weights and what they were trained for (space, data, settings); loading one
made for anything else is refused. Checkpoints are plain tensors, read with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from nasq.errors import NasqError

FORMAT = "nasq-supernet-1"


def _slice(source: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Leading slice of every dimension; for conv weights, a centred crop of the kernel."""
    index = []
    for dim, (have, want) in enumerate(zip(source.shape, shape)):
        if want > have:
            raise ValueError(f"needs {tuple(shape)} from a supernet tensor of {tuple(source.shape)}")
        start = (have - want) // 2 if source.dim() == 4 and dim >= 2 else 0
        index.append(slice(start, start + want))
    return source[tuple(index)]


def inherit(sub: nn.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The supernet slices that stand for ``sub``'s parameters (differentiable views)."""
    out = {}
    for name, param in sub.named_parameters():
        if name not in weights:
            raise NasqError(f"the supernet has no parameter '{name}': the candidate is not one of its sub-networks")
        out[name] = _slice(weights[name], param.shape)
    return out


def fingerprint(space_name: str, dataset: str, seed: int, settings: dict) -> str:
    """What a checkpoint was trained for; a different one is a different supernet."""
    text = json.dumps({"space": space_name, "dataset": dataset, "seed": seed, **settings}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _bits(name: str) -> bool:
    return name.endswith((".w_bits", ".a_bits"))


def train_supernet(
    space,
    data,
    *,
    epochs: float,
    qat_epochs: float,
    batch_size: int,
    lr: float,
    seed: int,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, torch.Tensor], float]:
    """Train the space's supernet (see the module docstring); returns its weights and the seconds spent."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    largest = space.supernet_candidate()
    supernet = space.build_pruned(largest)
    weights = dict(supernet.named_parameters())
    n = len(data.train.y)
    float_steps = int(math.ceil(epochs * n / batch_size))
    total = float_steps + int(math.ceil(qat_epochs * n / batch_size))
    if total <= 0:
        return {k: v.detach().clone() for k, v in weights.items()}, 0.0
    opt = torch.optim.Adam(weights.values(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.2)
    x_all, y_all = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)
    gen = torch.Generator().manual_seed(seed)
    perm, pos = torch.randperm(n, generator=gen), 0
    float_bits = lambda name, choices: max(choices) if _bits(name) else None
    smallest = space.derive(
        lambda name, choices: max(choices) if _bits(name) or name.endswith(".prune") else min(choices)
    )
    for step in range(total):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos : pos + batch_size]
        pos += batch_size
        x, y = x_all[idx], y_all[idx]
        quantized = step >= float_steps
        group = [largest, smallest] + [space.sample(seed=rng.randrange(2**31)) for _ in range(2)]
        # float phase: every sub-network in float; quantization-aware phase: random per-layer bits for each
        bits = (lambda name, choices: rng.choice(choices) if _bits(name) else None) if quantized else float_bits
        opt.zero_grad(set_to_none=True)
        for cand in (space.derive(bits, c) for c in group):
            sub = space.build_pruned(cand)
            if quantized:
                space.quantize(sub, cand)
            sub.train()
            loss = nn.functional.cross_entropy(functional_call(sub, inherit(sub, weights), (x,)), y)
            if not torch.isfinite(loss):
                raise FloatingPointError("supernet training diverged (loss is not finite)")
            loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 50 == 0 or step + 1 == total:
            log(
                f"supernet: step {step + 1}/{total} ({'quantization-aware' if quantized else 'float'}), "
                f"loss of the last sub-network {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)"
            )
    return {k: v.detach().clone() for k, v in weights.items()}, time.perf_counter() - t0


@torch.no_grad()
def inherited_network(
    space, candidate: dict, weights: dict[str, torch.Tensor], data, *, seed: int, bn_samples: int = 1000
) -> nn.Module:
    """The candidate's float network (pruned) with inherited weights and its own BatchNorm statistics,
    re-estimated on ``bn_samples`` training images (shared statistics are wrong for every sub-network)."""
    torch.manual_seed(seed)
    sub = space.build_pruned(candidate)
    sub.load_state_dict({**sub.state_dict(), **{k: v.clone() for k, v in inherit(sub, weights).items()}})
    idx = np.random.default_rng(seed).choice(len(data.train.y), min(bn_samples, len(data.train.y)), replace=False)
    x = torch.from_numpy(data.train.x[idx])
    bns = [m for m in sub.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:  # cumulative average over the samples
        bn.reset_running_stats()
        bn.momentum = None
    sub.train()
    for chunk in x.split(250):
        sub(chunk)
    for bn in bns:
        bn.momentum = 0.1
    return sub.eval()


@torch.no_grad()
def evaluate(
    space,
    candidate: dict,
    weights: dict[str, torch.Tensor],
    data,
    *,
    seed: int,
    bn_samples: int = 1000,
    finetune_epochs: float = 0.0,
    batch_size: int = 64,
    finetune_lr: float = 3e-3,
) -> float:
    """Validation accuracy of the candidate with inherited weights, pruned and quantized, after
    ``finetune_epochs`` of quantization-aware fine-tuning (none by default)."""
    from nasq.compress import fold_batchnorm
    from nasq.train import accuracy, calibrate, train_steps

    sub = inherited_network(space, candidate, weights, data, seed=seed, bn_samples=bn_samples)
    fold_batchnorm(sub)
    space.quantize(sub, candidate)
    calibrate(sub, data.train)
    if finetune_epochs > 0:
        with torch.enable_grad():
            train_steps(sub, data.train, finetune_epochs, batch_size=batch_size, lr=finetune_lr, seed=seed + 1)
    return accuracy(sub, data.val)


def save(path: Path, weights: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a checkpoint atomically: the weights and what they were trained for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": FORMAT, "meta": json.dumps(meta, sort_keys=True), "weights": weights}, tmp)
    os.replace(tmp, path)


def load(path: Path, expected: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and metadata of a checkpoint trained for fingerprint ``expected``; NasqError otherwise."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NasqError(f"supernet checkpoint '{path}' does not exist") from None
    except Exception as exc:  # not a torch file, or one holding more than tensors
        raise NasqError(f"'{path}' is not a nasq supernet checkpoint ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise NasqError(f"'{path}' is not a nasq supernet checkpoint (format {FORMAT} expected)")
    meta = json.loads(blob["meta"])
    if meta.get("fingerprint") != expected:
        raise NasqError(
            f"supernet checkpoint '{path}' was trained for space '{meta.get('space')}' with other "
            f"settings (fingerprint {meta.get('fingerprint')}); this run needs {expected}: train a new "
            "one (leave accuracy.supernet_path empty)"
        )
    return blob["weights"], meta
