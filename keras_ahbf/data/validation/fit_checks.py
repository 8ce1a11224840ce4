"""Checks of the data given to `OnlineKDModel.fit` / `evaluate`.

`check_model_arrays` checks NumPy images and labels, `check_batch_dataset`
the `element_spec` of a batched `tf.data.Dataset`. Errors are `ValueError`
/ `TypeError` naming the argument (`x`, `validation_data[1]`, ...) in the
Keras style (`Received: ...`), raised before the first training step.
"""

from __future__ import annotations

import numpy as np

from keras_ahbf.data.validation._rules import as_class_ids
from keras_ahbf.data.validation._rules import looks_channels_first
from keras_ahbf.data.validation._rules import nonfinite
from keras_ahbf.data.validation._rules import imported_tensorflow
from keras_ahbf.data.validation.loss_checks import check_label_values

__all__ = ["check_batch_dataset", "check_model_arrays"]


def _model_channels_hint(shape, expected):
    if looks_channels_first(shape, expected):
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
        count, _ = nonfinite(x)
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
    labels = as_class_ids(labels)
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
    tf = imported_tensorflow()
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
