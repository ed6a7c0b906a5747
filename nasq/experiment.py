"""What a config names, built: its search space, its dataset, and the user code that Ray workers must import.

Every part of a run (the driver, each trial, the screening actors, ``nasq best``) builds its space and data here, from
the run's config, so that they all see the same ones. A trained model's weights travel with the run's settings
(``weights_data``), so that a worker on another machine needs only the model's code, which Ray's runtime environment
ships (:func:`runtime_env`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from typing import Any

from nasq.config import ExperimentConfig
from nasq.errors import NasqError


def model_spec(cfg: ExperimentConfig):
    from nasq.models.loading import ModelSpec

    m = cfg.model
    return ModelSpec(m.factory, m.weights, tuple(m.input_shape))


def space_options(cfg: ExperimentConfig):
    from nasq.spaces.from_model import ModelSpaceOptions

    m = cfg.model
    return ModelSpaceOptions(tuple(m.prune_ratios), tuple(m.bits), dict(m.layers), m.remove_blocks)


def space_for(cfg: ExperimentConfig, weights_data: bytes | None = None, module=None):
    """The config's search space: the trained model's own (``model.factory`` set; ``module``: the model itself, when
    it was handed over in Python), else the registered ``space``."""
    from nasq.spaces import create_space

    if cfg.space != "from-model":
        return create_space(cfg.space)
    from nasq.spaces.from_model import ModelSpace

    return ModelSpace(model_spec(cfg), space_options(cfg), weights_data=weights_data, module=module)


def data_spec(cfg: ExperimentConfig):
    from nasq.data import DataSpec

    d = cfg.data
    return DataSpec(
        d.dataset,
        d.path,
        d.factory,
        d.normalize,
        tuple(d.mean),
        tuple(d.std),
        d.val_fraction,
        d.test_fraction,
        cfg.seed,
        d.image_size,
    )


def dataset_for(cfg: ExperimentConfig):
    from nasq.data import load_dataset

    return load_dataset(data_spec(cfg))


def weights_data(cfg: ExperimentConfig) -> bytes | None:
    """The trained model's weights file, read once by the driver (None without one)."""
    if not cfg.model.weights:
        return None
    path = Path(cfg.model.weights)
    if not path.is_file():
        raise NasqError(f"model.weights {cfg.model.weights}: no such file")
    return path.read_bytes()


def with_absolute_paths(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config with the model's and the data's file paths made absolute (relative ones are to the current
    directory), as the run records them: a trial runs in a directory of Ray's."""

    def absolute(ref: str, callable_ref: bool = False) -> str:
        if not ref:
            return ref
        if callable_ref:
            module, _, name = ref.partition(":")
            return f"{Path(module).expanduser().resolve()}:{name}" if module.endswith(".py") else ref
        return str(Path(ref).expanduser().resolve())

    model = dataclasses.replace(
        cfg.model, factory=absolute(cfg.model.factory, True), weights=absolute(cfg.model.weights)
    )
    data = dataclasses.replace(cfg.data, path=absolute(cfg.data.path), factory=absolute(cfg.data.factory, True))
    plugins = tuple(absolute(ref) if ref.endswith(".py") else ref for ref in cfg.plugins)
    return dataclasses.replace(cfg, model=model, data=data, plugins=plugins)


def user_code_dirs(cfg: ExperimentConfig) -> list[str]:
    """Folders of the user's code that Ray workers must import: the folder of a ``file.py:function`` factory or a
    ``file.py`` plugin, or the top-level package of a ``package.module:function`` one (or a ``package.module``
    plugin) that is not installed (not under this Python's prefix)."""
    dirs = []
    for ref in (cfg.model.factory, cfg.data.factory, *cfg.plugins):
        module = ref.partition(":")[0]
        if not module:
            continue
        if module.endswith(".py"):
            dirs.append(str(Path(module).expanduser().resolve().parent))
            continue
        top = module.split(".")[0]
        if top == "nasq":  # every worker has nasq
            continue
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is None or (not spec.origin and not spec.submodule_search_locations):
            continue
        where = Path(spec.submodule_search_locations[0] if spec.submodule_search_locations else str(spec.origin))
        if not str(where.resolve()).startswith(str(Path(sys.prefix).resolve())):
            dirs.append(str(where.resolve()))
    return list(dict.fromkeys(dirs))


def runtime_env(cfg: ExperimentConfig) -> dict[str, Any] | None:
    """Ray's runtime environment for the run: the user's code folders as ``py_modules``, which Ray uploads to every
    worker (local or on a cluster) and puts on its import path. None when the config names no user code."""
    dirs = user_code_dirs(cfg)
    return {"py_modules": dirs} if dirs else None
