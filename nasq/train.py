"""Short training on real data: the compress-then-fine-tune pipeline every candidate goes through.

1. train the unpruned float network for ``train_epochs``;
2. prune (torch-pruning, L1 magnitude) as the candidate says, fold BatchNorm into the convs;
3. set per-layer bit-widths, calibrate the activation observers, and fine-tune with fake
   quantization for ``finetune_epochs`` (quantization-aware training, straight-through gradients);
4. the network's accuracy with pruning and quantization applied is the candidate's accuracy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nasq.data import Dataset, Split


@dataclass(frozen=True)
class TrainSchedule:
    train_epochs: float = 1.0
    finetune_epochs: float = 0.5
    batch_size: int = 64
    lr: float = 1e-2
    finetune_lr: float = 3e-3


def train_steps(model: nn.Module, data: Split, epochs: float, *, batch_size: int, lr: float, seed: int) -> None:
    steps = int(math.ceil(epochs * len(data.y) / batch_size))
    if steps <= 0:
        return
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    x, y = torch.from_numpy(data.x).to(device), torch.from_numpy(data.y).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    model.train()
    perm = torch.randperm(len(y), generator=gen)
    pos = 0
    for _ in range(steps):
        if pos + batch_size > len(y):
            perm, pos = torch.randperm(len(y), generator=gen), 0
        idx = perm[pos : pos + batch_size].to(device)
        pos += batch_size
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        if not torch.isfinite(loss):
            raise FloatingPointError("training diverged (loss is not finite)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    return np.concatenate([model(torch.from_numpy(x[i : i + batch_size]).to(device)).cpu().numpy()
                           for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, data: Split) -> float:
    return float((predict_logits(model, data.x).argmax(1) == data.y).mean())


@torch.no_grad()
def calibrate(model: nn.Module, data: Split, batches: int = 4, batch_size: int = 128) -> None:
    """Run a few training batches in train mode so activation observers see real ranges."""
    model.train()
    for i in range(min(batches, math.ceil(len(data.x) / batch_size))):
        model(torch.from_numpy(data.x[i * batch_size : (i + 1) * batch_size]))


def compress(space, model: nn.Module, candidate: dict, calibration: Split, target=None) -> None:
    """Steps 2-3 before fine-tuning: prune, fold BatchNorm, set bit-widths (the int8 layers as ``target``, a
    profile, runs them: :func:`nasq.compress.apply_int8_recipe`), calibrate observers."""
    from nasq.compress import apply_int8_recipe, fold_batchnorm

    space.compress(model, candidate)
    fold_batchnorm(model)
    space.quantize(model, candidate)
    if target is not None:
        apply_int8_recipe(model, target, torch.from_numpy(calibration.x[:8]))
    calibrate(model, calibration)


def training_device() -> torch.device:
    """A GPU when this process was given one (a Ray Tune trial with ``gpus_per_candidate``; Ray hides
    GPUs from trials that did not ask for one), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compress_and_train(space, candidate: dict, data: Dataset, schedule: TrainSchedule, *, seed: int, target=None):
    """The whole pipeline above; returns the compressed, fine-tuned model (on the CPU) and timings.
    Both training phases run on :func:`training_device`; pruning traces the network on the CPU. ``target``: the
    profile the model is trained for, whose int8 recipe its int8 layers follow (None: the full int8 range)."""
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    device = training_device()
    model = space.build(candidate).to(device)
    train_steps(model, data.train, schedule.train_epochs, batch_size=schedule.batch_size, lr=schedule.lr, seed=seed)
    model = model.cpu()
    compress(space, model, candidate, data.train, target)
    model = model.to(device)
    train_steps(model, data.train, schedule.finetune_epochs, batch_size=schedule.batch_size,
                lr=schedule.finetune_lr, seed=seed + 1)
    return model.cpu(), time.perf_counter() - t0
