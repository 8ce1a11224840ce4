"""Tiny CIFAR-shaped fixture data for tests: arrays, `.npz` files and the
official python-batch folders, written to a test's scratch directory."""

import pickle

import numpy as np


def cifar_arrays(n_train=10, n_test=5, num_classes=10, seed=0):
    """Random uint8 CIFAR images `(N, 32, 32, 3)` and int64 labels.

    Returns:
        `(x_train, y_train, x_test, y_test)`; train labels are
        `arange(n_train) % num_classes`, so with 10 images and 10 classes a
        label identifies its image.
    """
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_train = np.arange(n_train, dtype=np.int64) % num_classes
    y_test = (np.arange(n_test, dtype=np.int64) * 3) % num_classes
    return x_train, y_train, x_test, y_test


def write_npz(path, x_train, y_train, x_test, y_test, **extra):
    """Writes the four arrays (and any `extra`) to `path`; returns `path`."""
    np.savez(
        path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        **extra,
    )
    return path


def tiny_cifar_npz(path, **overrides):
    """A tiny CIFAR-10-shaped `.npz` (8 training, 4 test images), some arrays replaced.

    Returns the path as a string.
    """
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, 8),
        x_test=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, 4),
    )
    arrays.update(overrides)
    np.savez(path, **arrays)
    return str(path)


def to_rows(x):
    """NHWC images as CIFAR rows: the R, G then B plane, each row-major."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))


def dump(path, obj):
    """Pickles `obj` to `path` with protocol 2, as the original batches."""
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10_batches(folder, x_train, y_train, x_test, y_test):
    """`cifar-10-batches-py` layout in `folder` (created): 5 train batches."""
    folder.mkdir(parents=True)
    for i, idx in enumerate(np.array_split(np.arange(len(x_train)), 5)):
        dump(folder / f"data_batch_{i + 1}", {
            b"batch_label": f"training batch {i + 1} of 5".encode(),
            b"labels": [int(v) for v in y_train[idx]],
            b"data": to_rows(x_train[idx]),
            b"filenames": [b"img.png"] * len(idx),
        })
    dump(folder / "test_batch", {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in y_test],
        b"data": to_rows(x_test),
        b"filenames": [b"img.png"] * len(x_test),
    })
    dump(folder / "batches.meta", {b"label_names": [b"a"] * 10})
    return folder


def write_cifar100_batches(folder, x_train, y_train, x_test, y_test):
    """`cifar-100-python` layout in `folder` (created): `train` and `test`."""
    folder.mkdir(parents=True)
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        dump(folder / name, {
            b"filenames": [b"img.png"] * len(x),
            b"batch_label": name.encode(),
            b"fine_labels": [int(v) for v in y],
            b"coarse_labels": [int(v) // 5 for v in y],
            b"data": to_rows(x),
        })
    return folder
