"""The Optuna samplers ``search.sampler`` names (``tpe``, ``nsga2``, ``random``), made so that Ray Tune can
save them: ``Tuner`` pickles its search algorithm, sampler included, into the run directory."""

from __future__ import annotations

import threading

import optuna


class NSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, picklable: from Optuna 5.1 its generation cache holds a ``threading.Lock``, which
    cannot be pickled (``Tuner`` then fails with "cannot pickle '_thread.lock' object"). The lock only
    guards that cache within one process; an unpickled sampler gets a new one."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


def make_sampler(name: str, seed: int, constraints_func=None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=8, constraints_func=constraints_func
        )
    if name == "nsga2":
        return NSGAIISampler(seed=seed, population_size=8, constraints_func=constraints_func)
    return optuna.samplers.RandomSampler(seed=seed)
