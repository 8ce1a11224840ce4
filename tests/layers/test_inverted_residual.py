"""InvertedResidualBlock and InvertedResidualStages."""

import keras
import numpy as np
import pytest

from keras_ahbf.layers import (
    HierarchicalBranches,
    InvertedResidualBlock,
    InvertedResidualStages,
)
from tests.conftest import to_numpy, trainable_count
from tests.layers.layer_checks import (
    check_config_round_trip,
    check_saved_in_functional_model,
)

X = np.random.default_rng(0).normal(size=(2, 4, 4, 4)).astype("float32")


def block_params(cin, cout, t):
    hidden = cin * t
    return cin * hidden + 2 * hidden + 9 * hidden + 2 * hidden + hidden * cout + 2 * cout


def depthwise_same(x, kernel):
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    n, h, w, c = x.shape
    out = np.zeros_like(x, dtype="float64")
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("nabc,abc->nc", xp[:, i : i + 3, j : j + 3], kernel[..., 0])
    return out


@pytest.mark.parametrize("filters, residual", [(4, True), (6, False)])
def test_block_matches_numpy(filters, residual):
    block = InvertedResidualBlock(filters, strides=1, expansion=2)
    y = to_numpy(block(X, training=False))
    s = 1 / np.sqrt(1 + 1e-5)  # fresh BatchNorm in inference mode
    h = np.maximum(np.einsum("nhwc,co->nhwo", X, to_numpy(block.expand_conv.kernel)[0, 0]) * s, 0)
    h = np.maximum(depthwise_same(h, to_numpy(block.depthwise_conv.kernel)) * s, 0)
    h = np.einsum("nhwc,co->nhwo", h, to_numpy(block.project_conv.kernel)[0, 0]) * s
    if residual:
        h = h + X
    assert block.residual == residual
    np.testing.assert_allclose(y, h, rtol=1e-4, atol=1e-5)


def test_block_stride_and_count():
    block = InvertedResidualBlock(8, strides=2, expansion=6)
    with keras.StatelessScope(initialize_variables=False):
        block.build((None, 4, 4, 4))
    assert block.compute_output_shape((None, 4, 4, 4)) == (None, 2, 2, 8)
    assert trainable_count(block) == block_params(4, 8, 6)
    assert not block.residual


def test_stages_shapes_and_count():
    stages = InvertedResidualStages(
        filters=[6, 8], depth=[2, 1], strides=[1, 2], expansion=[1, 6], last_channels=16
    )
    with keras.StatelessScope(initialize_variables=False):
        stages.build((None, 4, 4, 4))
    assert stages.compute_output_shape((2, 4, 4, 4)) == (2, 2, 2, 16)
    assert len(stages.blocks) == 3
    want = block_params(4, 6, 1) + block_params(6, 6, 1) + block_params(6, 8, 6)
    assert trainable_count(stages) == want + 8 * 16 + 2 * 16


def test_ints_are_one_stage():
    stages = InvertedResidualStages(filters=8, depth=2, strides=2)
    assert stages.get_config()["depth"] == [2]
    assert stages.compute_output_shape((None, 4, 4, 4)) == (None, 2, 2, 8)


def test_branches_alternate_over_the_three_stages():
    branches = HierarchicalBranches(
        InvertedResidualStages([4, 4, 4], [3, 3, 1], [1, 2, 1], last_channels=8),
        num_branches=5, aux=2, num_classes=3,
    )
    assert branches.depths == [[3, 3, 1], [5, 3, 1], [5, 5, 1], [5, 5, 3], [7, 5, 3]]


def test_config_and_saving(tmp_path):
    check_config_round_trip(InvertedResidualBlock(8, 2, 3, name="block"))
    check_config_round_trip(
        InvertedResidualStages([6, 8], [1, 2], [1, 2], 6, last_channels=12, name="s")
    )
    check_saved_in_functional_model(
        tmp_path, InvertedResidualStages([4, 8], [2, 1], [1, 2], 2, last_channels=12), [X]
    )


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="one entry per stage"):
        InvertedResidualStages([4, 8], [1, 2, 3])
    with pytest.raises(ValueError, match="depth=0"):
        InvertedResidualStages(4, 0)
    with pytest.raises(TypeError, match="filters"):
        InvertedResidualStages("wide", 1)
    with pytest.raises(ValueError, match="expansion=0"):
        InvertedResidualBlock(4, expansion=0)
