"""The short-budget levers of the loss (cross-entropy weights, ramp-up shape)
checked against an independent NumPy computation."""

import math

import numpy as np
import pytest

from keras_ahbf import losses
from keras_ahbf.testing.test_utils import to_numpy


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_ce(y, z):
    return -np_log_softmax(z)[np.arange(len(y)), y].mean()


@pytest.mark.parametrize("aux_w, fused_w", [(0.0, 0.0), (0.5, 2.0), (1.0, 0.25)])
def test_cross_entropy_weights_match_numpy(aux_w, fused_w):
    rng = np.random.default_rng(3)
    z = [rng.normal(size=(12, 7)).astype("float32") * 2 for _ in range(4)]
    e = [rng.normal(size=(12, 7)).astype("float32") * 2 for _ in range(3)]
    y = rng.integers(0, 7, 12)
    got = losses.ahbf_loss(y, z, e, aux_ce_weight=aux_w, fused_ce_weight=fused_w, kd_weight=0.0)
    want = np_ce(y, z[0]) + aux_w * sum(np_ce(y, t) for t in z[1:]) + fused_w * sum(
        np_ce(y, t) for t in e
    )
    np.testing.assert_allclose(to_numpy(got["ce"]), want, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(got["total"]), want, rtol=1e-5)
    # The per-term list stays unweighted.
    np.testing.assert_allclose(to_numpy(got["ce_terms"][1]), np_ce(y, z[1]), rtol=1e-5)


@pytest.mark.parametrize("epoch", [0, 3, 7, 10, 25])
def test_rampup_shapes_match_numpy(epoch):
    R = 10
    t = min(epoch, R) / R
    assert losses.rampup_weight(epoch, R, "linear") == pytest.approx(0.5 * t)
    assert losses.rampup_weight(epoch, R, "exp") == pytest.approx(0.5 * math.exp(-5 * (1 - t) ** 2))
    assert losses.rampup_weight(epoch, 0, "linear") == 0.5
    np.testing.assert_allclose(
        to_numpy(losses.rampup_weight(np.int32(epoch), R, "linear")), 0.5 * t, rtol=1e-6
    )


def test_rampup_shape_is_checked():
    with pytest.raises(ValueError, match="shape.*'cosine'"):
        losses.rampup_weight(1, 10, "cosine")


@pytest.mark.parametrize("name", ["aux_ce_weight", "fused_ce_weight"])
def test_negative_or_nan_cross_entropy_weight_is_refused(name):
    z = [np.zeros((2, 3), "float32")] * 2
    for value in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=name):
            losses.ahbf_loss(np.array([0, 1]), z, z[:1], **{name: value})
