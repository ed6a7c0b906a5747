"""The Python way in: compress a trained model for several targets, then take each target's best model.

    >>> import nasq                                                                  # doctest: +SKIP
    >>> result = nasq.compress_model(model, torch.zeros(1, 1, 28, 28), train=(x, y), val=(xv, yv),
    ...                        targets=["local-ort", "bitserial-sim"])
    >>> best = result.best("local-ort", max_accuracy_drop=1.0)
    >>> best.export("model.onnx"); print(best.summary())

It is the config route underneath: the arrays are written to an ``.npz`` file beside the run directory and named by
the run's config, so that every trial (and ``nasq best`` later) reads the same data. The model itself travels to the
trials with their settings, through Ray's object store; nothing of it is pickled to disk, so such a run is resumed
and retrieved from Python (:func:`resume`, :meth:`CompressionResult.best`), not from the command line.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasq.errors import NasqError


def _arrays(data, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` (NumPy arrays or tensors) or a map-style torch dataset of ``(sample, label)`` pairs, as arrays."""
    import torch

    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        pairs = [data[i] for i in range(len(data))]
        if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
            raise NasqError(f"{split}: a dataset must give (sample, label) pairs")
        x = np.stack([np.asarray(p[0], dtype=np.float32) for p in pairs])
        y = np.asarray([int(p[1]) for p in pairs])
    else:
        raise NasqError(
            f"{split}: give (x, y) arrays or a torch Dataset of (sample, label) pairs, not {type(data).__name__}"
        )
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if len(x) != len(y):
        raise NasqError(f"{split}: {len(x)} samples but {len(y)} labels")
    return x.astype(np.float32), y.astype(np.int64)


@dataclass
class BestModel:
    """One target's best model, as ``nasq best`` wrote it: ``model.onnx`` beside its baselines and ``report.json``."""

    target: str
    out_dir: Path
    report: dict[str, Any]

    @property
    def onnx_path(self) -> Path:
        return self.out_dir / "model.onnx"

    def export(self, path: str | Path) -> Path:
        """Copy the found model (ONNX, int8 where the target runs it) to ``path``."""
        from nasq.fileio import write_bytes_atomic

        write_bytes_atomic(Path(path), self.onnx_path.read_bytes())
        return Path(path)

    def summary(self) -> str:
        """The report: the found model beside the original, accuracy, size and latency, predicted and measured."""
        return (self.out_dir / "report.md").read_text()


@dataclass
class CompressionResult:
    """A finished search: its run directory, its results, and each target's best model on request."""

    run_dir: Path
    targets: list[str]
    module: Any = field(default=None, repr=False)

    def rows(self) -> list[dict[str, Any]]:
        """Every evaluated candidate's results row (see :mod:`nasq.search.results`)."""
        from nasq.search.results import ResultsTable

        return ResultsTable(self.run_dir, self.targets).rows()

    def front(self, target: str) -> list[dict[str, Any]]:
        """The target's Pareto front, fastest first."""
        from nasq.search.results import pareto_front

        return pareto_front(self.rows(), target)

    def best(
        self,
        target: str,
        *,
        max_accuracy_drop: float | None = 1.0,
        max_latency_ms: float | None = None,
        out_dir: str | Path | None = None,
        log=print,
    ) -> BestModel:
        """Fine-tune, export and measure the target's best candidate beside the original (``nasq best``): the
        fastest within ``max_accuracy_drop`` points of the original's validation accuracy, or the most accurate
        within ``max_latency_ms`` (then give ``max_accuracy_drop=None``)."""
        from nasq.retrieve import retrieve_best
        from nasq.search.results import target_file_stem

        out = Path(out_dir) if out_dir else self.run_dir / f"best-{target_file_stem(target)}"
        report = retrieve_best(
            self.run_dir,
            target=target,
            max_latency_ms=max_latency_ms,
            out_dir=out,
            log=log,
            max_accuracy_drop=max_accuracy_drop,
            module=self.module,
        )
        return BestModel(target, out, report)


def _ship_by_value(cls) -> None:
    """Have Ray pickle the model's class with its code, when its module is the user's own (a script, a file beside
    it, not an installed package): the workers need not import it by name (cloudpickle's documented way)."""
    import sys

    from ray import cloudpickle  # Ray's own copy, which pickles what it ships

    module = sys.modules.get(cls.__module__)
    where = getattr(module, "__file__", None)
    if module is None or cls.__module__ == "__main__" or where is None:
        return  # (cloudpickle ships __main__'s classes by value already)
    if not str(Path(where).resolve()).startswith(str(Path(sys.prefix).resolve())):
        cloudpickle.register_pickle_by_value(module)


def compress_model(
    model,
    example_input,
    *,
    train,
    val,
    targets: Sequence[str],
    test=None,
    prune_ratios: Sequence[float] = (0.0, 0.25, 0.5, 0.75),
    bits: Sequence[int] = (4, 8, 32),
    layers: dict[str, dict] | None = None,
    config: dict[str, Any] | None = None,
    run_dir: str | Path | None = None,
    name: str = "compress",
    address: str | None = None,
) -> CompressionResult:
    """Search pruning ratios and bit-widths of a trained model jointly for every target.

    ``model``: a torch ``nn.Module`` (its own weights) or a factory reference (``'package.module:function'`` or
    ``'path/to/file.py:function'``; give ``config={"model": {"weights": ...}}`` for its weights). ``example_input``:
    one batch (or one sample) of the model's input. ``train``, ``val``, ``test``: ``(x, y)`` arrays or torch datasets
    of ``(sample, label)``, as the model takes them (no normalization is applied; without ``test``, a share of
    ``train`` is held out). ``layers``: per-layer overrides by name or glob (``{"fc": {"quantize": False}}``).
    ``config``: any other blocks of a config file (``search``, ``accuracy``, ``best``, ``constraints``, ...).
    ``address``: a Ray cluster to run on (default: a local Ray)."""
    import torch

    from nasq.config import config_from_dict
    from nasq.models.loading import IN_MEMORY
    from nasq.search.driver import run_search

    shape = tuple(example_input.shape) if hasattr(example_input, "shape") else ()
    if len(shape) < 2:
        raise NasqError(f"example_input must be a tensor of one sample or one batch, got shape {list(shape)}")
    input_shape = shape[1:] if len(shape) >= 4 or (len(shape) == 2 and shape[0] == 1) else shape
    module = model if isinstance(model, torch.nn.Module) else None
    if module is None and not isinstance(model, str):
        raise NasqError(f"model must be a torch nn.Module or a factory reference, not {type(model).__name__}")
    if module is not None:
        _ship_by_value(type(module))
    raw = dict(config or {})
    model_block = {
        **raw.pop("model", {}),
        "factory": f"{IN_MEMORY}:{type(module).__name__}" if module is not None else model,
        "input_shape": list(input_shape),
        "prune_ratios": list(prune_ratios),
        "bits": list(bits),
    }
    if layers:
        model_block["layers"] = layers
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    output_dir = Path(raw.pop("output_dir", "runs"))
    run_dir = Path(run_dir) if run_dir else output_dir / f"{name}-{stamp}"
    arrays = {}
    for split, data in (("", train), ("_val", val), ("_test", test)):
        if data is not None:
            arrays[f"x{split}"], arrays[f"y{split}"] = _arrays(data, split.strip("_") or "train")
    data_file = run_dir.with_name(run_dir.name + "-data.npz")  # beside the run directory, which starts empty
    cfg = config_from_dict(
        {
            "name": name,
            "targets": list(targets),
            **raw,
            "output_dir": str(output_dir),
            "model": model_block,
            "data": {**raw.get("data", {}), "dataset": "npz", "path": str(data_file), "normalize": "none"},
        },
        "nasq.compress",
    )
    data_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = data_file.with_name(data_file.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as allow_pickle
    tmp.replace(data_file)
    try:
        with _own_ray():
            run_dir = run_search(cfg, run_dir=run_dir, address=address, module=module)
    except BaseException:
        if not run_dir.exists():  # refused before anything was written: leave nothing behind
            data_file.unlink(missing_ok=True)
        raise
    return CompressionResult(run_dir, list(cfg.targets), module)


@contextlib.contextmanager
def _own_ray():
    """Shut down the Ray the search started in this process, once it is over (a Ray the caller had started stays):
    the caller's process is not left holding a local Ray's workers."""
    import ray

    started = not ray.is_initialized()
    try:
        yield
    finally:
        if started and ray.is_initialized():
            ray.shutdown()


def resume(run_dir: str | Path, model=None, *, address: str | None = None) -> CompressionResult:
    """Go on with a search stopped before its end (``model``: the same module, for a model handed over in Python)."""
    import torch

    from nasq.search.driver import resume_search
    from nasq.search.run_dir import load_run

    module = model if isinstance(model, torch.nn.Module) else None
    with _own_ray():
        run_dir = resume_search(run_dir, address=address, module=module)
    _, _, cfg = load_run(run_dir)
    return CompressionResult(Path(run_dir), list(cfg.targets), module)


def result(run_dir: str | Path, model=None) -> CompressionResult:
    """A finished run's result (``model``: the module, for a model handed over in Python)."""
    from nasq.search.run_dir import load_run

    run_dir, _, cfg = load_run(run_dir)
    return CompressionResult(run_dir, list(cfg.targets), model)
