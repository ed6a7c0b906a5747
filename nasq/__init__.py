"""nasq: joint search of architecture, pruning and bit-widths, per hardware target.

The package is laid out along the data flow::

    configs/ (YAML) -> nasq.config -> nasq.spaces (sample a candidate)
      -> nasq.compress (prune, quantize) -> nasq.accuracy + nasq.hardware_profiles (score)
      -> nasq.search (Ray Tune + Optuna, results, Pareto) -> nasq.retrieve (rebuild, export, measure)

Nothing heavy (torch, ray, onnxruntime) is imported here, so ``nasq --help`` stays fast.
"""

__version__ = "0.1.0"
