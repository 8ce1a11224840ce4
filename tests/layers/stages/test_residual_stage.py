"""ResidualStage: depth, strides, block kinds, layer contract."""

import numpy as np
import pytest

from keras_ahbf.layers import ResidualStage
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test

X = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype("float32")


def test_stage_depth_and_strides():
    stage = ResidualStage(32, depth=3, strides=2)
    assert tuple(stage(X).shape) == (2, 4, 4, 32)
    assert len(stage.blocks) == 3
    assert [b.strides for b in stage.blocks] == [2, 1, 1]
    bottleneck = ResidualStage(8, depth=2, strides=1, block="bottleneck")
    assert tuple(bottleneck(X).shape) == (2, 8, 8, 32)
    assert bottleneck.output_channels == 32


@pytest.mark.parametrize("block, channels", [("basic", 8), ("bottleneck", 32)])
def test_layer_contract(block, channels):
    run_layer_test(
        ResidualStage, {"filters": 8, "depth": 2, "strides": 2, "block": block}, X,
        expected_output_shape=(2, 4, 4, channels),
    )
    check_config_round_trip(
        ResidualStage(8, depth=2, strides=2, block="bottleneck", name="s")
    )


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="block='wide'"):
        ResidualStage(8, depth=2, block="wide")
    with pytest.raises(ValueError, match="depth=0"):
        ResidualStage(8, depth=0)
