"""InvertedResidualStages: shapes, counts, branch depths, layer contract."""

import keras
import numpy as np
import pytest

from keras_ahbf.layers import HierarchicalBranches
from keras_ahbf.layers import InvertedResidualStages
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import trainable_count

X = np.random.default_rng(0).normal(size=(2, 4, 4, 4)).astype("float32")


def block_params(cin, cout, t):
    hidden = cin * t
    return cin * hidden + 2 * hidden + 9 * hidden + 2 * hidden + hidden * cout + 2 * cout


def test_stages_shapes_and_count():
    stages = InvertedResidualStages(
        filters=[6, 8], depth=[2, 1], strides=[1, 2], expansion=[1, 6], last_channels=16
    )
    with keras.StatelessScope(initialize_variables=False):
        stages.build((None, 4, 4, 4))
    assert stages.compute_output_shape((2, 4, 4, 4)) == (2, 2, 2, 16)
    assert len(stages.blocks) == 3
    want = block_params(4, 6, 1) + block_params(6, 6, 1) + block_params(6, 8, 6)
    assert trainable_count(stages) == want + 8 * 16 + 2 * 16


def test_ints_are_one_stage():
    stages = InvertedResidualStages(filters=8, depth=2, strides=2)
    assert stages.get_config()["depth"] == [2]
    assert stages.compute_output_shape((None, 4, 4, 4)) == (None, 2, 2, 8)


def test_branches_alternate_over_the_three_stages():
    branches = HierarchicalBranches(
        InvertedResidualStages([4, 4, 4], [3, 3, 1], [1, 2, 1], last_channels=8),
        num_branches=5, aux=2, num_classes=3,
    )
    assert branches.depths == [[3, 3, 1], [5, 3, 1], [5, 5, 1], [5, 5, 3], [7, 5, 3]]


def test_layer_contract():
    kwargs = {"filters": [4, 8], "depth": [2, 1], "strides": [1, 2], "expansion": 2,
              "last_channels": 12}
    stages = run_layer_test(
        InvertedResidualStages, kwargs, X, expected_output_shape=(2, 2, 2, 12),
        expected_num_trainable_weights=3 * 9 + 3,
    )
    assert [b.name for b in stages.blocks] == [
        "stage_0_block_0", "stage_0_block_1", "stage_1_block_0"]
    check_config_round_trip(
        InvertedResidualStages([6, 8], [1, 2], [1, 2], 6, last_channels=12, name="s")
    )


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="one entry per stage"):
        InvertedResidualStages([4, 8], [1, 2, 3])
    with pytest.raises(ValueError, match="depth=0"):
        InvertedResidualStages(4, 0)
    with pytest.raises(TypeError, match="filters"):
        InvertedResidualStages("wide", 1)
