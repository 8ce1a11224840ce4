"""BasicBlock: shapes, parameter counts, NumPy reference, layer contract."""

import numpy as np
import pytest

from keras_ahbf.layers import BasicBlock
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
        (BasicBlock(16), (2, 8, 8, 16), 2 * conv_bn(16, 16, 3)),
        (BasicBlock(32, strides=2), (2, 4, 4, 32),
         conv_bn(16, 32, 3) + conv_bn(32, 32, 3) + conv_bn(16, 32, 1)),
    ],
)
def test_shapes_and_parameter_counts(layer, shape, params):
    y = layer(X)
    assert tuple(y.shape) == shape
    assert trainable_count(layer) == params
    assert (to_numpy(y) >= 0).all()  # ends with a ReLU


def test_identity_block_matches_numpy_at_init():
    # With BN in inference mode at init (mean 0, var 1, gamma 1, beta 0),
    # y = relu(conv2(relu(conv1(x)) / s) / s + x), s = sqrt(1 + eps).
    block = BasicBlock(16)
    y = to_numpy(block(X, training=False))
    s = np.sqrt(1.0 + 1e-5)

    def conv3x3(x, k):
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = np.zeros(x.shape[:3] + (k.shape[-1],), "float64")
        for i in range(3):
            for j in range(3):
                out += xp[:, i:i + 8, j:j + 8, :] @ k[i, j]
        return out

    h = np.maximum(conv3x3(X, to_numpy(block.conv1.kernel)) / s, 0)
    want = np.maximum(conv3x3(h, to_numpy(block.conv2.kernel)) / s + X, 0)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_layer_contract():
    # Projection shortcut: conv1, bn1, conv2, bn2, shortcut conv and BN.
    run_layer_test(
        BasicBlock, {"filters": 8, "strides": 2}, X,
        expected_output_shape=(2, 4, 4, 8),
        expected_num_trainable_weights=9, expected_num_non_trainable_weights=6,
    )
    check_config_round_trip(BasicBlock(8, strides=2, name="b"))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="filters=0"):
        BasicBlock(0)
    with pytest.raises(ValueError, match="4D"):
        BasicBlock(8).build((2, 8, 8))
