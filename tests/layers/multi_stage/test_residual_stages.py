import keras
import numpy as np
import pytest

from keras_ahbf.layers import ResidualStage, ResidualStages
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy, trainable_count

X = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")


def test_equals_the_stages_in_sequence():
    stages = ResidualStages(filters=[8, 16], depth=[1, 2], strides=2)
    y = to_numpy(stages(X, training=False))
    assert y.shape == (2, 2, 2, 16)
    want = X
    for stage in stages.stages:
        want = stage(want, training=False)
    np.testing.assert_allclose(y, to_numpy(want), rtol=1e-6)
    assert [s.depth for s in stages.stages] == [1, 2]


def test_parameter_count_equals_separate_stages():
    stages = ResidualStages([8, 16], [2, 1], [2, 2], block="bottleneck")
    a = ResidualStage(8, 2, 2, "bottleneck")
    b = ResidualStage(16, 1, 2, "bottleneck")
    with keras.StatelessScope(initialize_variables=False):
        stages.build((None, 8, 8, 4))
        a.build((None, 8, 8, 4))
        b.build((None, 4, 4, 32))
    assert trainable_count(stages) == trainable_count(a) + trainable_count(b)
    assert stages.compute_output_shape((None, 8, 8, 4)) == (None, 2, 2, 64)


@pytest.mark.parametrize("block, channels", [("basic", 16), ("bottleneck", 64)])
def test_layer_contract(block, channels):
    stages = run_layer_test(
        ResidualStages, {"filters": [8, 16], "depth": [1, 1], "strides": [1, 2],
                         "block": block}, X,
        expected_output_shape=(2, 4, 4, channels),
    )
    assert [s.name for s in stages.stages] == ["stage_0", "stage_1"]
    check_config_round_trip(ResidualStages([8, 16], [1, 1], [1, 2], name="tail"))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="block='wide'"):
        ResidualStages([8, 16], [1, 1], block="wide")
    with pytest.raises(ValueError, match="one entry per stage"):
        ResidualStages([8], [1, 1])
