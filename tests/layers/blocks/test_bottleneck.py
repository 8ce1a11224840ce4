"""Bottleneck: shapes, parameter counts, layer contract."""

import numpy as np
import pytest

from keras_ahbf.layers import Bottleneck
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy
from keras_ahbf.testing.test_utils import trainable_count

X = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype("float32")


def conv_bn(cin, cout, k):
    return cin * cout * k * k + 2 * cout


@pytest.mark.parametrize(
    "layer, shape, params",
    [
        (Bottleneck(4), (2, 8, 8, 16),
         conv_bn(16, 4, 1) + conv_bn(4, 4, 3) + conv_bn(4, 16, 1)),
        (Bottleneck(8, strides=2), (2, 4, 4, 32),
         conv_bn(16, 8, 1) + conv_bn(8, 8, 3) + conv_bn(8, 32, 1) + conv_bn(16, 32, 1)),
    ],
)
def test_shapes_and_parameter_counts(layer, shape, params):
    y = layer(X)
    assert tuple(y.shape) == shape
    assert trainable_count(layer) == params
    assert (to_numpy(y) >= 0).all()  # ends with a ReLU


def test_layer_contract():
    # Identity shortcut: three convolutions and three BatchNorms.
    run_layer_test(
        Bottleneck, {"filters": 4}, X, expected_output_shape=(2, 8, 8, 16),
        expected_num_trainable_weights=9, expected_num_non_trainable_weights=6,
    )
    check_config_round_trip(Bottleneck(4, name="bb"))


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="strides"):
        Bottleneck(4, strides=1.5)
