"""The profiler-backend interface: measure (or model) a target and return a profile dict."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

from nasq.spaces.base import LayerSpec


class ProfilerBackend(ABC):
    """Produces a hardware profile (see :mod:`nasq.hardware_profiles.profile`) for given layer shapes.

    Contract: :meth:`profile` returns a dict that ``Profile.from_dict`` accepts and whose predictor
    can price every shape in ``shapes`` in every precision the target runs. Constructors take the
    backend's options as keyword arguments and do no work.
    """

    @abstractmethod
    def profile(self, shapes: Sequence[LayerSpec], *, name: str, space: str, quick: bool = False,
                log: Callable[[str], None] = print) -> dict: ...
