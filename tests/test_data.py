"""Tests for keras_ahbf.data: loaders, validation and tf.data pipelines.

They write their own tiny fixture files and never touch the network; they run
on whichever Keras backend KERAS_BACKEND selects.
"""

import os
import pickle
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ahbf import data as D

CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
CIFAR10_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


# --------------------------------------------------------------------------
# Fixture helpers.


def _cifar_arrays(n_train=10, n_test=5, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_train = np.arange(n_train, dtype=np.int64) % num_classes
    y_test = (np.arange(n_test, dtype=np.int64) * 3) % num_classes
    return x_train, y_train, x_test, y_test


def _write_npz(path, x_train, y_train, x_test, y_test, **extra):
    np.savez(
        path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        **extra,
    )
    return path


def _to_rows(x):
    # The official format: each row is the R, G then B plane, row-major.
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # as the original Python 2 pickles


def _write_cifar10_batches(folder, x_train, y_train, x_test, y_test):
    folder.mkdir(parents=True)
    for i, idx in enumerate(np.array_split(np.arange(len(x_train)), 5)):
        _dump(folder / f"data_batch_{i + 1}", {
            b"batch_label": f"training batch {i + 1} of 5".encode(),
            b"labels": [int(v) for v in y_train[idx]],
            b"data": _to_rows(x_train[idx]),
            b"filenames": [b"img.png"] * len(idx),
        })
    _dump(folder / "test_batch", {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in y_test],
        b"data": _to_rows(x_test),
        b"filenames": [b"img.png"] * len(x_test),
    })
    _dump(folder / "batches.meta", {b"label_names": [b"a"] * 10})
    return folder


def _write_cifar100_batches(folder, x_train, y_train, x_test, y_test):
    folder.mkdir(parents=True)
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        _dump(folder / name, {
            b"filenames": [b"img.png"] * len(x),
            b"batch_label": name.encode(),
            b"fine_labels": [int(v) for v in y],
            b"coarse_labels": [int(v) // 5 for v in y],
            b"data": _to_rows(x),
        })
    return folder


def _assert_loaded(result, x_train, y_train, x_test, y_test):
    (a, b), (c, d) = result
    for got, want in ((a, x_train), (c, x_test)):
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    for got, want in ((b, y_train), (d, y_test)):
        assert got.dtype == np.int64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


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


@pytest.fixture
def empty_tfds_dir(tmp_path, monkeypatch):
    path = tmp_path / "tfds"
    path.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(path))
    return path


# --------------------------------------------------------------------------
# Registry.


def test_datasets_registry():
    assert set(D.DATASETS) >= {"digits", "cifar10", "cifar100", "imagenet2012"}
    info = D.DATASETS["cifar100"]
    assert info.num_classes == info["num_classes"] == 100
    assert info.image_shape == (32, 32, 3)
    assert info["mean"] == (0.5071, 0.4865, 0.4409)
    assert D.DATASETS["cifar10"].std == (0.2470, 0.2435, 0.2616)
    assert D.DATASETS["imagenet2012"].mean == (0.485, 0.456, 0.406)
    assert D.DATASETS["digits"].image_shape == (8, 8, 1)
    for name, info in D.DATASETS.items():
        assert info.name == name
        assert len(info.mean) == len(info.std) == info.image_shape[-1]
    mean, std = D.normalization_stats("cifar10")
    assert mean.dtype == np.float32 and mean.shape == (3,)
    np.testing.assert_allclose(std, CIFAR10_STD)
    with pytest.raises(ValueError, match="Received: dataset='mnist'"):
        D.normalization_stats("mnist")


def test_import_does_not_load_tensorflow_datasets():
    code = (
        "import sys, keras_ahbf.data; "
        "print('tensorflow_datasets' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        check=True, env={**os.environ},
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


# --------------------------------------------------------------------------
# Digits.


def test_digits_loader():
    (x_train, y_train), (x_test, y_test) = D.load_arrays("digits")
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert x_train.max() == 255 and x_train.min() == 0
    for y in (y_train, y_test):
        assert y.min() >= 0 and y.max() < 10
        counts = np.bincount(y, minlength=10)
        assert (counts > 0).all()
        # Stratified: every class gets its share.
        assert counts.max() - counts.min() <= max(2, len(y) // 100)
    (x2, y2), (x3, y3) = D.load_arrays("digits")
    np.testing.assert_array_equal(x_train, x2)
    np.testing.assert_array_equal(y_train, y2)
    np.testing.assert_array_equal(x_test, x3)
    np.testing.assert_array_equal(y_test, y3)
    # The documented normalisation constants describe the data.
    allx = np.concatenate([x_train, x_test]).astype(np.float64) / 255.0
    mean, std = D.normalization_stats("digits")
    assert abs(allx.mean() - mean[0]) < 1e-3
    assert abs(allx.std() - std[0]) < 1e-3
    # Limits keep the first examples of the fixed order.
    (xl, yl), (xt, yt) = D.load_arrays("digits", train_limit=50, test_limit=7)
    np.testing.assert_array_equal(xl, x_train[:50])
    np.testing.assert_array_equal(yt, y_test[:7])


# --------------------------------------------------------------------------
# Local CIFAR copies.


def test_npz_file_and_directory(tmp_path):
    arrays = _cifar_arrays()
    path = _write_npz(
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
    x_train, y_train, x_test, y_test = _cifar_arrays(num_classes=100, seed=1)
    _write_npz(
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
    arrays = _cifar_arrays(n_train=12, n_test=4)
    folder = _write_cifar10_batches(tmp_path / "cifar-10-batches-py", *arrays)
    for where in (folder, tmp_path, str(tmp_path)):
        _assert_loaded(D.load_arrays("cifar10", where), *arrays)
    # Pixel order: row entry c * 1024 + h * 32 + w is pixel (h, w, c).
    (x_train, _), _ = D.load_arrays("cifar10", folder)
    rows = _to_rows(arrays[0])
    assert x_train[0, 1, 2, 0] == rows[0, 0 * 1024 + 1 * 32 + 2]
    assert x_train[3, 31, 0, 2] == rows[3, 2 * 1024 + 31 * 32 + 0]


def test_cifar100_python_batches(tmp_path):
    arrays = _cifar_arrays(n_train=6, n_test=3, num_classes=100, seed=2)
    folder = _write_cifar100_batches(tmp_path / "cifar-100-python", *arrays)
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

    arrays = _cifar_arrays()
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=arrays[0], y_train=arrays[1], x_test=arrays[2])
    with pytest.raises(D.DataError, match=r"partial.npz.*missing.*y_test"):
        D.load_arrays("cifar10", partial)

    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    with pytest.raises(D.DataError, match="extract it first"):
        D.load_arrays("cifar10", archive)

    folder = _write_cifar10_batches(tmp_path / "cifar-10-batches-py", *arrays)
    (folder / "data_batch_3").unlink()
    with pytest.raises(D.DataError, match="data_batch_3.*missing"):
        D.load_arrays("cifar10", tmp_path)
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(D.DataError, match="data_batch_3"):
        D.load_arrays("cifar10", folder)
    _dump(folder / "data_batch_3", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(D.DataError, match="data_batch_3.*'labels'"):
        D.load_arrays("cifar10", folder)
    _dump(folder / "data_batch_3", {
        b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1],
    })
    with pytest.raises(D.DataError, match=r"data_batch_3.*\(N, 3072\)"):
        D.load_arrays("cifar10", folder)


def test_batch_files_cannot_run_code(tmp_path):
    arrays = _cifar_arrays()
    folder = _write_cifar10_batches(tmp_path / "cifar-10-batches-py", *arrays)
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
    x_train, y_train, x_test, y_test = _cifar_arrays()
    y_bad = y_train.copy()
    y_bad[4] = 10
    path = _write_npz(tmp_path / "bad.npz", x_train, y_bad, x_test, y_test)
    with pytest.raises(
        D.DataError, match=r"train.*bad.npz.*label 10 at index 4"
    ):
        D.load_arrays("cifar10", path)
    path = _write_npz(
        tmp_path / "small.npz", x_train[:, :28, :28], y_train, x_test, y_test
    )
    with pytest.raises(D.DataError, match=r"small.npz.*\(N, 32, 32, 3\)"):
        D.load_arrays("cifar10", path)


# --------------------------------------------------------------------------
# validate_arrays.


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
        r"labels contain NaN/inf",
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


# --------------------------------------------------------------------------
# tensorflow-datasets paths (no network).


def test_tfds_path_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        (x_train, y_train), (x_test, y_test) = D.load_arrays("cifar10")
        (xl, yl), _ = D.load_arrays("cifar10", train_limit=4)
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8
        assert y.shape == (6,) and y.dtype == np.int64
        assert y.min() >= 0 and y.max() < 10
    assert xl.shape == (4, 32, 32, 3) and yl.shape == (4,)


def test_tfds_offline_fails_fast(empty_tfds_dir):
    start = time.monotonic()
    with pytest.raises(D.DataError) as info:
        D.load_arrays("cifar100")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "data_dir" in message and "--data-dir" in message
    assert "cifar-100-python" in message and str(empty_tfds_dir) in message


def test_tfds_download_offline_fails_fast(empty_tfds_dir, monkeypatch):
    monkeypatch.setattr(D, "_is_online", lambda host, **kw: False)
    start = time.monotonic()
    with pytest.raises(D.DataError, match=r"cannot be reached.*data_dir"):
        D.load_arrays("cifar10", download=True)
    assert time.monotonic() - start < 10


def test_connectivity_probe_is_bounded():
    start = time.monotonic()
    assert D._is_online("127.0.0.1", port=1, timeout=1.0) is False
    assert time.monotonic() - start < 3


def test_load_imagenet_errors(empty_tfds_dir, tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "ILSVRC2012_img_val.tar").write_bytes(b"")
    with pytest.raises(
        D.DataError, match=r"manual.*lacks ILSVRC2012_img_train.tar"
    ):
        D.load_imagenet(manual, "train")
    with pytest.raises(D.DataError, match="data_dir"):
        D.load_imagenet(None, "validation")
    with pytest.raises(ValueError, match="Received: split='val'"):
        D.load_imagenet(manual, "val")


def test_load_imagenet_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        (tmp_path / name).write_bytes(b"")
    with tfds.testing.mock_data(num_examples=3):
        ds = D.load_imagenet(tmp_path, "validation")
        image, label = next(iter(ds))
        assert image.dtype == tf.uint8 and image.shape.rank == 3
        pipeline = D.make_dataset(
            ds, None, dataset="imagenet2012", batch_size=2, training=False
        )
        images, labels = next(iter(pipeline))
    assert images.shape == (2, 224, 224, 3) and images.dtype == tf.float32
    assert labels.dtype == tf.int32


# --------------------------------------------------------------------------
# Pipelines.


def test_eval_pipeline_matches_numpy():
    x, y, _, _ = _cifar_arrays(n_train=10)
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


def test_train_pipeline_cifar_crop_and_flip():
    x, y, _, _ = _cifar_arrays(n_train=10)  # labels 0..9 identify the images
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


@pytest.mark.parametrize("strong", ["mixup", "cutmix"])
def test_mixup_cutmix_soft_labels(strong):
    x, y, _, _ = _cifar_arrays(n_train=8)
    ds = D.make_dataset(
        x, y, dataset="cifar10", batch_size=4, training=True,
        strong_augment=strong, seed=0,
    )
    images, labels = next(iter(ds))
    assert images.shape == (4, 32, 32, 3) and images.dtype == tf.float32
    assert labels.shape == (4, 10) and labels.dtype == tf.float32
    np.testing.assert_allclose(labels.numpy().sum(-1), 1.0, atol=1e-5)
    assert np.isfinite(images.numpy()).all()


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


def test_imagenet_preprocess():
    image = tf.fill([300, 400, 3], tf.constant(128, tf.uint8))
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    expected = (128 / 255.0 - mean) / std
    for training in (False, True):
        seed = tf.constant([1, 2], tf.int64) if training else None
        out, label = D.imagenet_preprocess(
            image, tf.constant(7, tf.int64), training, seed=seed
        )
        assert out.shape == (224, 224, 3) and out.dtype == tf.float32
        assert label.dtype == tf.int32 and int(label) == 7
        np.testing.assert_allclose(
            out.numpy(), np.broadcast_to(expected, (224, 224, 3)), atol=1e-4
        )
    # Evaluation: resize the short side to 256, centre-crop 224.
    ramp = np.arange(512, dtype=np.float32)[None, :, None] / 2
    ramp = np.tile(ramp, (256, 1, 3)).astype(np.uint8)
    out, _ = D.imagenet_preprocess(
        tf.constant(ramp), 0, False
    )
    pixels = (out.numpy() * std + mean) * 255
    # 256x512 -> no resize; crop columns 144..367.
    np.testing.assert_allclose(
        pixels[0, :, 0], np.floor(np.arange(144, 368) / 2), atol=0.02
    )


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
        (ValueError, "training=False",
         dict(strong_augment="mixup", training=False)),
        (ValueError, "augment=False",
         dict(strong_augment="cutmix", augment=False)),
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


def test_load_arrays_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="Received: train_limit=0"):
        D.load_arrays("digits", train_limit=0)
    with pytest.raises(TypeError, match="Received: test_limit='5'"):
        D.load_arrays("digits", test_limit="5")
    with pytest.raises(ValueError, match="load_imagenet"):
        D.load_arrays("imagenet2012")
    with pytest.raises(ValueError, match="Received: dataset='svhn'"):
        D.load_arrays("svhn")
    with pytest.raises(TypeError, match="Received: download='no'"):
        D.load_arrays("cifar10", tmp_path, download="no")
    with pytest.raises(TypeError, match="Received: data_dir=3"):
        D.load_arrays("cifar10", 3)


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
    def tiny_model():
        return keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ])

    model = tiny_model()
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

    # Soft labels from MixUp need a loss that accepts probabilities.
    mixed = D.make_dataset(
        x_train, y_train, dataset="digits", batch_size=16, training=True,
        strong_augment="mixup", seed=0,
    )
    model = tiny_model()
    model.compile(
        optimizer="sgd",
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(mixed, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()
