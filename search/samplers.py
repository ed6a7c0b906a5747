"""The samplers ``search.sampler`` names, one registered class each, with their options
(``search.sampler_options``).

An Optuna sampler (``tpe``, ``nsga2``, ``random``) drives Ray Tune through ``OptunaSearch``; ``evolution`` is
nasq's predictor-guided evolution (:mod:`nasq.search.evolution`), tuned by the ``search.screen_*`` keys.
Importing this module imports neither Optuna nor Ray: a config names a sampler and its options are checked
before anything heavy loads.

Example: a sampler of one's own, then ``search: {sampler: qmc, sampler_options: {scramble: false}}``::

    @SAMPLERS.register("qmc")
    class QMC(OptunaSampler):
        @dataclass(frozen=True)
        class Options(Options):
            describes = "sampler 'qmc'"
            scramble: bool = option(True, doc="scrambled Sobol points")

        def optuna_sampler(self, seed, constraints_func=None):
            import optuna
            return optuna.samplers.QMCSampler(seed=seed, scramble=self.options.scramble)
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nasq.options import Configurable, Options, option
from nasq.registry import Registry

SAMPLERS: Registry[type[Sampler]] = Registry("sampler", builtin_modules=("nasq.search.samplers",))


@dataclass(frozen=True)
class SamplerCapabilities:
    """What a sampler does, for the driver and the config to ask instead of testing its name."""

    #: an Optuna sampler, driven through Ray Tune's ``OptunaSearch`` (else the class builds its own searcher)
    optuna: bool = True
    #: it steers away from candidates that break ``constraints`` itself (every sampler's candidates are also
    #: checked before they are trained)
    constrained: bool = False
    #: it screens candidates by a latency and accuracy predictor: the ``search.screen_*`` keys apply
    screens: bool = False


@dataclass
class SearchSetup:
    """What a sampler builds its searcher from: the run's space, targets and objectives."""

    space: Any
    profiles: dict[str, Any]
    objectives: list[str]
    modes: list[str]
    seed: int
    starts: list[dict] = field(default_factory=list)  # candidates evaluated first
    constraints_func: Callable | None = None  # Optuna's: a finished trial's constraint violations
    proxy: dict | None = None  # the evolution's zero-cost proxy and the data it sees
    config: Any = None  # the ExperimentConfig


class Sampler(Configurable, ABC):
    """One search strategy. Contract: :meth:`searcher` returns a Ray Tune ``Searcher`` over ``setup.space``
    that reports every objective of ``setup.objectives``; the class's ``Options`` are checked when made."""

    capabilities: ClassVar[SamplerCapabilities] = SamplerCapabilities()

    @abstractmethod
    def searcher(self, setup: SearchSetup): ...


class OptunaSampler(Sampler):
    """A sampler that is an Optuna sampler, driven through Ray Tune's ``OptunaSearch``."""

    @abstractmethod
    def optuna_sampler(self, seed: int, constraints_func: Callable | None = None): ...

    def searcher(self, setup: SearchSetup):
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(
            space=setup.space.define,
            metric=setup.objectives,
            mode=setup.modes,
            sampler=self.optuna_sampler(setup.seed, setup.constraints_func),
            points_to_evaluate=setup.starts or None,
        )


@dataclass(frozen=True)
class TPEOptions(Options):
    describes = "sampler 'tpe'"
    n_startup_trials: int = option(8, min=0, max=1_000_000, doc="random trials before TPE models the results")
    multivariate: bool = option(True, doc="model the parameters jointly")
    group: bool = option(True, doc="model each set of parameters that appear together apart (conditional spaces)")


@SAMPLERS.register("tpe")
class TPE(OptunaSampler):
    """Optuna's multi-objective TPE (the default)."""

    Options = TPEOptions
    options: TPEOptions
    capabilities = SamplerCapabilities(constrained=True)

    def optuna_sampler(self, seed: int, constraints_func: Callable | None = None):
        import optuna

        o = self.options
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=o.multivariate,
            group=o.group and o.multivariate,  # (Optuna's `group` needs `multivariate`)
            n_startup_trials=o.n_startup_trials,
            constraints_func=constraints_func,
        )


@dataclass(frozen=True)
class NSGA2Options(Options):
    describes = "sampler 'nsga2'"
    population_size: int = option(8, min=2, max=100_000, doc="candidates per generation")
    crossover_prob: float = option(0.9, min=0.0, max=1.0, doc="chance that a child is a crossover of two parents")
    swapping_prob: float = option(0.5, min=0.0, max=1.0, doc="chance that a parameter comes from the other parent")


@SAMPLERS.register("nsga2")
class NSGA2(OptunaSampler):
    """Optuna's NSGA-II."""

    Options = NSGA2Options
    options: NSGA2Options
    capabilities = SamplerCapabilities(constrained=True)

    def optuna_sampler(self, seed: int, constraints_func: Callable | None = None):
        o = self.options
        return _picklable_nsga2()(
            seed=seed,
            population_size=o.population_size,
            crossover_prob=o.crossover_prob,
            swapping_prob=o.swapping_prob,
            constraints_func=constraints_func,
        )


@SAMPLERS.register("random")
class Random(OptunaSampler):
    """Optuna's random sampler: the baseline the others must beat."""

    def optuna_sampler(self, seed: int, constraints_func: Callable | None = None):
        import optuna

        return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("evolution")
class Evolution(Sampler):
    """nasq's evolution over a latency and accuracy predictor (APQ-style), tuned by ``search.screen_*``."""

    capabilities = SamplerCapabilities(optuna=False, constrained=True, screens=True)

    def searcher(self, setup: SearchSetup):
        from nasq.search.evolution import PredictorEvolution

        s = setup.config.search
        return PredictorEvolution(
            setup.space,
            setup.profiles,
            metric=setup.objectives,
            mode=setup.modes,
            seed=setup.seed,
            pool_size=s.screen_pool,
            startup=s.screen_startup,
            screen_every=s.screen_every,
            screen_workers=s.screen_workers,
            bounded_share=s.screen_bounded_share,
            explore=s.screen_explore,
            points_to_evaluate=setup.starts,
            constraints=setup.config.constraints,
            proxy=setup.proxy,
            proxy_pool=s.screen_proxy_pool,
            shortlist=s.screen_shortlist,
        )


_NSGA2: list[type] = []


def _picklable_nsga2() -> type:
    """Optuna's NSGA-II, picklable: from Optuna 5.1 its generation cache holds a ``threading.Lock``, which
    cannot be pickled (``Tuner`` pickles its search algorithm, sampler included, and then fails with "cannot
    pickle '_thread.lock' object"). The lock only guards that cache within one process; an unpickled sampler
    gets a new one. (Made on first use, so that importing this module does not import Optuna.)"""
    if not _NSGA2:
        import optuna

        class NSGAIISampler(optuna.samplers.NSGAIISampler):
            def __getstate__(self) -> dict:
                state = self.__dict__.copy()
                state.pop("_thread_lock", None)
                return state

            def __setstate__(self, state: dict) -> None:
                self.__dict__.update(state)
                self._thread_lock = threading.Lock()

        NSGAIISampler.__module__, NSGAIISampler.__qualname__ = __name__, "NSGAIISampler"
        _NSGA2.append(NSGAIISampler)
    return _NSGA2[0]


def __getattr__(name: str) -> Any:  # NSGAIISampler, for pickles that name it
    if name == "NSGAIISampler":
        return _picklable_nsga2()
    raise AttributeError(name)
