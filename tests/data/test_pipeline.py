"""`keras_ahbf.data.make_dataset`: batches checked against NumPy, augmentation,
arguments, and `fit` on whichever backend KERAS_BACKEND selects."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ahbf import data as D
from keras_ahbf.testing.data_files import cifar_arrays

CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
CIFAR10_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def _take(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def _unnormalize(images, mean, std):
    return np.rint((images * std + mean) * 255.0).astype(np.int64)


def _is_crop_of(out, src, pad, allow_flip):
    padded = np.pad(src.astype(np.int64), ((pad, pad), (pad, pad), (0, 0)))
    h, w = src.shape[:2]
    for i in range(2 * pad + 1):
        for j in range(2 * pad + 1):
            crop = padded[i:i + h, j:j + w]
            if np.array_equal(crop, out):
                return True
            if allow_flip and np.array_equal(crop[:, ::-1], out):
                return True
    return False


def test_eval_pipeline_matches_numpy():
    x, y, _, _ = cifar_arrays(n_train=10)
    ds = D.make_dataset(x, y, dataset="cifar10", batch_size=4, training=False)
    batches = [(a.numpy(), b.numpy()) for a, b in ds]
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert images.dtype == np.float32 and labels.dtype == np.int32
    expected = (x.astype(np.float32) / 255.0 - CIFAR10_MEAN) / CIFAR10_STD
    np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(labels, y)
    # Deterministic across iterations and constructions.
    again, _ = _take(ds)
    np.testing.assert_array_equal(again, images)
    ds2 = D.make_dataset(
        x, y, dataset="cifar10", batch_size=4, training=False,
        drop_remainder=True,
    )
    assert [int(b.shape[0]) for _, b in ds2] == [4, 4]


def test_eval_pipeline_from_a_dataset_of_pairs():
    x, y, _, _ = cifar_arrays(n_train=6)
    pairs = tf.data.Dataset.from_tensor_slices((x, y))
    images, labels = _take(
        D.make_dataset(pairs, None, dataset="cifar10", batch_size=4, training=False)
    )
    expected = (x.astype(np.float32) / 255.0 - CIFAR10_MEAN) / CIFAR10_STD
    np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(labels, y)


def test_train_pipeline_cifar_crop_and_flip():
    x, y, _, _ = cifar_arrays(n_train=10)  # labels 0..9 identify the images
    ds = D.make_dataset(
        x, y, dataset="cifar10", batch_size=4, training=True, seed=3
    )
    images, labels = _take(ds)
    assert images.shape == x.shape and images.dtype == np.float32
    assert labels.dtype == np.int32
    assert sorted(labels.tolist()) == list(range(10))
    pixels = _unnormalize(images, CIFAR10_MEAN, CIFAR10_STD)
    changed = 0
    for out, label in zip(pixels, labels):
        assert _is_crop_of(out, x[label], pad=4, allow_flip=True)
        changed += not np.array_equal(out, x[label])
    assert changed > 0

    # Same seed -> same epochs; the next epoch differs.
    ds_b = D.make_dataset(
        x, y, dataset="cifar10", batch_size=4, training=True, seed=3
    )
    np.testing.assert_array_equal(_take(ds_b)[0], images)
    second, _ = _take(ds)
    assert not np.array_equal(second, images)


def test_train_pipeline_digits_shift_without_flip():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (10, 8, 8, 1), dtype=np.uint8)
    y = np.arange(10)
    mean, std = D.normalization_stats("digits")
    ds = D.make_dataset(
        x, y, dataset="digits", batch_size=5, training=True, seed=1
    )
    for _ in range(2):
        images, labels = _take(ds)
        assert images.shape == (10, 8, 8, 1)
        pixels = _unnormalize(images, mean, std)
        for out, label in zip(pixels, labels):
            assert _is_crop_of(out, x[label], pad=1, allow_flip=False)
    # augment=False: only shuffling and normalisation.
    ds = D.make_dataset(
        x, y, dataset="digits", batch_size=5, training=True, augment=False,
        seed=1,
    )
    images, labels = _take(ds)
    np.testing.assert_array_equal(_unnormalize(images, mean, std), x[labels])


def test_randaugment_preserves_shape():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    ds = D.make_dataset(
        x, np.arange(6), dataset="digits", batch_size=3, training=True,
        strong_augment="randaugment", seed=0,
    )
    images, labels = next(iter(ds))
    assert images.shape == (3, 8, 8, 1) and images.dtype == tf.float32
    assert labels.shape == (3,) and labels.dtype == tf.int32
    assert np.isfinite(images.numpy()).all()


def test_make_dataset_argument_errors():
    x, y = np.zeros((4, 8, 8, 1), np.uint8), np.arange(4)
    kw = dict(dataset="digits", batch_size=2, training=True)
    cases = [
        (ValueError, "Received: batch_size=0", dict(batch_size=0)),
        (TypeError, "Received: batch_size=2.0", dict(batch_size=2.0)),
        (TypeError, "Received: batch_size=True", dict(batch_size=True)),
        (ValueError, "Received: dataset='mnist'", dict(dataset="mnist")),
        (TypeError, "Received: training='yes'", dict(training="yes")),
        (ValueError, "Received: shuffle_buffer=0", dict(shuffle_buffer=0)),
        (ValueError, "Received: seed=-1", dict(seed=-1)),
        (ValueError, "Received: strong_augment='autoaugment'",
         dict(strong_augment="autoaugment")),
        # MixUp and CutMix were removed: their soft labels fit no loss here.
        (ValueError, "Received: strong_augment='mixup'",
         dict(strong_augment="mixup")),
        (ValueError, "Received: strong_augment='cutmix'",
         dict(strong_augment="cutmix")),
        (ValueError, "training=False",
         dict(strong_augment="randaugment", training=False)),
        (ValueError, "augment=False",
         dict(strong_augment="randaugment", augment=False)),
    ]
    for error, pattern, override in cases:
        with pytest.raises(error, match=pattern):
            D.make_dataset(x, y, **{**kw, **override})
    with pytest.raises(ValueError, match="Received: y=None"):
        D.make_dataset(x, None, **kw)
    with pytest.raises(D.DataError, match=r"shape \(N, 32, 32, 3\)"):
        D.make_dataset(x, y, dataset="cifar10", batch_size=2, training=False)
    with pytest.raises(D.DataError, match="label 12 at index 0"):
        D.make_dataset(x, np.array([12, 0, 0, 0]), **kw)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    with pytest.raises(ValueError, match="y must be None|`y` must be None"):
        D.make_dataset(ds, y, **kw)


def test_fit_on_current_backend():
    (x_train, y_train), (x_test, y_test) = D.load_arrays(
        "digits", train_limit=64, test_limit=32
    )
    train = D.make_dataset(
        x_train, y_train, dataset="digits", batch_size=16, training=True,
        seed=0,
    )
    test = D.make_dataset(
        x_test, y_test, dataset="digits", batch_size=16, training=False
    )
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        train, validation_data=test, epochs=2, verbose=0, shuffle=False
    )
    assert np.isfinite(history.history["loss"]).all()
    assert len(history.history["val_accuracy"]) == 2
