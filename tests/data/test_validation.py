"""`keras_ahbf.data.validation`: every check of images and labels.

`validate_arrays` (loaders, `make_dataset`) raises `DataError` naming the
split; `check_model_arrays` / `check_batch_dataset` (`OnlineKDModel.fit`)
raise `ValueError` / `TypeError` naming the argument; `check_labels` /
`check_label_values` serve the loss functions. The bad-input table in
`tests/test_bad_input.py` goes through the public entry points; these tests
call the checks directly.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_ahbf import data as D
from keras_ahbf import losses
from keras_ahbf.data import validation


def _good():
    return np.zeros((4, 8, 8, 1), np.uint8), np.array([0, 1, 2, 9])


def _inf_at_2():
    x = np.full((4, 8, 8, 1), 9.0)
    x[2] = np.inf
    return x


_BAD_ARRAYS = {
    "label_too_big": (
        lambda x, y: (x, np.array([0, 1, 10, 3])),
        r"label 10 at index 2.*\[0, 10\)",
    ),
    "label_negative": (
        lambda x, y: (x, np.array([0, -1, 2, 3])), r"label -1 at index 1"
    ),
    "rank3": (lambda x, y: (x[..., 0], y), r"rank-4.*rank 3.*channel axis"),
    "channels5": (
        lambda x, y: (np.zeros((4, 8, 8, 5), np.uint8), y), r"1 or 3 channels"
    ),
    "channels_first": (
        lambda x, y: (np.zeros((4, 3, 8, 8), np.uint8), y), r"channels-first"
    ),
    "bool_images": (lambda x, y: (x.astype(bool), y), r"numeric.*bool"),
    "complex_images": (
        lambda x, y: (x.astype(np.complex64), y), r"numeric.*complex"
    ),
    "nan": (
        lambda x, y: (np.full((4, 8, 8, 1), np.nan, np.float32), y),
        r"NaN/inf",
    ),
    "inf": (lambda x, y: (_inf_at_2(), y), r"NaN/inf.*index \(2, 0, 0, 0\)"),
    "out_of_range": (
        lambda x, y: (x.astype(np.int16) + 300, y), r"\[0, 255\]"
    ),
    "unit_scale": (
        lambda x, y: (x.astype(np.float32) + 0.5, y), r"scaled to \[0, 1\]"
    ),
    "empty": (lambda x, y: (x[:0], y[:0]), r"images are empty"),
    "length_mismatch": (lambda x, y: (x, y[:3]), r"4 images but 3 labels"),
    "one_hot": (lambda x, y: (x, np.eye(10)[y]), r"One-hot"),
    "fractional_label": (
        lambda x, y: (x, np.array([0.0, 1.5, 2.0, 3.0])),
        r"integer class ids.*1.5 at index 1",
    ),
    "nan_label": (
        lambda x, y: (x, np.array([0.0, np.nan, 2.0, 3.0])),
        r"labels contain NaN/inf; first at index 1",
    ),
    "nan_after_fractional_label": (
        lambda x, y: (x, np.array([0.5, 1.0, np.nan, 3.0])),
        r"labels contain NaN/inf; first at index 2",
    ),
    "string_labels": (
        lambda x, y: (x, np.array(["a", "b", "c", "d"])), r"integer class ids"
    ),
}


@pytest.mark.parametrize(
    "make, pattern", list(_BAD_ARRAYS.values()), ids=list(_BAD_ARRAYS)
)
def test_validate_arrays_rejects(make, pattern):
    x, y = make(*_good())
    with pytest.raises(D.DataError, match=pattern) as info:
        D.validate_arrays(x, y, 10, name="my split")
    assert "my split" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_validate_arrays_accepts_and_converts():
    x, y = _good()
    x2, y2 = D.validate_arrays(x, y.astype(np.uint8)[:, None], 10)
    assert x2 is x and y2.dtype == np.int64 and y2.shape == (4,)
    xf = np.full((4, 8, 8, 1), 200.4, np.float64)
    x3, y3 = D.validate_arrays(xf, y.astype(np.float32), 10)
    assert x3.dtype == np.uint8 and (x3 == 200).all()
    np.testing.assert_array_equal(y3, y)
    with pytest.raises(D.DataError, match=r"shape \(N, 32, 32, 3\)"):
        D.validate_arrays(x, y, 10, image_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="Received: num_classes=0"):
        D.validate_arrays(x, y, 0)


_BAD_MODEL_ARRAYS = {
    "rank3": (np.zeros((4, 8, 8), "float32"), np.zeros(4), ValueError, r"`x` must be a 4D"),
    "channels_first": (np.zeros((4, 3, 8, 8), "float32"), np.zeros(4), ValueError,
                       r"look channels-first.*\(4, 3, 8, 8\)"),
    "wrong_size": (np.zeros((4, 16, 16, 3), "float32"), np.zeros(4), ValueError,
                   r"images of shape \(8, 8, 3\)\. Received"),
    "empty": (np.zeros((0, 8, 8, 3), "float32"), np.zeros(0), ValueError, r"`x` is empty"),
    "inf": (np.full((4, 8, 8, 3), np.inf, "float32"), np.zeros(4), ValueError,
            r"`x` contains 768 NaN or infinite"),
    "strings": (np.full((4, 8, 8, 3), "a"), np.zeros(4), TypeError, r"numeric images"),
    "label_range": (np.zeros((4, 8, 8, 3), "float32"), np.array([0, 1, 2, 4]), ValueError,
                    r"`y` must hold labels in \[0, 4\) \(the model's outputs have 4 "
                    r"classes\)\. Received: y\[3\]=4 \(1 label\(s\) out of range\)"),
    "one_hot": (np.zeros((4, 8, 8, 3), "float32"), np.zeros((4, 4)), ValueError, r"one-hot"),
    "length": (np.zeros((4, 8, 8, 3), "float32"), np.zeros(3), ValueError, r"same length"),
    "fractional": (np.zeros((4, 8, 8, 3), "float32"), np.array([0, 0.5, 1, 1]), ValueError,
                   r"integer class labels\. Received: y\[1\]=0\.5"),
    "object_labels": (np.zeros((4, 8, 8, 3), "float32"), np.array([0, None, 1, 1]), TypeError,
                      r"`y` must hold integer class labels.*object"),
}


@pytest.mark.parametrize("case", list(_BAD_MODEL_ARRAYS), ids=list(_BAD_MODEL_ARRAYS))
def test_check_model_arrays_rejects(case):
    x, y, error, pattern = _BAD_MODEL_ARRAYS[case]
    with pytest.raises(error, match=pattern):
        validation.check_model_arrays(x, y, image_shape=(8, 8, 3), num_classes=4)


def test_check_model_arrays_accepts_normalised_images_and_other_inputs():
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    validation.check_model_arrays(x, np.array([[0], [1], [2], [3]]), num_classes=4)
    validation.check_model_arrays(x, None, image_shape=(8, 8, 3))
    validation.check_model_arrays([1, 2], "not checked")  # not a NumPy array
    # The names of the arguments are the caller's.
    with pytest.raises(ValueError, match=r"`validation_data\[0\]` is empty"):
        validation.check_model_arrays(x[:0], None, x_name="validation_data[0]")


def test_check_batch_dataset():
    images = np.zeros((4, 8, 8, 3), "float32")
    labels = np.arange(4)

    def ds(*parts):
        return tf.data.Dataset.from_tensor_slices(parts if len(parts) > 1 else parts[0])

    validation.check_batch_dataset(ds(images, labels).batch(2), image_shape=(8, 8, 3))
    validation.check_batch_dataset(images)  # not a dataset: ignored
    cases = [
        (ds(images).batch(2), r"`x` must yield \(images, labels\) batches"),
        (ds(images, labels), r"batch it with `.batch\(n\)`"),
        (ds(images.transpose(0, 3, 1, 2), labels).batch(2), r"look channels-first"),
        (ds(images, np.eye(4)[labels]).batch(2), r"one-hot labels are not supported.*\(None, 4\)"),
        (ds(images, labels).batch(2).take(0), r"`x` is empty \(cardinality 0\)"),
    ]
    for dataset, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            validation.check_batch_dataset(dataset, image_shape=(8, 8, 3))


def test_check_example_dataset():
    images = np.zeros((4, 32, 32, 3), np.uint8)
    labels = np.arange(4)
    pairs = tf.data.Dataset.from_tensor_slices((images, labels))
    validation.check_example_dataset(pairs, "cifar10", (32, 32, 3), 10)
    validation.check_example_dataset(pairs, "imagenet2012")  # any size
    cases = [
        (pairs.batch(2), r"unbatched \(image, label\) pairs"),
        (tf.data.Dataset.from_tensor_slices((images.transpose(0, 3, 1, 2), labels)),
         r"\(32, 32, 3\); got \(3, 32, 32\).*looks channels-first"),
        (tf.data.Dataset.from_tensor_slices((images, np.eye(10)[labels])),
         r"scalar integer class ids.*One-hot"),
        (tf.data.Dataset.from_tensor_slices((images, labels * 1.0)),
         r"labels must be integer class ids; got dtype float64"),
        (pairs.take(0), r"cifar10 dataset: `x` is empty"),
    ]
    for dataset, pattern in cases:
        with pytest.raises(D.DataError, match=pattern):
            validation.check_example_dataset(dataset, "cifar10", (32, 32, 3), 10)


def test_the_loss_uses_the_same_label_checks():
    assert losses.check_label_values is validation.check_label_values
    with pytest.raises(ValueError, match=r"labels in \[0, 5\) \(the logits have 5 classes\)"):
        validation.check_labels(np.array([0, 5]), 2, 5)
    with pytest.raises(ValueError, match=r"one-hot.*y_true\.shape=\(2, 5\)"):
        validation.check_labels(np.eye(5)[:2], 2, 5)
    with pytest.raises(ValueError, match=r"batch of 3"):
        validation.check_labels(np.array([0, 1]), 3, 5)
    with pytest.raises(ValueError, match=r"y_true\[0\]=nan"):
        validation.check_label_values(np.array([np.nan]), 5)
    # Tensors: only the shape and dtype are read.
    out = validation.check_labels(tf.constant([7, 8]), 2, 5)
    assert tuple(out.shape) == (2,)
