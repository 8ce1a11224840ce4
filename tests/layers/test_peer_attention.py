"""PeerAttention: the OKDDip attention weights against NumPy, config, saving,
mixed precision and refusals."""

import numpy as np
import pytest

from keras_ahbf.layers import PeerAttention
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy


def test_layer_contract():
    x = np.random.default_rng(0).normal(size=(2, 3, 16)).astype("float32")
    layer = run_layer_test(
        PeerAttention, {"reduction": 4}, x, expected_output_shape=(2, 3, 3),
        expected_num_trainable_weights=2, expected_num_non_trainable_weights=0,
    )
    assert layer.get_config()["reduction"] == 4 and layer.projection_units == 4


@pytest.mark.parametrize("peers, channels, kwargs, units", [
    (3, 64, {}, 8), (4, 16, {"reduction": 4}, 4), (2, 5, {"projection_dim": 3}, 3),
    (3, 4, {"reduction": 8}, 1),
])
def test_weights_match_numpy(peers, channels, kwargs, units):
    rng = np.random.default_rng(peers + channels)
    x = rng.normal(size=(5, peers, channels)).astype("float32")
    layer = PeerAttention(**kwargs)
    got = to_numpy(layer(x)).astype("float64")
    assert layer.projection_units == units
    wq = to_numpy(layer.query.kernel).astype("float64")
    wk = to_numpy(layer.key.kernel).astype("float64")
    expected = np.zeros((5, peers, peers))
    for b in range(5):
        for a in range(peers):
            energy = np.array([(x[b, a] @ wq) @ (x[b, f] @ wk) for f in range(peers)])
            e = np.exp(energy - energy.max())
            expected[b, a] = e / e.sum()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("make, match", [
    (lambda: PeerAttention(reduction=0), "reduction=0"),
    (lambda: PeerAttention(projection_dim=0), "projection_dim=0"),
    (lambda: PeerAttention()(np.zeros((2, 16), "float32")), "input_shape"),
])
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()
