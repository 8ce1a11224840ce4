import numpy as np
import pytest

from keras_ahbf.layers import HierarchicalBranches, VGGStage
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy, trainable_count

X = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")


def conv_same(x, kernel, bias):
    p = kernel.shape[0] // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, w, _ = x.shape
    out = np.zeros((n, h, w, kernel.shape[-1]), "float64")
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("nabc,abco->no", xp[:, i : i + 3, j : j + 3], kernel)
    return out + bias


def test_matches_numpy():
    stage = VGGStage(5, num_convs=2)
    y = to_numpy(stage(X, training=False))
    h = X.astype("float64")
    for conv, bn in zip(stage.convs, stage.bns):
        h = conv_same(h, to_numpy(conv.kernel), to_numpy(conv.bias))
        h = h / np.sqrt(1 + bn.epsilon)  # fresh BN: mean 0, variance 1
        h = np.maximum(h, 0)
    h = h.reshape(2, 3, 2, 3, 2, 5).max(axis=(2, 4))
    assert y.shape == (2, 3, 3, 5)
    np.testing.assert_allclose(y, h, rtol=1e-4, atol=1e-5)


def test_parameter_count_and_no_pool():
    stage = VGGStage(8, num_convs=3, pool=False)
    stage.build((None, 6, 6, 4))
    conv_bn = lambda cin, c: 9 * cin * c + c + 2 * c
    assert trainable_count(stage) == conv_bn(4, 8) + 2 * conv_bn(8, 8)
    assert stage.compute_output_shape((None, 6, 6, 4)) == (None, 6, 6, 8)


def test_branches_use_num_convs():
    branches = HierarchicalBranches(VGGStage(8, 3), 3, 2, 4, depth_key="num_convs")
    assert [s.num_convs for s in branches.stages] == [3, 5, 7]


@pytest.mark.parametrize("pool, size", [(True, 3), (False, 6)])
def test_layer_contract(pool, size):
    run_layer_test(
        VGGStage, {"filters": 8, "num_convs": 2, "pool": pool}, X,
        expected_output_shape=(2, size, size, 8),
        expected_num_trainable_weights=8, expected_num_non_trainable_weights=4,
    )
    check_config_round_trip(VGGStage(8, 2, pool=False, name="stage"))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_convs=0"):
        VGGStage(8, 0)
    with pytest.raises(TypeError, match="pool"):
        VGGStage(8, 1, pool="yes")
