"""A user's trained torch model: built by its factory, its ``state_dict`` read with ``weights_only=True``
(tensors only: a pickled module is refused, never unpickled), run once on the stated input shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasq.errors import NasqError


@dataclass(frozen=True)
class ModelSpec:
    """The config's ``model`` block."""

    factory: str  # 'package.module:function' or 'path/to/file.py:function', returning an nn.Module
    weights: str = ""  # a state_dict file (torch.save(model.state_dict(), path)); empty: the factory's own weights
    input_shape: tuple[int, ...] = ()  # one sample, C x H x W
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the factory


@dataclass(frozen=True)
class LayerOverride:
    """What the search may do to the layers one qualified name or glob pattern matches (the config's
    ``model.layers``)."""

    prune: bool = True  # False: its output channels are kept
    quantize: bool = True  # False: it stays float
    w_bits: int = 0  # fixed weight bits (0: searched)
    a_bits: int = 0


@dataclass
class LoadedModel:
    module: Any  # torch.nn.Module, in eval mode
    input_shape: tuple[int, ...]
    num_outputs: int  # the logits' width: the classes the model tells apart


#: the factory a run records for a model handed to nasq in Python (:func:`nasq.api.compress_model`): the module itself
#: travels with the run's settings, through Ray's object store
IN_MEMORY = "python-object"


def load_model(spec: ModelSpec, weights_data: bytes | None = None, module=None) -> LoadedModel:
    """The model ``spec`` names, with its weights (``weights_data``: the weights file's bytes, as a Ray worker gets
    them from the driver), checked on one zero input of ``input_shape``. ``module``: the model itself, handed over in
    Python (a copy is taken; ``spec.factory`` then only names it)."""
    import copy

    import torch

    from nasq.user_code import call_user, resolve_callable

    if not spec.input_shape or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in spec.input_shape
    ):
        raise NasqError(
            f"model.input_shape must be one sample's positive dimensions (C, H, W), got {list(spec.input_shape)}"
        )
    if module is not None:
        module = copy.deepcopy(module)
    elif spec.factory.startswith(IN_MEMORY + ":"):
        raise NasqError(
            f"model {spec.factory.split(':', 1)[1]} was handed to nasq in Python: give it again "
            "(nasq.compress_model(model, ...), or a config whose model.factory can build it)"
        )
    else:
        fn = resolve_callable(spec.factory, "model.factory")
        module = call_user(fn, f"model.factory {spec.factory}", **spec.kwargs)
    if not isinstance(module, torch.nn.Module):
        raise NasqError(f"model.factory {spec.factory} must return a torch.nn.Module, got {type(module).__name__}")
    if spec.weights:
        load_weights(module, spec.weights, weights_data)
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, *spec.input_shape))
    except Exception as exc:
        raise NasqError(
            f"model {spec.factory} rejects input shape {list(spec.input_shape)}: {type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0][:160]}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise NasqError(
            f"model {spec.factory} must return logits of shape [batch, classes]; on input "
            f"{[1, *spec.input_shape]} it returned {shape}"
        )
    return LoadedModel(module, tuple(spec.input_shape), int(out.shape[1]))


def load_weights(module, path: str, data: bytes | None = None) -> None:
    """Load a state_dict file (or ``data``, its bytes) into ``module``; every missing, unexpected or misshapen tensor
    is named."""
    import io
    import pickle

    import torch

    file = Path(path).expanduser()
    if data is None and not file.is_file():
        raise NasqError(f"model.weights {path}: no such file")
    try:
        state = torch.load(file if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc):  # no class to refuse: not a pickle of objects at all
            raise NasqError(f"model.weights {path} is not a torch state_dict file (unreadable)") from None
        raise NasqError(
            f"model.weights {path} holds more than tensors (a pickled module?); it is refused, not "
            "unpickled: save model.state_dict() instead"
        ) from None
    except Exception as exc:
        raise NasqError(f"model.weights {path} is not a torch state_dict file ({type(exc).__name__})") from None
    if isinstance(state, dict) and set(state) == {"state_dict"}:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NasqError(f"model.weights {path} must be a state_dict (names -> tensors), got {type(state).__name__}")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshapen = [
        f"{k} {list(state[k].shape)} (model: {list(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = [
        f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} ({len(names)})"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen))
        if names
    ]
    if problems:
        raise NasqError(f"model.weights {path} do not fit the model: {'; '.join(problems)}")
    module.load_state_dict(state)


def check_classes(model: LoadedModel, num_classes: int, where: str = "data") -> None:
    """The model's logits must be as wide as the data's classes."""
    if model.num_outputs != num_classes:
        raise NasqError(f"the model gives {model.num_outputs} outputs, but {where} has {num_classes} classes")
