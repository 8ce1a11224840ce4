import numpy as np
import pytest

from keras_ahbf.layers import SqueezeExcitation
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference(layer, x):
    s = x.mean(axis=(1, 2))
    a = sigmoid(np.maximum(s @ to_numpy(layer.fc1.kernel), 0) @ to_numpy(layer.fc2.kernel))
    return x * a[:, None, None, :]


@pytest.mark.parametrize("channels, reduction, hidden", [(64, 16, 4), (24, 16, 1), (200, 8, 25), (3, 16, 1)])
def test_matches_numpy_for_any_channel_count(channels, reduction, hidden):
    x = np.random.default_rng(0).normal(size=(2, 5, 3, channels)).astype("float32")
    layer = SqueezeExcitation(reduction=reduction)
    y = to_numpy(layer(x))
    assert layer.fc1.kernel.shape == (channels, hidden)
    assert layer.fc1.bias is None and layer.fc2.bias is None
    np.testing.assert_allclose(y, reference(layer, x), rtol=1e-5, atol=1e-5)


def test_published_64_channel_size():
    layer = SqueezeExcitation()
    layer.build((None, 8, 8, 64))
    assert sum(int(np.prod(v.shape)) for v in layer.trainable_variables) == 2 * 64 * 4


def test_layer_contract():
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 8)).astype("float32")
    run_layer_test(
        SqueezeExcitation, {"reduction": 4}, x,
        expected_output_shape=(2, 4, 4, 8), expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
    )
    check_config_round_trip(SqueezeExcitation(reduction=4, name="se"))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="reduction=0"):
        SqueezeExcitation(reduction=0)
    with pytest.raises(ValueError, match="4D"):
        SqueezeExcitation()(np.zeros((2, 8), "float32"))
