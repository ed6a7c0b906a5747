"""nasq: joint search of architecture, pruning and bit-widths, per hardware target.

The package is laid out along the data flow::

    configs/ (YAML) -> nasq.config -> nasq.spaces (sample a candidate)
      -> nasq.compress (prune, quantize) -> nasq.accuracy + nasq.hardware_profiles (score)
      -> nasq.search (Ray Tune + Optuna, results, Pareto) -> nasq.retrieve (rebuild, export, measure)

Nothing heavy (torch, ray, onnxruntime) is imported here, so ``nasq --help`` stays fast.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``nasq.compress_model``, ``nasq.resume`` and ``nasq.result`` (:mod:`nasq.api`), imported when first used."""
    if name in ("compress_model", "resume", "result"):
        from nasq import api

        return getattr(api, name)
    raise AttributeError(f"module 'nasq' has no attribute {name!r}")
