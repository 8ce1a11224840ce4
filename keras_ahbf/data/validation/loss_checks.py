"""Checks of the labels given to the loss functions, against the logits.

Only shapes and dtypes are read from tensors (known at trace time on every
backend, also inside `jit`); NumPy/Python labels also have their values
read. Errors are `ValueError` / `TypeError` naming the argument
(`y_true`, ...) in the Keras style (`Received: ...`).
"""

from __future__ import annotations

import numbers

import numpy as np

from keras_ahbf.data.validation._rules import first_non_integer
from keras_ahbf.data.validation._rules import out_of_range

__all__ = [
    "as_checkable",
    "check_label_values",
    "check_labels",
    "dtype_name",
    "is_host_value",
    "is_real_dtype",
    "static_shape",
]


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
    i = first_non_integer(labels)
    if i is not None:
        raise ValueError(
            f"`{name}` must hold integer class labels. Received: "
            f"{name}[{i}]={labels[i].item()!r}"
        )
    if num_classes is not None and labels.size:
        outside = out_of_range(labels, num_classes)
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
