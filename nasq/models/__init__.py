"""Where a user's model comes in: its factory and trained weights, checked against an input shape.

Example:
    >>> model = load_model(ModelSpec(factory="my_nets.py:small_resnet", weights="resnet.pt",
    ...                              input_shape=(1, 28, 28)))                                  # doctest: +SKIP
"""

from nasq.models.loading import LoadedModel, ModelSpec, check_classes, load_model

__all__ = ["LoadedModel", "ModelSpec", "check_classes", "load_model"]
