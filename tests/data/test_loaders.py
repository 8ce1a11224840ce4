"""`keras_ahbf.data.load_arrays`: the digits and the argument checks."""

import numpy as np
import pytest

from keras_ahbf import data as D


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
