"""The attention variants of AdaptiveFusion ("se", "cbam", "nonlocal")."""

import numpy as np
import pytest

from keras_ahbf.layers import CBAM, AdaptiveFusion, NonLocalBlock, SqueezeExcitation
from keras_ahbf.layers.adaptive_fusion import ATTENTIONS
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy

RNG = np.random.default_rng(0)
FA = RNG.normal(size=(3, 4, 4, 12)).astype("float32")
FB = RNG.normal(size=(3, 4, 4, 20)).astype("float32")
ZA = RNG.normal(size=(3, 5)).astype("float32")
ZB = RNG.normal(size=(3, 5)).astype("float32")


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def bn_inference(layer, x):
    return (x - to_numpy(layer.moving_mean)) / np.sqrt(
        to_numpy(layer.moving_variance) + layer.epsilon
    ) * to_numpy(layer.gamma) + to_numpy(layer.beta)


def test_variants():
    assert ATTENTIONS == (None, "se", "cbam", "nonlocal")


@pytest.mark.parametrize(
    "attention, cls", [("se", SqueezeExcitation), ("cbam", CBAM), ("nonlocal", NonLocalBlock)]
)
def test_attention_is_applied_after_the_batchnorm(attention, cls):
    # Different channel counts (12 and 20), unlike the published 64-only code.
    fuse = AdaptiveFusion(attention=attention, return_weights=True)
    g, e, w = fuse([FA, FB, ZA, ZB], training=False)
    assert isinstance(fuse.attention_layer, cls)
    assert fuse.attention_layer.name == f"attention_{attention}"
    cat = np.concatenate([FA, FB], -1)
    conv = np.einsum("nhwc,co->nhwo", cat, to_numpy(fuse.conv.kernel)[0, 0])
    conv = conv + to_numpy(fuse.conv.bias)
    want_g = to_numpy(fuse.attention_layer(bn_inference(fuse.bn, conv)))
    np.testing.assert_allclose(to_numpy(g), want_g, rtol=1e-4, atol=1e-4)
    scores = want_g.mean(axis=(1, 2)) @ to_numpy(fuse.fc.kernel) + to_numpy(fuse.fc.bias)
    want_w = softmax(np.maximum(bn_inference(fuse.bn_fc, scores), 0))
    np.testing.assert_allclose(to_numpy(w), want_w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(e), want_w[:, :1] * ZA + want_w[:, 1:] * ZB, rtol=1e-4, atol=1e-5
    )


def test_plain_fusion_has_no_attention():
    fuse = AdaptiveFusion()
    fuse([FA, FB, ZA, ZB])
    assert fuse.attention_layer is None


@pytest.mark.parametrize("attention", ["se", "cbam", "nonlocal"])
def test_layer_contract(attention):
    fuse = run_layer_test(
        AdaptiveFusion, {"attention": attention}, [FA, FB, ZA, ZB],
        expected_output_shape=[(3, 4, 4, 20), (3, 5)],
    )
    assert fuse.attention_layer.name == f"attention_{attention}"
    clone = check_config_round_trip(AdaptiveFusion(attention=attention, name="fusion"))
    assert clone.attention == attention


def test_unknown_attention_raises():
    with pytest.raises(ValueError, match="attention='sk'"):
        AdaptiveFusion(attention="sk")
