"""The profiler-backend interface: measure (or model) a target and return a profile dict."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from nasq.errors import NasqError
from nasq.spaces.base import LayerSpec


class ProfilerBackend(ABC):
    """Produces a hardware profile (see :mod:`nasq.hardware_profiles.profile`) for given layer shapes.

    Contract: :meth:`profile` returns a dict that ``Profile.from_dict`` accepts and whose predictor
    can price every shape in ``shapes`` in every precision the target runs. Constructors take the
    backend's options as keyword arguments and do no work. Backends that run whole networks also
    implement :meth:`measure_models` (what calibration and ``nasq profile validate`` measure with) and
    :meth:`for_profile` (the same backend, options and device again, from a profile's metadata).
    """

    #: whether ``--quick`` also takes the space's coarser grid of layer shapes (``SearchSpace.profile_shapes``); a
    #: backend whose layers cost little to measure keeps the full grid and shortens its other parts instead
    quick_shapes: bool = True

    @abstractmethod
    def profile(
        self,
        shapes: Sequence[LayerSpec],
        *,
        name: str,
        space: str,
        quick: bool = False,
        log: Callable[[str], None] = print,
    ) -> dict: ...

    def measure_models(
        self,
        models: Sequence[bytes],
        feeds: Sequence[dict[str, np.ndarray]],
        *,
        repetitions: int,
        min_seconds: float = 0.0,
    ) -> list[float]:
        """Median end-to-end latency (ms) of each serialized ONNX model on its feed, all measured
        round-robin so that the machine's noise hits them alike, for at least ``repetitions`` rounds
        and ``min_seconds``."""
        raise NasqError(f"the {type(self).__name__} backend does not run whole networks")

    @classmethod
    def for_profile(cls, metadata: dict) -> ProfilerBackend:
        """The backend that measured a profile with this ``metadata``, set up to measure like it."""
        raise NasqError(f"the {cls.__name__} backend cannot measure again")
