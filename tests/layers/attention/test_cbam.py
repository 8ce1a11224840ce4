import numpy as np
import pytest

from keras_ahbf.layers import CBAM
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def conv_same(x, kernel):
    """Stride-1, zero-padded ("same") 2D convolution, NHWC, HWIO kernel."""
    k = kernel.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, w, _ = x.shape
    out = np.zeros((n, h, w, kernel.shape[-1]), x.dtype)
    for i in range(h):
        for j in range(w):
            patch = xp[:, i : i + k, j : j + k, :]
            out[:, i, j, :] = np.einsum("nabc,abco->no", patch, kernel)
    return out


def reference(layer, x):
    w1, w2 = to_numpy(layer.fc1.kernel), to_numpy(layer.fc2.kernel)
    mlp = lambda v: np.maximum(v @ w1, 0) @ w2
    a_c = sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))
    x = x * a_c[:, None, None, :]
    pooled = np.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], -1)
    return x * sigmoid(conv_same(pooled, to_numpy(layer.spatial_conv.kernel)))


@pytest.mark.parametrize("channels", [64, 20, 3])
def test_matches_numpy_for_any_channel_count(channels):
    x = np.random.default_rng(0).normal(size=(2, 6, 5, channels)).astype("float32")
    layer = CBAM()
    y = to_numpy(layer(x))
    assert layer.fc1.kernel.shape == (channels, max(1, channels // 16))
    assert layer.spatial_conv.kernel.shape == (7, 7, 2, 1)
    np.testing.assert_allclose(y, reference(layer, x), rtol=1e-4, atol=1e-5)


def test_kernel_size_three():
    x = np.random.default_rng(2).normal(size=(1, 4, 4, 8)).astype("float32")
    layer = CBAM(reduction=2, kernel_size=3)
    np.testing.assert_allclose(to_numpy(layer(x)), reference(layer, x), rtol=1e-4, atol=1e-5)


def test_layer_contract():
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 8)).astype("float32")
    run_layer_test(
        CBAM, {"reduction": 4}, x,
        expected_output_shape=(2, 4, 4, 8), expected_num_trainable_weights=3,
    )
    check_config_round_trip(CBAM(reduction=4, kernel_size=3, name="cbam"))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="kernel_size=4"):
        CBAM(kernel_size=4)
    with pytest.raises(ValueError, match="reduction=0"):
        CBAM(reduction=0)
