"""Checks of images and labels: the one place they are validated.

Three callers, three message styles, one set of rules:

- the loaders and `make_dataset` (`validate_arrays`, `check_example_dataset`)
  raise `DataError` naming the split or file, before a pipeline is built;
- `OnlineKDModel.fit` / `evaluate` (`check_model_arrays`,
  `check_batch_dataset`) raise `ValueError` / `TypeError` naming the argument
  (`x`, `validation_data[1]`, ...), before the first training step;
- the loss functions (`check_labels`, `check_label_values`) check labels
  against the logits' shape; only NumPy/Python labels have their values read.

The rules they share (one class id per image, `(N,)` or `(N, 1)`; integer
values in `[0, num_classes)`; channels-last images; the channels-first
hint; no NaN/inf pixels) are written once below. Nothing here imports
TensorFlow: `tf.data.Dataset` arguments are recognised only if TensorFlow is
already imported (a dataset cannot exist otherwise).
"""

from __future__ import annotations

import numbers
import sys

import numpy as np

from keras_ahbf.data._utils import check_int

__all__ = [
    "DataError",
    "check_batch_dataset",
    "check_example_dataset",
    "check_label_values",
    "check_labels",
    "check_model_arrays",
    "validate_arrays",
]


class DataError(ValueError):
    """Raised when a data set is missing, unreadable or malformed.

    The message names the file or array concerned and the problem found, for
    instance a label outside `[0, num_classes)` together with the offending
    value. It is raised by the loaders before any training starts.
    """


# --------------------------------------------------------------------------
# Shared rules.


def _looks_channels_first(shape, expected=None):
    """True if an image of `shape` looks like `(channels, height, width)`.

    That is `expected` `(H, W, C)` transposed to `(C, H, W)`, or a leading
    axis of 1 or 3 followed by `(H, W)` (any `(H, W)` if `expected` is None).
    """
    shape = tuple(shape)
    if len(shape) != 3:
        return False
    if expected is not None:
        h, w, c = expected
        if shape == (c, h, w):
            return True
    if shape[0] not in (1, 3):
        return False
    return expected is None or shape[1:] == tuple(expected[:2])


def _nonfinite(x):
    """`(count, first index)` of the NaN/inf values of a float array."""
    finite = np.isfinite(x)
    if finite.all():
        return 0, None
    count = int(np.size(finite) - np.count_nonzero(finite))
    return count, tuple(int(i) for i in np.argwhere(~finite)[0])


def _as_class_ids(y):
    """`(N, 1)` labels as `(N,)`; other shapes unchanged."""
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


def _first_non_integer(labels):
    """Index of the first fractional or non-finite float label, or None."""
    if labels.dtype.kind != "f":
        return None
    bad = ~(np.isfinite(labels) & (labels == np.round(labels)))
    return int(np.argmax(bad)) if bad.any() else None


def _out_of_range(labels, num_classes):
    """`(first index, count)` of labels outside `[0, num_classes)`, or None."""
    outside = (labels < 0) | (labels >= num_classes)
    if not outside.any():
        return None
    return int(np.argmax(outside)), int(outside.sum())


# --------------------------------------------------------------------------
# Arrays read by the loaders and `make_dataset` (DataError).


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
    num_classes = check_int("num_classes", num_classes, minimum=1)
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
        if _looks_channels_first(x.shape[1:]):
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
        count, index = _nonfinite(x)
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
    y = _as_class_ids(y)
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
        count, index = _nonfinite(y)
        if count:
            raise DataError(
                f"{name}: labels contain NaN/inf; first at index {index[0]} "
                f"(value {y[index]})."
            )
    i = _first_non_integer(y)
    if i is not None:
        raise DataError(
            f"{name}: labels must be integer class ids; got {y[i]} at "
            f"index {i}."
        )
    outside = _out_of_range(y, num_classes)
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


# --------------------------------------------------------------------------
# `tf.data.Dataset`s, from their `element_spec`.


def _tensorflow():
    """The `tensorflow` module if it is imported already, else None."""
    return sys.modules.get("tensorflow")


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
    tf = _tensorflow()
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
        if _looks_channels_first(shape, image_shape):
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


def check_batch_dataset(x, name="x", image_shape=None):
    """Checks a batched `tf.data.Dataset` given to `fit` / `evaluate`.

    Other inputs are ignored (TensorFlow is not imported for them).

    Args:
        x: the argument; checked only if it is a `tf.data.Dataset`.
        name: str. The argument's name, used in the messages.
        image_shape: tuple or None. The model's `(H, W, C)`, if known.

    Raises:
        ValueError: on a dataset that does not yield `(images, labels)`
            batches, images that are not `(batch, height, width, channels)`
            of `image_shape` (channels-first included), labels that are not
            one class id per image (one-hot labels included), or an empty
            dataset.
    """
    tf = _tensorflow()
    if tf is None or not isinstance(x, tf.data.Dataset):
        return
    spec = x.element_spec
    if (
        not isinstance(spec, tuple)
        or len(spec) < 2
        or not isinstance(spec[0], tf.TensorSpec)
    ):
        raise ValueError(
            f"`{name}` must yield (images, labels) batches. Received: "
            f"{name}.element_spec={spec}"
        )
    shape = tuple(spec[0].shape) if spec[0].shape.rank is not None else None
    if shape is not None and len(shape) != 4:
        raise ValueError(
            f"`{name}` must yield batches of images (batch, height, width, "
            f"channels); batch it with `.batch(n)`. Received: images of "
            f"shape {shape}"
        )
    if shape is not None and image_shape is not None and None not in shape[1:]:
        expected = tuple(image_shape)
        if shape[1:] != expected:
            raise ValueError(
                f"`{name}` must yield images of shape {expected}."
                f"{_model_channels_hint(shape[1:], expected)} "
                f"Received: images of shape {shape}"
            )
    labels = spec[1]
    if isinstance(labels, tf.TensorSpec) and labels.shape.rank is not None:
        lshape = tuple(labels.shape)
        if len(lshape) not in (1, 2) or (
            len(lshape) == 2 and lshape[1] not in (1, None)
        ):
            raise ValueError(
                f"`{name}` must yield one integer label per image, shape "
                "(batch,) or (batch, 1) (one-hot labels are not supported). "
                f"Received: labels of shape {lshape}"
            )
    if int(x.cardinality()) == 0:
        raise ValueError(f"`{name}` is empty (cardinality 0).")


# --------------------------------------------------------------------------
# NumPy arrays given to `fit` / `evaluate` (ValueError / TypeError).


def _model_channels_hint(shape, expected):
    if _looks_channels_first(shape, expected):
        return " The images look channels-first; keras_ahbf is channels-last."
    return ""


def check_model_arrays(
    x, y, *, image_shape=None, num_classes=None, x_name="x", y_name="y"
):
    """Checks NumPy images and labels given to `fit` / `evaluate`.

    Only NumPy images are checked; datasets and generators are passed
    through (the loaders of `keras_ahbf.data` validate what they read).
    Unlike `validate_arrays`, images may be any real numbers (already
    normalised, for instance).

    Args:
        x: the images argument; checked only if it is a NumPy array.
        y: the labels argument, or None.
        image_shape: tuple or None. The model's `(H, W, C)`, if known.
        num_classes: int or None. The model's number of classes.
        x_name: str. Name of the images argument, used in the messages.
        y_name: str. Name of the labels argument.

    Raises:
        ValueError: on empty data, images that are not
            `(batch, height, width, channels)` of `image_shape`
            (channels-first included), NaN or infinite pixels, labels that
            are not integers in `[0, num_classes)` of shape `(N,)` or
            `(N, 1)`, or a different number of images and labels.
        TypeError: on non-numeric images or labels.
    """
    if not isinstance(x, np.ndarray):
        return
    if x.dtype.kind not in "biuf":
        raise TypeError(
            f"`{x_name}` must hold numeric images. Received: {x_name} "
            f"with dtype {x.dtype}"
        )
    if x.shape[:1] == (0,):
        raise ValueError(
            f"`{x_name}` is empty. Received: {x_name} with shape {x.shape}"
        )
    if x.ndim != 4:
        raise ValueError(
            f"`{x_name}` must be a 4D array (batch, height, width, "
            f"channels). Received: {x_name} with shape {x.shape}"
        )
    if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
        expected = tuple(image_shape)
        raise ValueError(
            f"`{x_name}` must have images of shape {expected}."
            f"{_model_channels_hint(x.shape[1:], expected)} "
            f"Received: {x_name} with shape {x.shape}"
        )
    if x.dtype.kind == "f":
        count, _ = _nonfinite(x)
        if count:
            raise ValueError(
                f"`{x_name}` contains {count} NaN or infinite values."
            )
    if y is None:
        return
    labels = np.asarray(y)
    if labels.dtype.kind not in "biuf":
        raise TypeError(
            f"`{y_name}` must hold integer class labels. Received: "
            f"{y_name} with dtype {labels.dtype}"
        )
    labels = _as_class_ids(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"`{y_name}` must hold one integer label per image, shape "
            f"(N,) or (N, 1) (one-hot labels are not supported). "
            f"Received: {y_name} with shape {np.shape(y)}"
        )
    if len(labels) != len(x):
        raise ValueError(
            f"`{x_name}` and `{y_name}` must have the same length. "
            f"Received: {len(x)} images and {len(labels)} labels"
        )
    check_label_values(labels, num_classes, y_name, source="the model's outputs")


# --------------------------------------------------------------------------
# Labels given to the loss functions, checked against the logits.


def is_host_value(value):
    """True for NumPy arrays/scalars and Python numbers or sequences."""
    return isinstance(
        value, (np.ndarray, np.generic, numbers.Number, list, tuple)
    )


def as_checkable(name, value):
    """`value` itself if it is a tensor/array, else as a NumPy array."""
    if value is None:
        return None
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    try:
        return np.asarray(value)
    except Exception as e:  # noqa: BLE001 - e.g. ragged nested lists.
        raise TypeError(
            f"`{name}` must be a tensor or array. Received: {name}={value!r} "
            f"({type(e).__name__}: {e})"
        ) from None


def static_shape(value):
    """Static shape as a tuple (None for unknown dims); None if unknown rank."""
    try:
        return tuple(None if d is None else int(d) for d in value.shape)
    except (TypeError, ValueError):  # e.g. a TF tensor of unknown rank.
        return None


def dtype_name(value):
    """The Keras name of `value`'s dtype (`"float32"`, ...), never raising."""
    from keras import backend  # Keras only when a loss needs it.

    try:
        return backend.standardize_dtype(value.dtype)
    except Exception:  # noqa: BLE001 - NumPy strings/objects, tf.string.
        return str(getattr(value, "dtype", type(value).__name__))


def is_real_dtype(dtype):
    """True for float, bfloat, int and uint dtype names."""
    return dtype.startswith(("float", "bfloat", "int", "uint"))


def check_label_values(labels, num_classes, name="y_true", source=None):
    """Checks NumPy/Python labels: integer values in `[0, num_classes)`.

    Args:
        labels: array-like of class ids (any shape; read on the host).
        num_classes: int or None. None skips the range check.
        name: str. Argument name used in the messages.
        source: str or None. What defines `num_classes`, for the message
            (e.g. "the logits").

    Raises:
        ValueError: naming the first fractional, non-finite or out-of-range
            label (`name[i]=value`) and how many are out of range.
    """
    labels = np.asarray(labels).reshape(-1)
    i = _first_non_integer(labels)
    if i is not None:
        raise ValueError(
            f"`{name}` must hold integer class labels. Received: "
            f"{name}[{i}]={labels[i].item()!r}"
        )
    if num_classes is not None and labels.size:
        outside = _out_of_range(labels, num_classes)
        if outside is not None:
            i, count = outside
            origin = f" ({source} have {num_classes} classes)" if source else ""
            raise ValueError(
                f"`{name}` must hold labels in [0, {num_classes}){origin}. "
                f"Received: {name}[{i}]={labels[i].item()!r} "
                f"({count} label(s) out of range)"
            )


def check_labels(y_true, batch, num_classes, name="y_true"):
    """Checks labels against logits of shape `(batch, num_classes)`.

    Only shapes and dtypes are read from tensors (known at trace time on
    every backend, also inside `jit`); NumPy/Python labels also have their
    values checked (`check_label_values`).

    Args:
        y_true: tensor, array or sequence of class ids.
        batch: int or None. The logits' batch size, if known.
        num_classes: int or None. The logits' number of classes, if known.
        name: str. Argument name used in the messages.

    Returns:
        `y_true` as a tensor or NumPy array.

    Raises:
        ValueError: if `y_true` is None or does not hold one class id per
            example (one-hot labels included), or a host label is not an
            integer in `[0, num_classes)`.
        TypeError: for non-numeric labels.
    """
    if y_true is None:
        raise ValueError(
            f"`{name}` is required: integer class labels of shape (batch,). "
            f"Received: {name}=None"
        )
    host = is_host_value(y_true)
    y_true = as_checkable(name, y_true)
    dtype = dtype_name(y_true)
    if not is_real_dtype(dtype) and dtype != "bool":
        raise TypeError(
            f"`{name}` must hold integer class labels. Received: {name} with "
            f"dtype {dtype}"
        )
    shape = static_shape(y_true)
    if shape is not None:
        if len(shape) == 2 and shape[1] not in (1, None):
            hint = ""
            if shape[1] == num_classes:
                hint = (
                    " (one-hot or soft labels are not supported; pass class "
                    "ids, e.g. argmax(y, -1))"
                )
            raise ValueError(
                f"`{name}` must hold one integer class id per example, shape "
                f"(batch,) or (batch, 1){hint}. Received: {name}.shape={shape}"
            )
        if len(shape) not in (1, 2):
            raise ValueError(
                f"`{name}` must hold one integer class id per example, shape "
                f"(batch,) or (batch, 1). Received: {name}.shape={shape}"
            )
        if None not in (shape[0], batch) and shape[0] != batch:
            raise ValueError(
                f"`{name}` must hold one label per example: the logits have a "
                f"batch of {batch}. Received: {name}.shape={shape}"
            )
    if host:
        check_label_values(y_true, num_classes, name, source="the logits")
    return y_true
