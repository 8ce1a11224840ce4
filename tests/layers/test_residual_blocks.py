"""BasicBlock, Bottleneck and ResidualStage."""

import keras
import numpy as np
import pytest

from keras_ahbf.layers import BasicBlock, Bottleneck, ResidualStage
from tests.conftest import to_numpy, trainable_count
from tests.layers.layer_checks import (
    check_config_round_trip,
    check_saved_in_functional_model,
)

X = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype("float32")


def conv_bn(cin, cout, k):
    return cin * cout * k * k + 2 * cout


@pytest.mark.parametrize(
    "layer, shape, params",
    [
        (BasicBlock(16), (2, 8, 8, 16), 2 * conv_bn(16, 16, 3)),
        (BasicBlock(32, strides=2), (2, 4, 4, 32),
         conv_bn(16, 32, 3) + conv_bn(32, 32, 3) + conv_bn(16, 32, 1)),
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


def test_stage_depth_and_strides():
    stage = ResidualStage(32, depth=3, strides=2)
    assert tuple(stage(X).shape) == (2, 4, 4, 32)
    assert len(stage.blocks) == 3
    assert [b.strides for b in stage.blocks] == [2, 1, 1]
    bottleneck = ResidualStage(8, depth=2, strides=1, block="bottleneck")
    assert tuple(bottleneck(X).shape) == (2, 8, 8, 32)
    assert bottleneck.output_channels == 32


@pytest.mark.parametrize(
    "layer",
    [BasicBlock(8, strides=2, name="b"), Bottleneck(4, name="bb"),
     ResidualStage(8, depth=2, strides=2, block="bottleneck", name="s")],
)
def test_config_round_trip(layer):
    check_config_round_trip(layer)


def test_saved_inside_functional_model(tmp_path):
    def build(x):
        x = ResidualStage(8, depth=2, strides=2, name="stage")(x)
        return Bottleneck(4, name="neck")(x)

    check_saved_in_functional_model(tmp_path, build, [X])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="filters=0"):
        BasicBlock(0)
    with pytest.raises(TypeError, match="strides"):
        Bottleneck(4, strides=1.5)
    with pytest.raises(ValueError, match="block='wide'"):
        ResidualStage(8, depth=2, block="wide")
    with pytest.raises(ValueError, match="depth=0"):
        ResidualStage(8, depth=0)
    with pytest.raises(ValueError, match="4D"):
        BasicBlock(8).build((2, 8, 8))
