import numpy as np
import pytest

from keras_ahbf.layers import NonLocalBlock
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def reference(layer, x):
    n, h, w, c = x.shape
    conv = lambda t, k: np.einsum("nhwc,co->nhwo", t, to_numpy(k)[0, 0])
    ci = layer.theta.kernel.shape[-1]
    theta = conv(x, layer.theta.kernel).reshape(n, h * w, ci)
    phi = conv(x, layer.phi.kernel).reshape(n, h * w, ci)
    g = conv(x, layer.g.kernel).reshape(n, h * w, ci)
    a = softmax(theta @ phi.transpose(0, 2, 1), axis=-1)
    y = (a @ g).reshape(n, h, w, ci)
    return x + conv(y, layer.out_conv.kernel)


@pytest.mark.parametrize("channels, inter", [(64, 32), (12, 6), (7, 3), (1, 1)])
def test_matches_numpy_for_any_channel_count(channels, inter):
    x = np.random.default_rng(0).normal(size=(2, 3, 4, channels)).astype("float32") * 0.3
    layer = NonLocalBlock()
    y = to_numpy(layer(x))
    assert layer.theta.kernel.shape == (1, 1, channels, inter)
    np.testing.assert_allclose(y, reference(layer, x), rtol=1e-4, atol=1e-5)


def test_positions_and_channels_stay_apart():
    """Permuting the positions of the input permutes the output the same way
    (the published reshape, which mixes positions with channels, does not)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 4, 4, 6)).astype("float32")
    layer = NonLocalBlock()
    y = to_numpy(layer(x)).reshape(1, 16, 6)
    perm = rng.permutation(16)
    xp = x.reshape(1, 16, 6)[:, perm].reshape(1, 4, 4, 6)
    yp = to_numpy(layer(xp)).reshape(1, 16, 6)
    np.testing.assert_allclose(yp, y[:, perm], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("inter_channels", [None, 5])
def test_layer_contract(inter_channels):
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 8)).astype("float32")
    layer = run_layer_test(
        NonLocalBlock, {"inter_channels": inter_channels}, x,
        expected_output_shape=(2, 4, 4, 8), expected_num_trainable_weights=4,
    )
    assert layer.out_conv.kernel.shape == (1, 1, inter_channels or 4, 8)


def test_explicit_inter_channels_config():
    layer = NonLocalBlock(inter_channels=5, name="nl")
    layer.build((None, 4, 4, 8))
    assert layer.out_conv.kernel.shape == (1, 1, 5, 8)
    check_config_round_trip(layer)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="inter_channels=0"):
        NonLocalBlock(inter_channels=0)
