"""The search-space interface and the data every other part reads: candidates and layer specs."""

from __future__ import annotations

import hashlib
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from nasq.errors import NasqError

#: A candidate is an ordered flat mapping ``param name -> value``. Per-layer params are named
#: ``"<layer qualified name>.<setting>"`` with settings ``prune``, ``w_bits``, ``a_bits``.
Candidate = dict[str, Any]


def restructured(candidate: Candidate) -> bool:
    """Whether a candidate of a trained model changes its structure: a channel group pruned, a block removed."""
    return any((k.endswith(".prune") and v > 0) or (k.endswith(".remove") and v) for k, v in candidate.items())


def canonical_key(candidate: Candidate) -> str:
    """The candidate's canonical, hashable key: sorted compact JSON, which round-trips."""
    return json.dumps(candidate, sort_keys=True, separators=(",", ":"))


def candidate_id(candidate: Candidate) -> str:
    """A short stable id for display and file names."""
    return hashlib.sha1(canonical_key(candidate).encode()).hexdigest()[:12]


def with_uniform_bits(candidate: Candidate, bits: int, space: SearchSpace | None = None) -> Candidate:
    """The same architecture and pruning with every weight and activation at ``bits``; with ``space``, only where the
    space allows ``bits`` (a layer fixed by an override keeps its own)."""
    if space is None:
        return {k: (bits if k.endswith((".w_bits", ".a_bits")) else v) for k, v in candidate.items()}
    return space.derive(
        lambda name, choices: bits if name.endswith((".w_bits", ".a_bits")) and bits in choices else None, candidate
    )


@dataclass(frozen=True)
class LayerSpec:
    """One compute layer as the latency predictors see it (after pruning).

    ``op`` is ``conv`` (dense 2-D conv), ``dwconv`` (depthwise, groups == cin == cout) or
    ``linear``. ``h_in`` is the (square) input height; ``w_bits``/``a_bits`` are 2..8 or 32 (float).
    ``residual`` > 0: the layer's output is added to the input of the layer ``residual - 1`` places
    before it (a residual branch of that many layers ends here). A ``linear`` layer after a spatial one
    reads its input through a global average pool.
    """

    name: str
    op: str
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    h_in: int = 1
    w_bits: int = 32
    a_bits: int = 32
    residual: int = 0

    @property
    def h_out(self) -> int:
        return (self.h_in + 2 * (self.kernel // 2) - self.kernel) // self.stride + 1

    @property
    def macs(self) -> int:
        if self.op == "dwconv":
            return self.cout * self.kernel**2 * self.h_out**2
        if self.op == "linear":
            return self.cin * self.cout
        return self.cin * self.cout * self.kernel**2 * self.h_out**2

    @property
    def params(self) -> int:
        per_out = self.kernel**2 if self.op == "dwconv" else self.cin * self.kernel**2
        return self.cout * per_out

    @property
    def in_numel(self) -> int:
        return self.cin * self.h_in**2

    @property
    def out_numel(self) -> int:
        return self.cout * self.h_out**2

    def shape_only(self) -> LayerSpec:
        """The same shape with neutral name and bits, for de-duplicating profile plans."""
        return LayerSpec("", self.op, self.cin, self.cout, self.kernel, self.stride, self.h_in)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Suggester(Protocol):
    """What :meth:`SearchSpace.define` samples through; ``optuna.Trial`` is one."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


class RandomSuggester:
    """Uniform random choices from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self.params: Candidate = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.params[name] = self._rng.choice(list(choices))
        return self.params[name]


class _Picker:
    """Chooses by a function of (name, choices), falling back to a base candidate's value."""

    def __init__(self, pick, base: Candidate) -> None:
        self.pick, self.base = pick, base
        self.params: dict = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self.pick(name, list(choices))
        self.params[name] = self.base[name] if value is None else value
        return self.params[name]


class _ChoiceRecorder:
    """Replays a candidate, recording each parameter's choices."""

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate
        self.choices: dict = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.choices[name] = list(choices)
        return self.candidate[name]


class FixedSuggester:
    """Replays a given candidate, checking every value; unknown or missing params are errors."""

    def __init__(self, candidate: Candidate) -> None:
        self._candidate = candidate
        self.params: Candidate = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        if name not in self._candidate:
            raise NasqError(f"candidate lacks parameter '{name}'; allowed values: {list(choices)}")
        value = self._candidate[name]
        if value not in list(choices):
            raise NasqError(f"candidate parameter '{name}' = {value!r} not allowed; allowed: {list(choices)}")
        self.params[name] = value
        return value


class SearchSpace(ABC):
    """A space of compressed networks: architecture, per-layer pruning and bit-widths together.

    Implementations define their parameters once, in :meth:`define`, through a
    :class:`Suggester` (define-by-run, so parameters can depend on earlier choices such as depth).
    Everything else (sampling, validation, Optuna search) is derived from it.

    Example:
        >>> space = create_space("mobilenet-mnist")              # doctest: +SKIP
        >>> cand = space.sample(seed=0)                           # doctest: +SKIP
        >>> model = space.build(cand); specs = space.layers(cand)  # doctest: +SKIP
    """

    name: str = ""
    input_shape: tuple[int, ...] = (1, 28, 28)
    num_classes: int = 10

    @abstractmethod
    def define(self, trial: Suggester) -> None:
        """Sample every parameter of one candidate through ``trial.suggest_categorical``."""

    @abstractmethod
    def build(self, candidate: Candidate):
        """The candidate's unpruned float torch model; its quantizable layers carry the
        qualified names used in the candidate's per-layer params."""

    @abstractmethod
    def layers(self, candidate: Candidate) -> list[LayerSpec]:
        """The candidate's compute layers after pruning, with their bit-widths, in execution order."""

    @abstractmethod
    def profile_shapes(self, *, quick: bool = False) -> list[LayerSpec]:
        """Layer shapes a hardware profile must cover to price every candidate of this space."""

    def features(self, candidate: Candidate) -> dict[str, float]:
        """Structural features for the accuracy predictor that neither the choices one by one nor the layer
        list show (a cell space: which operations lie on live input-to-output paths). The same keys for
        every candidate of the space; default: none."""
        return {}

    # Derived helpers --------------------------------------------------------------------------

    def sample(self, seed: int) -> Candidate:
        suggester = RandomSuggester(seed)
        self.define(suggester)
        return suggester.params

    def choices(self, candidate: Candidate | None = None) -> dict[str, list[Any]]:
        """Every parameter ``candidate`` (default: the largest candidate, which has them all) sets, with
        the choices the space offers it, in definition order."""
        recorder = _ChoiceRecorder(candidate if candidate is not None else self.supernet_candidate())
        self.define(recorder)
        return recorder.choices

    def validate(self, candidate: Candidate) -> Candidate:
        """Return the candidate in canonical order, or raise NasqError naming the bad param."""
        if not isinstance(candidate, dict):
            raise NasqError(f"a candidate must be a mapping, got {type(candidate).__name__}")
        suggester = FixedSuggester(candidate)
        self.define(suggester)
        extra = set(candidate) - set(suggester.params)
        if extra:
            raise NasqError(f"candidate has parameters unknown to space '{self.name}': {sorted(extra)}")
        return suggester.params

    @staticmethod
    def per_layer(candidate: Candidate, setting: str) -> dict[str, Any]:
        suffix = "." + setting
        return {k[: -len(suffix)]: v for k, v in candidate.items() if k.endswith(suffix)}

    def compress(self, model, candidate: Candidate) -> None:
        """Prune the float model in place as the candidate says (bits are set by :meth:`quantize`)."""
        import torch

        from nasq.compress import prune_channels

        prune_channels(model, self.per_layer(candidate, "prune"), torch.zeros(1, *self.input_shape))

    # Weight sharing (optional) ---------------------------------------------------------------

    def supernet_candidate(self) -> Candidate:
        """The largest candidate (every choice at its maximum, no pruning, float): a supernet is its
        network, and every candidate's weights are slices of the supernet's."""
        return self.derive(lambda name, choices: min(choices) if name.endswith((".prune", ".remove")) else max(choices))

    def derive(self, pick, base: Candidate | None = None) -> Candidate:
        """The candidate whose every parameter is ``pick(name, choices)``, or ``base``'s value where
        ``pick`` returns None."""
        suggester = _Picker(pick, base or {})
        self.define(suggester)
        return suggester.params

    def uniformly_pruned(self, candidate: Candidate, ratio: float) -> Candidate:
        """The same candidate with every channel group pruned by ``ratio`` where the group offers it, and no block
        removed: the hand route's one ratio for all layers."""

        def pick(name: str, choices: list) -> Any:
            if name.endswith(".prune") and ratio in choices:
                return ratio
            return False if name.endswith(".remove") and False in choices else None

        return self.derive(pick, candidate)

    def unpruned(self, candidate: Candidate) -> Candidate:
        """The same candidate with every pruning ratio at 0 where the space offers 0, and no block removed."""

        def pick(name: str, choices: list) -> Any:
            if name.endswith(".prune") and 0.0 in choices:
                return 0.0
            return False if name.endswith(".remove") and False in choices else None

        return self.derive(pick, candidate)

    def build_pruned(self, candidate: Candidate):
        """The candidate's float model with every pruned layer narrowed to its leading channels, so that
        its parameters are leading slices (and centred kernel crops) of the supernet's, by name. Spaces
        that support weight sharing implement this; the others refuse."""
        raise NasqError(
            f"space '{self.name}' does not support weight sharing (it has no supernet); "
            "choose another accuracy.estimate"
        )

    def quantize(self, model, candidate: Candidate) -> None:
        from nasq.compress import apply_bits

        apply_bits(model, self.per_layer(candidate, "w_bits"), self.per_layer(candidate, "a_bits"))
