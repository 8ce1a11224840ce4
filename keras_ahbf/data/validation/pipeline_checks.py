"""Checks of what the loaders and `make_dataset` read: `DataError`s.

`validate_arrays` checks NumPy images and labels, `check_example_dataset`
the `element_spec` of a dataset of unbatched `(image, label)` pairs. Every
error is a `DataError` naming the split, file or data set and the problem,
raised before a pipeline is built.
"""

from __future__ import annotations

import numpy as np

from keras_ahbf.data.validation._rules import as_class_ids
from keras_ahbf.data.validation._rules import first_non_integer
from keras_ahbf.data.validation._rules import looks_channels_first
from keras_ahbf.data.validation._rules import nonfinite
from keras_ahbf.data.validation._rules import out_of_range
from keras_ahbf.data.validation._rules import imported_tensorflow
from keras_ahbf.utils.validation import check_int

__all__ = ["DataError", "check_example_dataset", "validate_arrays"]


class DataError(ValueError):
    """Raised when a data set is missing, unreadable or malformed.

    The message names the file or array concerned and the problem found, for
    instance a label outside `[0, num_classes)` together with the offending
    value. It is raised by the loaders before any training starts.
    """


def validate_arrays(x, y, num_classes, *, name="train", image_shape=None):
    """Checks an image/label pair of arrays and returns them in canonical form.

    These are the checks behind `DataError`: `x` must be a non-empty rank-4
    channels-last array `(N, H, W, C)` with 1 or 3 channels and pixel values
    in `[0, 255]` (uint8, another integer dtype, or a finite float array on
    the 0..255 scale); `y` must hold `N` integer class ids in
    `[0, num_classes)`, with shape `(N,)` or `(N, 1)`.

    Args:
        x: array-like. Images, channels-last.
        y: array-like. Integer class labels.
        num_classes: int. Number of classes.
        name: str. What the arrays are (a split, a file), used in messages.
        image_shape: tuple or None. If given, the required `(H, W, C)`.

    Returns:
        Tuple `(x, y)`: `x` as uint8 `(N, H, W, C)` (floats are rounded),
        `y` as int64 `(N,)`. Arrays already in that form are not copied.

    Raises:
        DataError: if the arrays are malformed; the message names `name` and
            the problem.
        ValueError: if `num_classes` is not a positive integer.

    Example:

    >>> import numpy as np
    >>> x = np.zeros((2, 8, 8, 1), "uint8")
    >>> x, y = validate_arrays(x, [0, 9], num_classes=10)
    >>> y.dtype
    dtype('int64')
    """
    num_classes = check_int("num_classes", num_classes, 1)
    try:
        x = np.asarray(x)
        y = np.asarray(y)
    except Exception as e:
        raise DataError(f"{name}: could not convert data to arrays: {e}")
    _check_image_array(x, name, image_shape)
    x = _pixels_as_uint8(x, name)
    y = _check_label_array(y, len(x), num_classes, name)
    return x, y


def _check_image_array(x, name, image_shape):
    if x.dtype == bool or x.dtype.kind not in "uif":
        raise DataError(
            f"{name}: images must be a numeric array (uint8 0..255); got "
            f"dtype {x.dtype}."
        )
    if x.ndim != 4:
        hint = ""
        if x.ndim == 3:
            hint = (
                " For grayscale images add a channel axis, e.g. "
                "x[..., None]."
            )
        raise DataError(
            f"{name}: images must be a rank-4 channels-last array "
            f"(N, height, width, channels); got rank {x.ndim} with shape "
            f"{x.shape}.{hint}"
        )
    if x.shape[0] == 0:
        raise DataError(f"{name}: images are empty (shape {x.shape}).")
    if 0 in x.shape[1:]:
        raise DataError(f"{name}: images have an empty axis: {x.shape}.")
    if x.shape[-1] not in (1, 3):
        hint = ""
        if looks_channels_first(x.shape[1:]):
            hint = (
                " It looks channels-first (N, C, H, W); transpose it with "
                "x.transpose(0, 2, 3, 1)."
            )
        raise DataError(
            f"{name}: images must be channels-last with 1 or 3 channels; "
            f"got shape {x.shape}.{hint}"
        )
    if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
        dims = ", ".join(map(str, image_shape))
        raise DataError(
            f"{name}: images must have shape (N, {dims}) "
            f"(height, width, channels); got {x.shape}."
        )
    if x.dtype.kind == "f":
        count, index = nonfinite(x)
        if count:
            raise DataError(
                f"{name}: images contain {count} NaN/inf value(s); first at "
                f"index {index} (value {x[index]})."
            )


def _pixels_as_uint8(x, name):
    """Checks the 0..255 range and returns `x` as uint8 (floats rounded)."""
    if x.dtype == np.uint8:
        return x
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > 255:
        raise DataError(
            f"{name}: pixel values must lie in [0, 255]; got values in "
            f"[{lo}, {hi}] (dtype {x.dtype})."
        )
    if x.dtype.kind == "f" and hi <= 1.0:
        raise DataError(
            f"{name}: float images have maximum {hi}, i.e. they look "
            "scaled to [0, 1]; pass them on the 0..255 scale "
            "(e.g. x * 255) or as uint8."
        )
    if x.dtype.kind == "f":
        x = np.rint(x)
    return x.astype(np.uint8)


def _check_label_array(y, num_images, num_classes, name):
    """Checks labels for `num_images` images; returns them as int64 `(N,)`."""
    y = as_class_ids(y)
    if y.ndim != 1:
        hint = ""
        if y.ndim == 2:
            hint = (
                " One-hot labels are not accepted; pass class ids, e.g. "
                "y.argmax(-1)."
            )
        raise DataError(
            f"{name}: labels must have shape (N,) or (N, 1); got shape "
            f"{y.shape}.{hint}"
        )
    if y.shape[0] == 0:
        raise DataError(f"{name}: labels are empty (shape {y.shape}).")
    if y.shape[0] != num_images:
        raise DataError(
            f"{name}: {num_images} images but {y.shape[0]} labels; x and y "
            "must have the same length."
        )
    if y.dtype == bool or y.dtype.kind not in "uif":
        raise DataError(
            f"{name}: labels must be integer class ids; got dtype {y.dtype}."
        )
    if y.dtype.kind == "f":
        count, index = nonfinite(y)
        if count:
            raise DataError(
                f"{name}: labels contain NaN/inf; first at index {index[0]} "
                f"(value {y[index]})."
            )
    i = first_non_integer(y)
    if i is not None:
        raise DataError(
            f"{name}: labels must be integer class ids; got {y[i]} at "
            f"index {i}."
        )
    outside = out_of_range(y, num_classes)
    if outside is not None:
        i, count = outside
        value = y[i].item()
        if isinstance(value, float):
            value = int(value)
        raise DataError(
            f"{name}: label {value} at index {i} is outside [0, "
            f"{num_classes}) ({count} label(s) out of range)."
        )
    return y if y.dtype == np.int64 else y.astype(np.int64)


def check_example_dataset(ds, dataset, image_shape=None, num_classes=None):
    """Checks a dataset of unbatched `(image, label)` pairs for `make_dataset`.

    Args:
        ds: `tf.data.Dataset`. The examples.
        dataset: str. The data set's name, used in the messages.
        image_shape: tuple or None. The required `(H, W, C)`; None accepts
            any size (ImageNet's images vary).
        num_classes: int or None. Used for the one-hot hint only.

    Raises:
        DataError: if the pairs are batched, not pairs, images not rank-3
            numeric (or not `image_shape`, channels-first included), labels
            not scalar integers (one-hot included), or `ds` is empty.
    """
    tf = imported_tensorflow()
    spec = ds.element_spec
    if (
        not isinstance(spec, tuple)
        or len(spec) != 2
        or not isinstance(spec[0], tf.TensorSpec)
        or spec[0].shape.rank != 3
    ):
        raise DataError(
            f"{dataset} dataset: `x` must yield unbatched (image, label) "
            "pairs with images of rank 3 (height, width, channels); got "
            f"element_spec={spec}."
        )
    shape = tuple(spec[0].shape)
    if image_shape is not None and shape != tuple(image_shape):
        hint = ""
        if looks_channels_first(shape, image_shape):
            hint = (
                " It looks channels-first; transpose the images to "
                "(height, width, channels)."
            )
        raise DataError(
            f"{dataset} dataset: images must have shape "
            f"{tuple(image_shape)}; got {shape}.{hint}"
        )
    if not (spec[0].dtype.is_integer or spec[0].dtype.is_floating):
        raise DataError(
            f"{dataset} dataset: images must be numeric (uint8 0..255); "
            f"got dtype {spec[0].dtype.name}."
        )
    label_shape = spec[1].shape if isinstance(spec[1], tf.TensorSpec) else None
    if (
        label_shape is None
        or label_shape.rank is None
        or label_shape.as_list() not in ([], [1])
    ):
        one_hot = ""
        if label_shape is not None and label_shape.as_list() == [num_classes]:
            one_hot = (
                " One-hot labels are not accepted; map them to class "
                "ids, e.g. tf.argmax(label, -1)."
            )
        raise DataError(
            f"{dataset} dataset: labels must be scalar integer class ids; "
            f"got element_spec[1]={spec[1]}.{one_hot}"
        )
    if not spec[1].dtype.is_integer:
        raise DataError(
            f"{dataset} dataset: labels must be integer class ids; got "
            f"dtype {spec[1].dtype.name}."
        )
    if int(ds.cardinality()) == 0:
        raise DataError(
            f"{dataset} dataset: `x` is empty (cardinality 0); it must "
            "yield at least one (image, label) pair."
        )
