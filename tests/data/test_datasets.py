"""`keras_ahbf.data.datasets`: the registry and its statistics; cheap import."""

import numpy as np
import pytest

from keras_ahbf import data as D
from keras_ahbf.testing.processes import modules_imported_by

CIFAR10_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


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


def test_public_names():
    for name in D.__all__:
        assert getattr(D, name) is not None
    assert D.tf_distribute_strategy.__module__ == "keras_ahbf.distribution.tensorflow"


def test_import_loads_no_backend():
    modules = ("keras", "tensorflow", "tensorflow_datasets", "jax", "torch")
    assert modules_imported_by("import keras_ahbf.data", modules) == []
