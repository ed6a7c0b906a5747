"""Short training on real data: the compress-then-fine-tune pipeline every candidate goes through.

1. train the unpruned float network for ``train_epochs`` (skipped for a space of a trained model: its candidates
   start from the trained weights);
2. prune (torch-pruning, L1 magnitude) as the candidate says, fold BatchNorm into the convs;
3. set per-layer bit-widths, calibrate the activation observers, and fine-tune with fake
   quantization for ``finetune_epochs`` (quantization-aware training, straight-through gradients); a space of a
   trained model fine-tunes with knowledge distillation from it (:func:`distillation_loss`);
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
    distill_temperature: float = 4.0
    distill_weight: float = 0.9


def distillation_loss(
    logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *, temperature: float, weight: float
) -> torch.Tensor:
    """Hinton et al.'s knowledge distillation: ``weight`` x T^2 x KL(teacher || student), both softened by
    temperature T, plus ``1 - weight`` x cross-entropy to the labels (T^2 keeps the soft term's gradients on the
    scale of the hard one's)."""
    t = temperature
    soft = (
        nn.functional.kl_div(
            nn.functional.log_softmax(logits / t, dim=1),
            nn.functional.log_softmax(teacher_logits / t, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        * t
        * t
    )
    return weight * soft + (1.0 - weight) * nn.functional.cross_entropy(logits, labels)


def train_steps(
    model: nn.Module,
    data: Split,
    epochs: float,
    *,
    batch_size: int,
    lr: float,
    seed: int,
    teacher_logits: np.ndarray | None = None,
    temperature: float = 4.0,
    distill_weight: float = 0.9,
) -> None:
    """Adam with a one-cycle schedule; with ``teacher_logits`` (the teacher's outputs on ``data.x``, computed once:
    there is no augmentation), the loss is :func:`distillation_loss`."""
    steps = int(math.ceil(epochs * len(data.y) / batch_size))
    if steps <= 0:
        return
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    x, y = torch.from_numpy(data.x).to(device), torch.from_numpy(data.y).to(device)
    soft = None if teacher_logits is None else torch.from_numpy(teacher_logits).to(device)
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
        if soft is None:
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        else:
            loss = distillation_loss(model(x[idx]), soft[idx], y[idx], temperature=temperature, weight=distill_weight)
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
    return np.concatenate(
        [model(torch.from_numpy(x[i : i + batch_size]).to(device)).cpu().numpy() for i in range(0, len(x), batch_size)]
    )


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
    if getattr(space, "pretrained", False):
        return _compress_trained(space, model.cpu(), candidate, data, schedule, seed, target), time.perf_counter() - t0
    train_steps(model, data.train, schedule.train_epochs, batch_size=schedule.batch_size, lr=schedule.lr, seed=seed)
    model = model.cpu()
    compress(space, model, candidate, data.train, target)
    model = model.to(device)
    train_steps(
        model,
        data.train,
        schedule.finetune_epochs,
        batch_size=schedule.batch_size,
        lr=schedule.finetune_lr,
        seed=seed + 1,
    )
    return model.cpu(), time.perf_counter() - t0


#: share of a trained model's fine-tuning spent in float with live BatchNorms, recovering from pruning, before the
#: BatchNorms are folded and the rest is quantization-aware (folded at once, the pruned ResNet recovered far less)
RECOVERY_SHARE = 0.5


def _compress_trained(
    space, model: nn.Module, candidate: dict, data: Dataset, schedule: TrainSchedule, seed: int, target
) -> nn.Module:
    """A candidate of a trained model: prune its trained weights, re-estimate the BatchNorm statistics, fine-tune in
    float and then quantization-aware, both distilled from the original; the QAT phase at a third of the rate (a
    trained model loses accuracy at the full one). An unpruned candidate spends all its epochs on the QAT phase."""
    from nasq.compress import apply_int8_recipe

    device = training_device()
    teacher = predict_logits(space.teacher(), data.train.x)
    distill = dict(
        teacher_logits=teacher,
        temperature=schedule.distill_temperature,
        distill_weight=schedule.distill_weight,
        batch_size=schedule.batch_size,
    )
    from nasq.spaces.base import restructured

    pruned = restructured(candidate)
    recovery = RECOVERY_SHARE if pruned else 0.0  # unpruned and whole, the trained model has nothing to recover from
    if pruned:
        space.prune(model, candidate)
        recalibrate_batchnorm(model, data.train)
        model = model.to(device)
        train_steps(
            model, data.train, schedule.finetune_epochs * recovery, lr=schedule.finetune_lr, seed=seed + 1, **distill
        )
        model = model.cpu()
    space.fold_batchnorms(model)
    space.quantize(model, candidate)
    if target is not None:
        apply_int8_recipe(model, target, torch.from_numpy(data.train.x[:8]))
    calibrate(model, data.train)
    model = model.to(device)
    train_steps(
        model,
        data.train,
        schedule.finetune_epochs * (1 - recovery),
        lr=schedule.finetune_lr / 3,
        seed=seed + 2,
        **distill,
    )
    return model.cpu()


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: Split, samples: int = 2000, batch_size: int = 250) -> None:
    """Re-estimate every BatchNorm's running statistics (a cumulative average over ``samples`` training images):
    after pruning, the trained statistics describe channels that are gone."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, min(samples, len(data.x)), batch_size):
        model(torch.from_numpy(data.x[i : i + batch_size]))
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
