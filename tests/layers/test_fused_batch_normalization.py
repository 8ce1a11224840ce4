"""FusedBatchNormalization: the fused kernel equals Keras' BatchNormalization
(the keras.ops reference), against NumPy, in gradients, moving statistics,
mixed precision, jit and serialization."""

import keras
import numpy as np
import pytest

from keras_ahbf import kernels
from keras_ahbf.layers import FusedBatchNormalization
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_utils import gradients, to_numpy

EPS = 1e-5
HAS_KERNEL = "fused_batch_norm" in kernels.available_kernels()
needs_kernel = pytest.mark.skipif(
    not HAS_KERNEL, reason="no fused BatchNorm kernel on this backend"
)


def _inputs(shape=(4, 5, 6, 3), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * 2.0 + 1.5).astype("float32")


def _layer(**kwargs):
    layer = FusedBatchNormalization(momentum=0.9, epsilon=EPS, **kwargs)
    layer.build((None, 5, 6, 3))
    rng = np.random.default_rng(1)
    if layer.scale:
        layer.gamma.assign(rng.uniform(0.5, 2.0, size=3).astype("float32"))
    if layer.center:
        layer.beta.assign(rng.normal(size=3).astype("float32"))
    layer.moving_mean.assign(rng.normal(size=3).astype("float32"))
    layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=3).astype("float32"))
    return layer


def _numpy_bn(x, gamma, beta, mean, var):
    return gamma * (x - mean) / np.sqrt(var + EPS) + beta


@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize("center, scale", [(True, True), (False, False)])
def test_training_matches_numpy(flag, center, scale):
    x = _inputs()
    with kernels.kernels_enabled(flag):
        layer = _layer(center=center, scale=scale)
        gamma = to_numpy(layer.gamma) if scale else 1.0
        beta = to_numpy(layer.beta) if center else 0.0
        old_mean = to_numpy(layer.moving_mean)
        old_var = to_numpy(layer.moving_variance)
        y = to_numpy(layer(x, training=True))
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, _numpy_bn(x, gamma, beta, mean, var), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(layer.moving_mean), 0.9 * old_mean + 0.1 * mean, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), 0.9 * old_var + 0.1 * var, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("flag", [True, False])
def test_inference_matches_numpy(flag):
    x = _inputs()
    with kernels.kernels_enabled(flag):
        layer = _layer()
        y = to_numpy(layer(x, training=False))
    expected = _numpy_bn(
        x,
        to_numpy(layer.gamma),
        to_numpy(layer.beta),
        to_numpy(layer.moving_mean),
        to_numpy(layer.moving_variance),
    )
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_frozen_layer_uses_moving_statistics():
    x = _inputs()
    layer = _layer()
    layer.trainable = False
    before = to_numpy(layer.moving_mean)
    np.testing.assert_allclose(
        to_numpy(layer(x, training=True)), to_numpy(layer(x, training=False)), atol=1e-6
    )
    np.testing.assert_array_equal(to_numpy(layer.moving_mean), before)


@needs_kernel
def test_input_gradient_matches_numpy_and_reference():
    x = _inputs()
    upstream = np.random.default_rng(2).normal(size=x.shape).astype("float32")
    layer = _layer()
    gamma = to_numpy(layer.gamma)

    def loss(inputs):
        return keras.ops.sum(layer(inputs, training=True) * keras.ops.convert_to_tensor(upstream))

    with kernels.kernels_enabled(True):
        (fused,) = gradients(loss, [x])
    with kernels.kernels_enabled(False):
        (reference,) = gradients(loss, [x])
    n = x.shape[0] * x.shape[1] * x.shape[2]
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    invstd = 1.0 / np.sqrt(var + EPS)
    xhat = (x - mean) * invstd
    dy = upstream
    expected = (gamma * invstd / n) * (
        n * dy - dy.sum(axis=(0, 1, 2)) - xhat * (dy * xhat).sum(axis=(0, 1, 2))
    )
    np.testing.assert_allclose(fused, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused, reference, rtol=1e-4, atol=1e-4)


def _fit_tiny(flag, jit_compile, dtype=None, steps=2):
    keras.utils.set_random_seed(0)
    with kernels.kernels_enabled(flag):
        inputs = keras.Input((6, 6, 3))
        h = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, dtype=dtype)(inputs)
        h = FusedBatchNormalization(momentum=0.9, epsilon=EPS, dtype=dtype)(h)
        h = keras.layers.ReLU(dtype=dtype)(h)
        h = keras.layers.GlobalAveragePooling2D(dtype=dtype)(h)
        outputs = keras.layers.Dense(3, dtype=dtype)(h)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        rng = np.random.default_rng(3)
        x = rng.normal(size=(16, 6, 6, 3)).astype("float32")
        y = rng.integers(0, 3, size=(16,))
        model.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
        predictions = model.predict(x, verbose=0)
    return model, [to_numpy(w) for w in model.weights], predictions


@needs_kernel
@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_equals_reference(jit_compile):
    """Two SGD steps: weights (so the gradients of gamma, beta and the
    convolution), moving statistics and predictions equal with and
    without the kernel, with jit_compile on and off."""
    _, fused, fused_pred = _fit_tiny(True, jit_compile)
    _, reference, reference_pred = _fit_tiny(False, jit_compile)
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fused_pred, reference_pred, rtol=1e-4, atol=1e-5)


@needs_kernel
def test_mixed_bfloat16_close_to_reference():
    model, fused, fused_pred = _fit_tiny(True, False, dtype="mixed_bfloat16")
    _, reference, reference_pred = _fit_tiny(False, False, dtype="mixed_bfloat16")
    bn = [layer for layer in model.layers if isinstance(layer, FusedBatchNormalization)][0]
    assert keras.backend.standardize_dtype(bn.moving_mean.dtype) == "float32"
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(a, b, rtol=5e-2, atol=5e-2)
    np.testing.assert_allclose(fused_pred, reference_pred, rtol=5e-2, atol=5e-2)


def test_mixed_precision_output_dtype():
    for flag in (True, False):
        with kernels.kernels_enabled(flag):
            layer = FusedBatchNormalization(dtype="mixed_bfloat16")
            y = layer(_inputs(), training=True)
        assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"


def test_same_variables_and_config_as_keras():
    ours = _layer()
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=EPS)
    theirs.build((None, 5, 6, 3))
    assert [v.path.split("/")[-1] for v in ours.weights] == [
        v.path.split("/")[-1] for v in theirs.weights
    ]
    config = ours.get_config()
    expected = theirs.get_config()
    config.pop("name")
    expected.pop("name")
    assert config == expected
    check_config_round_trip(ours)


def test_mask_falls_back_to_reference():
    x = _inputs()
    mask = np.ones(x.shape[:-1], dtype=bool)
    mask[0] = False
    layer = _layer()
    reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=EPS)
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        to_numpy(layer(x, training=True, mask=mask)),
        to_numpy(reference(x, training=True, mask=mask)),
        rtol=1e-6,
        atol=1e-6,
    )
