"""What can be searched: search spaces over architecture, per-layer pruning and bit-widths.

Spaces build torch models from :mod:`nasq.compress` layers and describe their layers for the
latency predictors; they never import the search driver.
"""

from nasq.errors import NasqError
from nasq.registry import Registry
from nasq.spaces.base import Candidate, LayerSpec, SearchSpace, candidate_id, canonical_key

SPACES: Registry[type[SearchSpace]] = Registry(
    "search space", builtin_modules=("nasq.spaces.mobilenet", "nasq.spaces.nasbench", "nasq.spaces.from_model")
)


#: spaces built in this process that no registry name makes: a trained model's (``from-model:<model>:<digest>``), so
#: that what looks a space up by the name a profile records finds it
_BUILT: dict[str, SearchSpace] = {}


def remember_space(space: SearchSpace) -> None:
    _BUILT[space.name] = space


def create_space(name: str) -> SearchSpace:
    if name in _BUILT:
        return _BUILT[name]
    if name.startswith("from-model:"):
        raise NasqError(
            f"space '{name}' is a trained model's; it is built from a config's model block (nasq search "
            "CONFIG), not by name"
        )
    return SPACES.create(name)


__all__ = ["SPACES", "Candidate", "LayerSpec", "SearchSpace", "candidate_id", "canonical_key", "create_space"]
