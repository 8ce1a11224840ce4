import keras
import numpy as np
import pytest

from keras_ahbf.layers import AdaptiveFusion
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy, trainable_count


def make_inputs(n=3, h=4, ca=8, cb=8, k=5, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(n, h, h, ca)).astype("float32"),
        rng.normal(size=(n, h, h, cb)).astype("float32"),
        rng.normal(size=(n, k)).astype("float32"),
        rng.normal(size=(n, k)).astype("float32"),
    ]


def numpy_fusion(layer, fa, fb, za, zb, eps=1e-5):
    """`docs/method.md` section 2 in NumPy, BatchNorm in inference mode."""
    kernel = to_numpy(layer.conv.kernel)[0, 0]  # (Ca + Cb, C)
    bias = to_numpy(layer.conv.bias)

    def bn(x, bn_layer):
        gamma, beta, mean, var = (to_numpy(v) for v in (
            bn_layer.gamma, bn_layer.beta, bn_layer.moving_mean,
            bn_layer.moving_variance))
        return gamma * (x - mean) / np.sqrt(var + eps) + beta

    g = bn(np.concatenate([fa, fb], -1) @ kernel + bias, layer.bn)
    pooled = g.mean(axis=(1, 2))
    s = np.maximum(bn(pooled @ to_numpy(layer.fc.kernel) + to_numpy(layer.fc.bias),
                      layer.bn_fc), 0.0)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    return g, w[:, :1] * za + w[:, 1:] * zb, w


@pytest.mark.parametrize("ca, cb", [(8, 8), (6, 10)])
def test_matches_numpy_in_inference(ca, cb):
    inputs = make_inputs(ca=ca, cb=cb)
    layer = AdaptiveFusion(return_weights=True)
    layer.build([x.shape for x in inputs])
    # Non-trivial BatchNorm statistics and affine parameters.
    rng = np.random.default_rng(1)
    for bn in (layer.bn, layer.bn_fc):
        c = bn.gamma.shape[0]
        bn.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
        bn.beta.assign(rng.normal(size=c).astype("float32"))
        bn.moving_mean.assign(rng.normal(size=c).astype("float32"))
        bn.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype("float32"))
    g, e, w = layer(inputs, training=False)
    g_np, e_np, w_np = numpy_fusion(layer, *inputs)
    np.testing.assert_allclose(to_numpy(g), g_np, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(e), e_np, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(w), w_np, rtol=1e-4, atol=1e-6)
    assert to_numpy(g).shape == (3, 4, 4, cb)


def test_weights_are_per_sample_and_sum_to_one_in_training():
    inputs = make_inputs(n=6)
    g, e, w = AdaptiveFusion(return_weights=True)(inputs, training=True)
    w = to_numpy(w)
    assert w.shape == (6, 2)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert (w >= 0).all()
    # The fused logits are the convex combination of the two inputs.
    za, zb = inputs[2], inputs[3]
    np.testing.assert_allclose(
        to_numpy(e), w[:, :1] * za + w[:, 1:] * zb, rtol=1e-5, atol=1e-6
    )


def test_default_returns_features_and_logits_only():
    outputs = AdaptiveFusion()(make_inputs())
    assert len(outputs) == 2


def test_parameter_count_matches_published_fusion():
    # conv (Ca + Cb) -> Cb with bias, BN(Cb), Dense(Cb -> 2) with bias, BN(2).
    layer = AdaptiveFusion()
    layer.build([(None, 8, 8, 64), (None, 8, 8, 64), (None, 100), (None, 100)])
    assert trainable_count(layer) == 128 * 64 + 64 + 2 * 64 + 64 * 2 + 2 + 2 * 2


def test_config_round_trip():
    layer = AdaptiveFusion(return_weights=True, name="fuse")
    clone = check_config_round_trip(layer)
    assert clone.return_weights is True and clone.attention is None


@pytest.mark.parametrize("return_weights", [False, True])
def test_layer_contract(return_weights):
    # conv kernel and bias, BN gamma and beta, fc kernel and bias, BN on fc.
    run_layer_test(
        AdaptiveFusion, {"return_weights": return_weights}, make_inputs(ca=4, cb=12),
        expected_output_shape=[(3, 4, 4, 12), (3, 5)] + [(3, 2)] * return_weights,
        expected_num_trainable_weights=8, expected_num_non_trainable_weights=4,
    )


@pytest.mark.parametrize(
    "shapes, match",
    [
        ([(2, 4, 4, 8), (2, 5, 5, 8), (2, 3), (2, 3)], "height and width"),
        ([(2, 4, 4, 8), (2, 4, 4, 8), (2, 3), (2, 4)], "logits"),
        ([(2, 4, 8), (2, 4, 4, 8), (2, 3), (2, 3)], "features_a"),
        ([(2, 4, 4, 8), (2, 4, 4, 8), (2, 3)], "4 inputs"),
    ],
)
def test_bad_inputs_raise(shapes, match):
    with pytest.raises(ValueError, match=match):
        AdaptiveFusion().build(shapes)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="attention='bogus'"):
        AdaptiveFusion(attention="bogus")
    with pytest.raises(TypeError, match="return_weights"):
        AdaptiveFusion(return_weights="yes")


def test_mixed_precision_policy():
    layer = AdaptiveFusion(return_weights=True, dtype="mixed_float16")
    g, e, w = layer(make_inputs())
    assert keras.backend.standardize_dtype(g.dtype) == "float16"
    assert keras.backend.standardize_dtype(layer.conv.kernel.dtype) == "float32"
    assert layer.conv.dtype_policy.name == "mixed_float16"
