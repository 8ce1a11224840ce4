"""FastConv2D: the PyTorch channels-last kernel equals Keras' Conv2D (the
keras.ops reference), against NumPy, in gradients, mixed precision and jit."""

import keras
import numpy as np
import pytest

from keras_ahbf import kernels
from keras_ahbf.layers import FastConv2D
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_utils import gradients, to_numpy

CASES = [
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=3, padding="valid"),
    dict(kernel_size=3, padding="same", strides=2),  # asymmetric: reference
    dict(kernel_size=1, padding="same", strides=2),
    dict(kernel_size=3, padding="same", dilation_rate=2),
    dict(kernel_size=3, padding="same", groups=2),
    dict(kernel_size=(1, 3), padding="same", use_bias=False),
]


def _numpy_conv(x, w, b, strides=1, padding="valid", dilation=1, groups=1):
    kh, kw, cin_g, cout = w.shape
    eh, ew = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    h, wd = x.shape[1:3]
    if padding == "same":
        oh, ow = -(-h // strides), -(-wd // strides)
        ph = max((oh - 1) * strides + eh - h, 0)
        pw = max((ow - 1) * strides + ew - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    oh = (x.shape[1] - eh) // strides + 1
    ow = (x.shape[2] - ew) // strides + 1
    out = np.zeros((x.shape[0], oh, ow, cout))
    per_group = cout // groups
    for g in range(groups):
        xs = x[..., g * cin_g:(g + 1) * cin_g]
        ws = w[..., g * per_group:(g + 1) * per_group]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i * dilation:i * dilation + strides * oh:strides,
                           j * dilation:j * dilation + strides * ow:strides]
                out[..., g * per_group:(g + 1) * per_group] += patch @ ws[i, j]
    return out + (0.0 if b is None else b)


def _conv(flag, case, seed=0):
    with kernels.kernels_enabled(flag):
        conv = FastConv2D(4, **case)
        conv.build((None, 7, 7, 4))
    rng = np.random.default_rng(seed)
    conv.set_weights([rng.normal(size=v.shape).astype("float32") for v in conv.weights])
    return conv


@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_forward_matches_numpy(flag, case):
    x = np.random.default_rng(1).normal(size=(2, 7, 7, 4)).astype("float32")
    conv = _conv(flag, case)
    with kernels.kernels_enabled(flag):
        y = to_numpy(conv(x))
    weights = [to_numpy(v) for v in conv.weights]
    expected = _numpy_conv(
        x,
        weights[0],
        weights[1] if len(weights) > 1 else None,
        strides=case.get("strides", 1),
        padding=case["padding"],
        dilation=case.get("dilation_rate", 1),
        groups=case.get("groups", 1),
    )
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES[:2] + CASES[4:6])
def test_gradients_equal_reference(case):
    if keras.backend.backend() == "jax":
        pytest.skip("no conv2d kernel on JAX; the reference is Keras' own")
    x = np.random.default_rng(1).normal(size=(2, 7, 7, 4)).astype("float32")
    upstream = None
    results = []
    for flag in (True, False):
        conv = _conv(flag, case)
        kernel = to_numpy(conv.kernel)
        if upstream is None:
            out_shape = conv.compute_output_shape(x.shape)
            upstream = np.random.default_rng(2).normal(size=out_shape).astype("float32")

        def loss(inputs, w):
            with kernels.kernels_enabled(flag):
                return keras.ops.sum(conv.convolution_op(inputs, w) * keras.ops.convert_to_tensor(upstream))

        results.append(gradients(loss, [x, kernel]))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_mixed_bfloat16_close_to_reference():
    x = np.random.default_rng(1).normal(size=(2, 7, 7, 4)).astype("float32")
    outputs = []
    for flag in (True, False):
        with kernels.kernels_enabled(flag):
            conv = FastConv2D(4, 3, padding="same", dtype="mixed_bfloat16")
            conv.build((None, 7, 7, 4))
            conv.set_weights([np.full(v.shape, 0.1, "float32") for v in conv.weights])
            y = conv(x)
        assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
        outputs.append(to_numpy(keras.ops.cast(y, "float32")))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=2e-2, atol=2e-2)


def test_same_config_as_keras():
    ours = FastConv2D(4, 3, padding="same", name="c")
    theirs = keras.layers.Conv2D(4, 3, padding="same", name="c")
    assert ours.get_config() == theirs.get_config()
    check_config_round_trip(ours)
