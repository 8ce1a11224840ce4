"""The supported data sets: the `DATASETS` registry and their statistics.

Importing this module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "normalization_stats"]


@dataclasses.dataclass(frozen=True)
class DatasetInfo(Mapping):
    """Static description of a supported data set.

    Fields can be read as attributes (`info.num_classes`) or as mapping keys
    (`info["num_classes"]`).

    Args:
        name: str. Key of the data set in `DATASETS`.
        num_classes: int. Number of classes; labels lie in
            `[0, num_classes)`.
        image_shape: tuple. `(height, width, channels)` of the images fed to
            the model (channels-last).
        mean: tuple. Per-channel mean of `x / 255`, used for normalisation.
        std: tuple. Per-channel standard deviation of `x / 255`.
        tfds_name: str or None. Name in tensorflow-datasets, if any.
        source: str. Short description of where the data comes from.
    """

    name: str
    num_classes: int
    image_shape: tuple
    mean: tuple
    std: tuple
    tfds_name: str | None
    source: str

    def __getitem__(self, key):
        if key in self._keys():
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self):
        return len(self._keys())

    @classmethod
    def _keys(cls):
        return tuple(f.name for f in dataclasses.fields(cls))


# Digits statistics: computed once over all 1,797 images of
# `sklearn.datasets.load_digits()` after the 0..16 -> 0..255 uint8 conversion
# done by `load_arrays` (mean 0.30531, std 0.37589 of x / 255), rounded to
# four decimals. They are constants so that nothing is computed at run time.
DATASETS = {
    "digits": DatasetInfo(
        name="digits",
        num_classes=10,
        image_shape=(8, 8, 1),
        mean=(0.3053,),
        std=(0.3759,),
        tfds_name=None,
        source="sklearn.datasets.load_digits (bundled with scikit-learn)",
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        num_classes=10,
        image_shape=(32, 32, 3),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        tfds_name="cifar10",
        source="local copy (data_dir) or tensorflow-datasets 'cifar10'",
    ),
    "cifar100": DatasetInfo(
        name="cifar100",
        num_classes=100,
        image_shape=(32, 32, 3),
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        tfds_name="cifar100",
        source="local copy (data_dir) or tensorflow-datasets 'cifar100'",
    ),
    "imagenet2012": DatasetInfo(
        name="imagenet2012",
        num_classes=1000,
        image_shape=(224, 224, 3),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        tfds_name="imagenet2012",
        source="tensorflow-datasets 'imagenet2012' with manually "
        "downloaded tar files",
    ),
}


def dataset_info(dataset, allowed=None) -> DatasetInfo:
    """Returns the `DatasetInfo` of a data set name, checking the name.

    Args:
        dataset: str. A key of `DATASETS`.
        allowed: tuple of str or None. The names accepted here (default:
            every key of `DATASETS`).

    Returns:
        The `DatasetInfo` of `dataset`.

    Raises:
        ValueError: if `dataset` is not one of `allowed`.

    Example:

    >>> dataset_info("cifar100").num_classes
    100
    """
    allowed = tuple(DATASETS) if allowed is None else allowed
    if not isinstance(dataset, str) or dataset not in allowed:
        raise ValueError(
            f"`dataset` must be one of {list(allowed)}. "
            f"Received: dataset={dataset!r}"
        )
    return DATASETS[dataset]


def normalization_stats(dataset):
    """Returns the per-channel normalisation statistics of a data set.

    Args:
        dataset: str. A key of `DATASETS`.

    Returns:
        Tuple `(mean, std)` of float32 arrays of shape `(channels,)`, for
        images scaled to `[0, 1]`: the model input is `(x / 255 - mean) / std`.

    Raises:
        ValueError: for an unknown `dataset`.

    Example:

    >>> mean, std = normalization_stats("cifar10")
    >>> mean.shape
    (3,)
    """
    info = dataset_info(dataset)
    return (
        np.asarray(info.mean, dtype=np.float32),
        np.asarray(info.std, dtype=np.float32),
    )
