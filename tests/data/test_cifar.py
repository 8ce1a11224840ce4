"""Local CIFAR copies: `.npz` files, directories and the python batches.

The tests write their own tiny fixture files (`keras_ahbf.testing.
data_files`) and never touch the network.
"""

import os
import pickle

import numpy as np
import pytest

from keras_ahbf import data as D
from keras_ahbf.testing.data_files import cifar_arrays
from keras_ahbf.testing.data_files import dump
from keras_ahbf.testing.data_files import to_rows
from keras_ahbf.testing.data_files import write_cifar10_batches
from keras_ahbf.testing.data_files import write_cifar100_batches
from keras_ahbf.testing.data_files import write_npz


def _assert_loaded(result, x_train, y_train, x_test, y_test):
    (a, b), (c, d) = result
    for got, want in ((a, x_train), (c, x_test)):
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    for got, want in ((b, y_train), (d, y_test)):
        assert got.dtype == np.int64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_npz_file_and_directory(tmp_path):
    arrays = cifar_arrays()
    path = write_npz(
        tmp_path / "cifar10.npz", *arrays, class_names=np.array(["a"] * 10)
    )
    _assert_loaded(D.load_arrays("cifar10", str(path)), *arrays)
    _assert_loaded(D.load_arrays("cifar10", tmp_path), *arrays)
    (a, b), (c, d) = D.load_arrays(
        "cifar10", path, train_limit=3, test_limit=2
    )
    np.testing.assert_array_equal(a, arrays[0][:3])
    np.testing.assert_array_equal(d, arrays[3][:2])
    assert len(b) == 3 and len(c) == 2

    # A directory with a single '<dataset>_*.npz' (like cifar10_subset.npz),
    # and (N, 1) labels.
    other = tmp_path / "sub"
    other.mkdir()
    x_train, y_train, x_test, y_test = cifar_arrays(num_classes=100, seed=1)
    write_npz(
        other / "cifar100_subset.npz",
        x_train, y_train[:, None], x_test, y_test[:, None],
    )
    _assert_loaded(
        D.load_arrays("cifar100", other), x_train, y_train, x_test, y_test
    )
    # 'cifar10_*.npz' must not pick up cifar100 files.
    with pytest.raises(D.DataError, match="No cifar10 data found"):
        D.load_arrays("cifar10", other)


def test_cifar10_python_batches(tmp_path):
    arrays = cifar_arrays(n_train=12, n_test=4)
    folder = write_cifar10_batches(tmp_path / "cifar-10-batches-py", *arrays)
    for where in (folder, tmp_path, str(tmp_path)):
        _assert_loaded(D.load_arrays("cifar10", where), *arrays)
    # Pixel order: row entry c * 1024 + h * 32 + w is pixel (h, w, c).
    (x_train, _), _ = D.load_arrays("cifar10", folder)
    rows = to_rows(arrays[0])
    assert x_train[0, 1, 2, 0] == rows[0, 0 * 1024 + 1 * 32 + 2]
    assert x_train[3, 31, 0, 2] == rows[3, 2 * 1024 + 31 * 32 + 0]


def test_cifar100_python_batches(tmp_path):
    arrays = cifar_arrays(n_train=6, n_test=3, num_classes=100, seed=2)
    folder = write_cifar100_batches(tmp_path / "cifar-100-python", *arrays)
    _assert_loaded(D.load_arrays("cifar100", folder), *arrays)
    _assert_loaded(D.load_arrays("cifar100", tmp_path), *arrays)


def test_missing_and_corrupt_files(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(D.DataError, match="nope.*does not exist"):
        D.load_arrays("cifar10", missing)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(D.DataError, match="No cifar100 data found.*empty"):
        D.load_arrays("cifar100", empty)

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not a zip archive" * 10)
    with pytest.raises(D.DataError, match="corrupt.npz"):
        D.load_arrays("cifar10", corrupt)

    arrays = cifar_arrays()
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=arrays[0], y_train=arrays[1], x_test=arrays[2])
    with pytest.raises(D.DataError, match=r"partial.npz.*missing.*y_test"):
        D.load_arrays("cifar10", partial)

    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    with pytest.raises(D.DataError, match="extract it first"):
        D.load_arrays("cifar10", archive)

    folder = write_cifar10_batches(tmp_path / "cifar-10-batches-py", *arrays)
    (folder / "data_batch_3").unlink()
    with pytest.raises(D.DataError, match="data_batch_3.*missing"):
        D.load_arrays("cifar10", tmp_path)
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(D.DataError, match="data_batch_3"):
        D.load_arrays("cifar10", folder)
    dump(folder / "data_batch_3", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(D.DataError, match="data_batch_3.*'labels'"):
        D.load_arrays("cifar10", folder)
    dump(folder / "data_batch_3", {
        b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1],
    })
    with pytest.raises(D.DataError, match=r"data_batch_3.*\(N, 3072\)"):
        D.load_arrays("cifar10", folder)


def test_batch_files_cannot_run_code(tmp_path):
    arrays = cifar_arrays()
    folder = write_cifar10_batches(tmp_path / "cifar-10-batches-py", *arrays)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(D.DataError, match="test_batch.*not allowed"):
        D.load_arrays("cifar10", folder)
    assert not marker.exists()


def test_bad_data_in_files_names_the_file(tmp_path):
    x_train, y_train, x_test, y_test = cifar_arrays()
    y_bad = y_train.copy()
    y_bad[4] = 10
    path = write_npz(tmp_path / "bad.npz", x_train, y_bad, x_test, y_test)
    with pytest.raises(
        D.DataError, match=r"train.*bad.npz.*label 10 at index 4"
    ):
        D.load_arrays("cifar10", path)
    path = write_npz(
        tmp_path / "small.npz", x_train[:, :28, :28], y_train, x_test, y_test
    )
    with pytest.raises(D.DataError, match=r"small.npz.*\(N, 32, 32, 3\)"):
        D.load_arrays("cifar10", path)
