import keras
import numpy as np
import pytest

from keras_ahbf.layers import DenseBlock, HierarchicalBranches
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy, trainable_count

X = np.random.default_rng(0).normal(size=(2, 5, 5, 6)).astype("float32")


def conv(x, kernel):
    k = kernel.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, w, _ = x.shape
    out = np.zeros((n, h, w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("nabc,abco->no", xp[:, i : i + k, j : j + k], kernel)
    return out


def bn_relu(x, eps=1e-5):
    return np.maximum(x / np.sqrt(1 + eps), 0)  # fresh BN in inference mode


@pytest.mark.parametrize("bottleneck", [True, False])
@pytest.mark.parametrize("final", [True, False])
def test_matches_numpy(bottleneck, final):
    block = DenseBlock(3, num_layers=2, bottleneck=bottleneck, final_bn_relu=final)
    y = to_numpy(block(X, training=False))
    x = X.astype("float64")
    for i in range(2):
        h = bn_relu(x)
        if bottleneck:
            h = bn_relu(conv(h, to_numpy(block.convs1[i].kernel)))
        h = conv(h, to_numpy(block.convs2[i].kernel))
        x = np.concatenate([x, h], -1)
    if final:
        x = bn_relu(x)
    assert y.shape == (2, 5, 5, 6 + 2 * 3)
    np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)


def test_parameter_count():
    block = DenseBlock(12, num_layers=6, final_bn_relu=True)
    with keras.StatelessScope(initialize_variables=False):
        block.build((None, 8, 8, 60))
    want, c = 0, 60
    for _ in range(6):
        want += 2 * c + c * 48 + 2 * 48 + 9 * 48 * 12
        c += 12
    want += 2 * c
    assert c == 132
    assert trainable_count(block) == want


def test_branches_differ_in_channels():
    branches = HierarchicalBranches(
        DenseBlock(4, 2, final_bn_relu=True), 3, 1, 5, depth_key="num_layers"
    )
    feats, _ = branches.compute_output_shape((None, 5, 5, 6))
    assert [f[-1] for f in feats] == [14, 18, 22]


def test_dropout_in_training_only():
    block = DenseBlock(3, 1, bottleneck=False, dropout_rate=0.5)
    a = to_numpy(block(X, training=False))
    np.testing.assert_allclose(a, to_numpy(block(X, training=False)))
    b = to_numpy(block(X, training=True))
    # The input channels pass through; the new ones are dropped at random.
    np.testing.assert_allclose(b[..., :6], X, rtol=1e-6)
    assert np.mean(b[..., 6:] == 0) > 0.2
    assert len(block.dropouts) == 1


@pytest.mark.parametrize(
    "kwargs, trainable",
    [
        ({"final_bn_relu": True}, 2 * 6 + 2),
        ({"bottleneck": False, "dropout_rate": 0.1}, 2 * 3),
    ],
)
def test_layer_contract(kwargs, trainable):
    run_layer_test(
        DenseBlock, {"growth_rate": 4, "num_layers": 2, **kwargs}, X,
        expected_output_shape=(2, 5, 5, 6 + 2 * 4),
        expected_num_trainable_weights=trainable,
    )
    check_config_round_trip(DenseBlock(4, 2, bottleneck=False, dropout_rate=0.1, name="db"))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_layers=0"):
        DenseBlock(12, 0)
    with pytest.raises(ValueError, match="dropout_rate"):
        DenseBlock(12, 2, dropout_rate=1.0)
    with pytest.raises(TypeError, match="bottleneck"):
        DenseBlock(12, 2, bottleneck=1)
