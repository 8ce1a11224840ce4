"""`load_arrays`: a data set as validated NumPy arrays, from any source.

The digits come from scikit-learn, CIFAR from a local copy
(`keras_ahbf.data.cifar`) or tensorflow-datasets (`keras_ahbf.data.tfds`);
every split is checked by `validate_arrays` before it is returned.
"""

from __future__ import annotations

import numpy as np

from keras_ahbf.data import _utils
from keras_ahbf.data import cifar
from keras_ahbf.data import tfds
from keras_ahbf.data.datasets import dataset_info
from keras_ahbf.data.validation import validate_arrays

__all__ = ["load_arrays"]


def load_arrays(
    dataset,
    data_dir=None,
    *,
    train_limit=None,
    test_limit=None,
    download=False,
):
    """Loads a data set as NumPy arrays.

    `"digits"` comes from scikit-learn (`data_dir` is ignored): the 0..16
    pixel values are scaled to uint8 0..255, the images kept at 8x8, and a
    deterministic stratified 80/20 split (`random_state=0`) gives 1,437
    training and 360 test images.

    `"cifar10"` / `"cifar100"` are read from `data_dir` when given, which may
    be:

    - an `.npz` file with `x_train`, `y_train`, `x_test`, `y_test` (uint8
      NHWC images, integer labels);
    - a directory containing `<dataset>.npz` (or a single
      `<dataset>_*.npz`, e.g. `cifar10_subset.npz`);
    - the extracted official python version (`cifar-10-batches-py` with
      `data_batch_1`..`data_batch_5` and `test_batch`; `cifar-100-python`
      with `train` and `test`, fine labels), or its parent directory.

    Without `data_dir` they are loaded with tensorflow-datasets from its data
    directory (`TFDS_DATA_DIR` or `~/tensorflow_datasets`). Nothing is
    downloaded unless `download=True`; with `download=True` and no network,
    a `DataError` is raised after a connectivity probe of a few seconds.

    ImageNet is too large for arrays: use `load_imagenet`.

    Args:
        dataset: str. One of `"digits"`, `"cifar10"`, `"cifar100"`.
        data_dir: str, path-like or None. Local copy of the data (see above).
        train_limit: int or None. Keep only the first `train_limit` training
            examples (in the source's fixed order), for quick runs.
        test_limit: int or None. Same for the test split.
        download: bool. Let tensorflow-datasets download and prepare the data
            set when it is not prepared yet.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: images uint8
        `(N, H, W, C)` channels-last, labels int64 `(N,)`.

    Raises:
        DataError: if the data is missing, unreadable or malformed, or
            cannot be obtained offline; the message says what to pass.
        ValueError: for an unknown `dataset` or a bad limit.
        TypeError: for arguments of the wrong type.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = load_arrays("digits")
    >>> x_train.shape, x_test.shape
    ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    if dataset == "imagenet2012":
        raise ValueError(
            "ImageNet is too large to load as arrays. Use "
            "`load_imagenet(data_dir, split)` and pass the result to "
            "`make_dataset(..., dataset='imagenet2012')`. "
            f"Received: dataset={dataset!r}"
        )
    info = dataset_info(dataset, allowed=("digits", "cifar10", "cifar100"))
    train_limit = _utils.check_optional_int("train_limit", train_limit, 1)
    test_limit = _utils.check_optional_int("test_limit", test_limit, 1)
    download = _utils.check_bool("download", download)
    _utils.check_path("data_dir", data_dir)

    if dataset == "digits":
        (x_train, y_train), (x_test, y_test) = _load_digits()
        source = "sklearn digits"
    elif data_dir is not None:
        (x_train, y_train), (x_test, y_test), source = cifar.load_local(
            dataset, data_dir
        )
    else:
        (x_train, y_train), (x_test, y_test) = tfds.load_tfds_arrays(
            dataset, download, train_limit, test_limit
        )
        source = f"tensorflow-datasets {info.tfds_name}"

    splits = []
    for split, x, y, limit in (
        ("train", x_train, y_train, train_limit),
        ("test", x_test, y_test, test_limit),
    ):
        if limit is not None:
            x, y = x[:limit], y[:limit]
        x, y = validate_arrays(
            x,
            y,
            info.num_classes,
            name=f"{dataset} {split} split ({source})",
            image_shape=info.image_shape,
        )
        splits.append((np.ascontiguousarray(x), y))
    return tuple(splits)


def _load_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0, shuffle=True
    )
    return (x_train, y_train), (x_test, y_test)
