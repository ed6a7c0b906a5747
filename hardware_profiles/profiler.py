"""The profiler-backend interface: measure (or model) a target and return a profile dict."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nasq.errors import NasqError
from nasq.options import Configurable
from nasq.spaces.base import LayerSpec


@dataclass
class Measurement:
    """Whole networks measured together, round-robin: what :meth:`ProfilerBackend.measure_models` returns."""

    #: each model's median latency (ms), as measured
    latency_ms: list[float]
    #: each model's timings, round by round (None from a backend that keeps none)
    samples: list[list[float]] | None = None
    #: the profile's reference layer, timed in the same rounds (None: not timed)
    reference: list[float] | None = None
    #: the reference layer's latency at the speed the profile is scaled to
    reference_ms: float | None = None
    #: the reference's latency in this measurement over ``reference_ms`` (1.2: the machine ran 20% slower)
    speed: float | None = None
    #: the measurement's own noise (:func:`nasq.ort.window_spread`)
    spread: dict | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a profiler backend does, for callers to ask instead of testing its name."""

    #: the ``metadata["runtime"]`` of the profiles it writes: how a profile finds the backend that made it
    runtime: str
    #: what it measures, in words
    measures: str
    #: the precisions its profiles price natively
    precisions: tuple[str, ...]
    #: it runs whole networks (:meth:`ProfilerBackend.measure_models`, :meth:`ProfilerBackend.for_profile`):
    #: ``nasq profile validate`` and ``calibrate`` can measure its profiles again
    runs_networks: bool = False
    #: it measures the space's layer shapes (a fit to a table of whole networks does not)
    measures_layers: bool = True
    #: ``--quick`` also takes the space's coarser grid of layer shapes (``SearchSpace.profile_shapes``); a
    #: backend whose layers cost little to measure keeps the full grid and shortens its other parts instead
    quick_shapes: bool = True


class ProfilerBackend(Configurable, ABC):
    """Produces a hardware profile (see :mod:`nasq.hardware_profiles.profile`) for given layer shapes.

    Contract: :meth:`profile` returns a dict that ``Profile.from_dict`` accepts, whose
    ``metadata["runtime"]`` is ``capabilities.runtime`` and whose predictor can price every shape in
    ``shapes`` in every precision the target runs. A backend's options are its own frozen ``Options``
    dataclass (:mod:`nasq.options`), checked when made; the constructor takes them, or their fields as
    keywords, and does no work. Backends with ``capabilities.runs_networks`` also implement
    :meth:`measure_models` (what calibration and ``nasq profile validate`` measure with) and
    :meth:`for_profile` (the same backend, options and device again, from a profile's metadata).
    """

    capabilities: ClassVar[Capabilities]

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
    ) -> Measurement:
        """Each serialized ONNX model run on its feed, all measured round-robin so that the machine's noise hits
        them alike, for at least ``repetitions`` rounds and ``min_seconds``."""
        raise NasqError(f"the {type(self).__name__} backend does not run whole networks")

    @classmethod
    def for_profile(cls, metadata: dict) -> ProfilerBackend:
        """The backend that measured a profile with this ``metadata``, set up to measure like it."""
        raise NasqError(f"the {cls.__name__} backend cannot measure again")
