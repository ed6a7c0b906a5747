"""What can be searched: search spaces over architecture, per-layer pruning and bit-widths.

Spaces build torch models from :mod:`nasq.compress` layers and describe their layers for the
latency predictors; they never import the search driver.
"""

from nasq.registry import Registry
from nasq.spaces.base import Candidate, LayerSpec, SearchSpace, candidate_id, canonical_key

SPACES: Registry[type[SearchSpace]] = Registry("search space", builtin_modules=("nasq.spaces.mobilenet", "nasq.spaces.nasbench", "nasq.spaces.from_model"))


def create_space(name: str) -> SearchSpace:
    return SPACES.create(name)


__all__ = ["SPACES", "Candidate", "LayerSpec", "SearchSpace", "candidate_id", "canonical_key", "create_space"]
