"""GradientScale: identity values, gradients scaled (checked numerically on
the current backend), config, saving, mixed precision and refusals."""

import keras
import numpy as np
import pytest

from keras_ahbf.layers import GradientScale
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import gradients
from keras_ahbf.testing.test_utils import to_numpy


def test_layer_contract():
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    layer = run_layer_test(
        GradientScale, {"scale": 0.25}, x, expected_output_shape=(2, 4, 4, 3),
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
    )
    assert layer.get_config()["scale"] == 0.25


@pytest.mark.parametrize("scale", [0.25, 1.0, 0.0, -1.0, 3.0])
def test_value_is_identity_and_gradient_is_scaled(scale):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5)).astype("float32")
    w = rng.normal(size=(3, 5)).astype("float32")
    layer = GradientScale(scale)
    np.testing.assert_array_equal(to_numpy(layer(x)), x)

    # d/dx sum(w * f(y)) with y = layer(x): f'(x) * w * scale, f(y) = y^2 / 2 + y.
    def fn(inputs):
        y = layer(inputs)
        return keras.ops.sum(keras.ops.convert_to_tensor(w) * (0.5 * y * y + y))

    (grad,) = gradients(fn, [x])
    np.testing.assert_allclose(grad, scale * w * (x + 1.0), rtol=1e-5, atol=1e-6)


def test_gradient_of_shared_input_is_the_scaled_sum_over_consumers():
    # ILR: H heads read one shared representation through 1/H rescaling,
    # so it receives the mean of the heads' gradients.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3)).astype("float32")
    weights = [rng.normal(size=(4, 3)).astype("float32") for _ in range(4)]
    layer = GradientScale(1.0 / len(weights))

    def fn(inputs):
        shared = layer(inputs)
        return sum(keras.ops.sum(keras.ops.convert_to_tensor(w) * shared) for w in weights)

    (grad,) = gradients(fn, [x])
    np.testing.assert_allclose(grad, np.mean(weights, axis=0), rtol=1e-5, atol=1e-6)


def test_parameters_before_the_layer_get_scaled_gradients():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 3)).astype("float32")
    kernel = rng.normal(size=(3, 2)).astype("float32")

    def loss(k, scale):
        y = GradientScale(scale)(keras.ops.matmul(keras.ops.convert_to_tensor(x), k))
        return keras.ops.sum(y * y)

    (plain,) = gradients(lambda k: loss(k, 1.0), [kernel])
    (scaled,) = gradients(lambda k: loss(k, 0.5), [kernel])
    np.testing.assert_allclose(plain, 2.0 * x.T @ (x @ kernel), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scaled, 0.5 * plain, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "scale, error",
    [("0.5", TypeError), (True, TypeError), (None, TypeError),
     (float("nan"), ValueError), (float("inf"), ValueError)],
)
def test_bad_scale_is_refused(scale, error):
    with pytest.raises(error, match="scale"):
        GradientScale(scale)
