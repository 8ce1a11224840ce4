"""tensorflow-datasets paths, without the network: mock data, offline
errors, the bounded connectivity probe and ImageNet."""

import time

import numpy as np
import pytest
import tensorflow as tf

from keras_ahbf import data as D
from keras_ahbf.data import tfds as tfds_module


@pytest.fixture
def empty_tfds_dir(tmp_path, monkeypatch):
    path = tmp_path / "tfds"
    path.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(path))
    return path


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
    monkeypatch.setattr(tfds_module, "_is_online", lambda host, **kw: False)
    start = time.monotonic()
    with pytest.raises(D.DataError, match=r"cannot be reached.*data_dir"):
        D.load_arrays("cifar10", download=True)
    assert time.monotonic() - start < 10


def test_connectivity_probe_is_bounded():
    start = time.monotonic()
    assert tfds_module._is_online("127.0.0.1", port=1, timeout=1.0) is False
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
    with pytest.raises(TypeError, match="Received: data_dir=3"):
        D.load_imagenet(3, "validation")


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
