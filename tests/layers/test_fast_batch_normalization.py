"""FastBatchNormalization: Keras' BatchNormalization with a hand-written
training gradient. Values, gradients and moving statistics are checked
against a NumPy computation of batch normalisation written here, and against
`keras.layers.BatchNormalization` itself."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_ahbf.layers import FastBatchNormalization
from tests.conftest import gradients
from tests.conftest import to_numpy
from tests.layers.layer_checks import check_config_round_trip
from tests.layers.layer_checks import check_saved_in_functional_model

EPS = 1e-5
MOMENTUM = 0.9


def numpy_batch_norm(x, gamma, beta, upstream, axis):
    """Forward, gradients of sum(y * upstream), and batch statistics."""
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    shape = [1] * x.ndim
    shape[axis] = -1
    x = x.astype(np.float64)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    x_hat = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + EPS)
    y = gamma.reshape(shape) * x_hat + beta.reshape(shape)
    n = x.size / x.shape[axis]
    d_x_hat = upstream * gamma.reshape(shape)
    # Ioffe & Szegedy's chain rule, through the variance and then the mean.
    d_var = np.sum(d_x_hat * (x - mean.reshape(shape)), axis=axes) * -0.5 * (var + EPS) ** -1.5
    d_mean = np.sum(-d_x_hat / np.sqrt(var.reshape(shape) + EPS), axis=axes) + d_var * np.mean(
        -2.0 * (x - mean.reshape(shape)), axis=axes
    )
    dx = (
        d_x_hat / np.sqrt(var.reshape(shape) + EPS)
        + d_var.reshape(shape) * 2.0 * (x - mean.reshape(shape)) / n
        + d_mean.reshape(shape) / n
    )
    return y, dx, np.sum(upstream * x_hat, axis=axes), np.sum(upstream, axis=axes), mean, var


def _train_call(layer, x, gamma, beta, upstream):
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def loss(x, gamma, beta):
        y, _ = layer.stateless_call([gamma, beta], non_trainable, x, training=True)
        return ops.sum(ops.cast(y, "float32") * ops.convert_to_tensor(upstream))

    grads = gradients(loss, [x, gamma, beta])
    y, moving = layer.stateless_call([gamma, beta], non_trainable, x, training=True)
    return [to_numpy(y)] + grads + [to_numpy(v) for v in moving]


@pytest.mark.parametrize(
    "shape, axis",
    [((8, 5, 5, 6), -1), ((4, 3, 3, 2), -1), ((16, 7), -1), ((4, 6, 5, 5), 1)],
    ids=["nhwc", "small", "dense", "nchw"],
)
def test_training_matches_numpy_and_keras(shape, axis):
    rng = np.random.default_rng(0)
    # A mean far from zero and a non-unit scale exercise the variance path.
    x = (rng.normal(size=shape) * 3.0 + 2.0).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    channels = shape[axis]
    gamma = np.linspace(0.5, 1.5, channels).astype("float32")
    beta = np.linspace(-1.0, 1.0, channels).astype("float32")

    results = {}
    for cls in (FastBatchNormalization, keras.layers.BatchNormalization):
        layer = cls(axis=axis, momentum=MOMENTUM, epsilon=EPS)
        layer.build(shape)
        results[cls.__name__] = _train_call(layer, x, gamma, beta, upstream)

    y, dx, dgamma, dbeta, mean, var = numpy_batch_norm(x, gamma, beta, upstream, axis)
    fast = results["FastBatchNormalization"]
    expected = [y, dx, dgamma, dbeta, MOMENTUM * 0 + (1 - MOMENTUM) * mean,
                MOMENTUM * 1 + (1 - MOMENTUM) * var]
    names = ["y", "dx", "dgamma", "dbeta", "moving_mean", "moving_variance"]
    for name, got, want in zip(names, fast, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)
    for name, got, want in zip(names, fast, results["BatchNormalization"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5, err_msg=name)


def test_training_updates_the_layer_state_like_keras():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4, 4, 3)).astype("float32") + 1.0
    fast = FastBatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    reference = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    for _ in range(3):
        a = fast(x, training=True)
        b = reference(x, training=True)
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=2e-5)
    for v, w in zip(fast.weights, reference.weights):
        np.testing.assert_allclose(to_numpy(v), to_numpy(w), atol=1e-6)
    # Inference mode and a frozen layer use the moving statistics.
    np.testing.assert_allclose(to_numpy(fast(x)), to_numpy(reference(x)), atol=1e-5)
    fast.trainable = False
    np.testing.assert_allclose(
        to_numpy(fast(x, training=True)), to_numpy(reference(x)), atol=1e-5
    )


def test_center_and_scale_off():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 3, 3, 4)).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    layer = FastBatchNormalization(center=False, scale=False, epsilon=EPS)
    layer.build(x.shape)
    assert not layer.trainable_weights
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def loss(x):
        y, _ = layer.stateless_call([], non_trainable, x, training=True)
        return ops.sum(y * ops.convert_to_tensor(upstream))

    (dx,) = gradients(loss, [x])
    ones, zeros = np.ones(4, "float32"), np.zeros(4, "float32")
    y, want_dx, *_ = numpy_batch_norm(x, ones, zeros, upstream, -1)
    got, _ = layer.stateless_call([], non_trainable, x, training=True)
    np.testing.assert_allclose(to_numpy(got), y, atol=1e-4)
    np.testing.assert_allclose(dx, want_dx, atol=1e-4)


def test_mixed_precision():
    x = np.random.default_rng(3).normal(size=(4, 3, 3, 5)).astype("float32")
    layer = FastBatchNormalization(dtype="mixed_bfloat16")
    y = layer(ops.cast(x, "bfloat16"), training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.moving_mean.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), 0.01 * to_numpy(ops.mean(ops.cast(ops.cast(x, "bfloat16"), "float32"), axis=(0, 1, 2))),
        atol=1e-6,
    )


def test_config_and_saving(tmp_path):
    layer = FastBatchNormalization(axis=-1, momentum=0.8, epsilon=1e-4, name="bn")
    clone = check_config_round_trip(layer)
    assert (clone.momentum, clone.epsilon) == (0.8, 1e-4)
    x = np.random.default_rng(4).normal(size=(4, 3, 3, 2)).astype("float32")
    loaded = check_saved_in_functional_model(
        tmp_path, lambda t: FastBatchNormalization(name="bn")(t), [x]
    )
    assert isinstance(loaded.get_layer("bn"), FastBatchNormalization)


def test_used_by_the_package_blocks():
    from keras_ahbf.layers import BasicBlock

    block = BasicBlock(4)
    block.build((None, 8, 8, 4))
    assert isinstance(block.bn1, FastBatchNormalization)
