"""InvertedResidualBlock: NumPy reference, counts, layer contract."""

import keras
import numpy as np
import pytest

from keras_ahbf.layers import InvertedResidualBlock
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy
from keras_ahbf.testing.test_utils import trainable_count

X = np.random.default_rng(0).normal(size=(2, 4, 4, 4)).astype("float32")


def block_params(cin, cout, t):
    hidden = cin * t
    return cin * hidden + 2 * hidden + 9 * hidden + 2 * hidden + hidden * cout + 2 * cout


def depthwise_same(x, kernel):
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    n, h, w, c = x.shape
    out = np.zeros_like(x, dtype="float64")
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("nabc,abc->nc", xp[:, i : i + 3, j : j + 3], kernel[..., 0])
    return out


@pytest.mark.parametrize("filters, residual", [(4, True), (6, False)])
def test_block_matches_numpy(filters, residual):
    block = InvertedResidualBlock(filters, strides=1, expansion=2)
    y = to_numpy(block(X, training=False))
    s = 1 / np.sqrt(1 + 1e-5)  # fresh BatchNorm in inference mode
    h = np.maximum(np.einsum("nhwc,co->nhwo", X, to_numpy(block.expand_conv.kernel)[0, 0]) * s, 0)
    h = np.maximum(depthwise_same(h, to_numpy(block.depthwise_conv.kernel)) * s, 0)
    h = np.einsum("nhwc,co->nhwo", h, to_numpy(block.project_conv.kernel)[0, 0]) * s
    if residual:
        h = h + X
    assert block.residual == residual
    np.testing.assert_allclose(y, h, rtol=1e-4, atol=1e-5)


def test_block_stride_and_count():
    block = InvertedResidualBlock(8, strides=2, expansion=6)
    with keras.StatelessScope(initialize_variables=False):
        block.build((None, 4, 4, 4))
    assert block.compute_output_shape((None, 4, 4, 4)) == (None, 2, 2, 8)
    assert trainable_count(block) == block_params(4, 8, 6)
    assert not block.residual


@pytest.mark.parametrize("filters, strides", [(4, 1), (8, 2)])
def test_layer_contract(filters, strides):
    run_layer_test(
        InvertedResidualBlock, {"filters": filters, "strides": strides, "expansion": 3}, X,
        expected_output_shape=(2, 4 // strides, 4 // strides, filters),
        expected_num_trainable_weights=9, expected_num_non_trainable_weights=6,
    )
    check_config_round_trip(InvertedResidualBlock(8, 2, 3, name="block"))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="expansion=0"):
        InvertedResidualBlock(4, expansion=0)
