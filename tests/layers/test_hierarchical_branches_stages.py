"""HierarchicalBranches with multi-stage templates and MLP classifiers."""

import keras
import numpy as np
import pytest

from keras_ahbf.layers import HierarchicalBranches, ResidualStage, ResidualStages
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy

X = np.random.default_rng(0).normal(size=(2, 8, 8, 8)).astype("float32")


def reference_depths(base, aux, num_branches):
    """Extra blocks alternate over the S stages, first stage first."""
    depths = []
    for b in range(num_branches):
        extra = [0] * len(base)
        for level in range(1, b + 1):
            extra[(level - 1) % len(base)] += aux
        depths.append([d + e for d, e in zip(base, extra)])
    return depths


@pytest.mark.parametrize("base", [[2, 2], [3, 4, 6], [1]])
@pytest.mark.parametrize("aux", [0, 1, 3])
def test_list_depths_alternate_between_stages(base, aux):
    branches = HierarchicalBranches(
        ResidualStages(filters=[4] * len(base), depth=base, strides=1),
        num_branches=6, aux=aux, num_classes=3,
    )
    assert branches.depths == reference_depths(base, aux, 6)
    assert [s.depth for s in branches.stages] == branches.depths


def test_imagenet_rule_ceil_floor():
    branches = HierarchicalBranches(
        ResidualStages(filters=[8, 16], depth=[2, 2], strides=2),
        num_branches=5, aux=2, num_classes=3,
    )
    for b, (d3, d4) in enumerate(branches.depths):
        assert d3 == 2 + 2 * -(-b // 2)  # aux * ceil(b / 2)
        assert d4 == 2 + 2 * (b // 2)    # aux * floor(b / 2)


def test_int_depth_behaviour_is_unchanged():
    branches = HierarchicalBranches(ResidualStage(8, 2), 3, 2, 5)
    assert branches.depths == [2, 4, 6]
    assert isinstance(branches.heads[0], keras.layers.Dense)
    config = branches.get_config()
    assert config["head_hidden_units"] == [] and config["head_dropout"] == 0.0


def test_mlp_head_matches_numpy():
    branches = HierarchicalBranches(
        ResidualStage(8, 1), num_branches=2, aux=1, num_classes=4,
        head_hidden_units=[6, 5], head_dropout=0.5,
    )
    feats, logits = branches(X, training=False)
    head = branches.heads[1]
    dense = [l for l in head.layers if isinstance(l, keras.layers.Dense)]
    assert [d.units for d in dense] == [6, 5, 4]
    h = to_numpy(feats[1]).mean(axis=(1, 2))
    for i, d in enumerate(dense):
        h = h @ to_numpy(d.kernel) + to_numpy(d.bias)
        if i < 2:
            h = np.maximum(h, 0.0)
    np.testing.assert_allclose(to_numpy(logits[1]), h, rtol=1e-5, atol=1e-5)
    # Dropout is active in training only.
    _, train_logits = branches(X, training=True)
    assert not np.allclose(to_numpy(train_logits[1]), to_numpy(logits[1]))


def test_layer_contract():
    kwargs = dict(
        stage=ResidualStages(filters=[8, 8], depth=[1, 1], strides=[2, 1]),
        num_branches=3, aux=1, num_classes=4, head_hidden_units=[6], head_dropout=0.2,
    )
    branches = run_layer_test(
        HierarchicalBranches, kwargs, X,
        expected_output_shape=([(2, 4, 4, 8)] * 3, [(2, 4)] * 3),
        make_outputs=lambda outputs: outputs[1],
    )
    assert branches.depths == [[1, 1], [2, 1], [2, 2]]
    clone = check_config_round_trip(HierarchicalBranches(**kwargs, name="branches"))
    assert clone.depths == [[1, 1], [2, 1], [2, 2]]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="head_dropout"):
        HierarchicalBranches(ResidualStage(8, 1), 2, 1, 3, head_dropout=1.0)
    with pytest.raises(ValueError, match="head_hidden_units=0"):
        HierarchicalBranches(ResidualStage(8, 1), 2, 1, 3, head_hidden_units=[0])
    with pytest.raises(TypeError, match="head_hidden_units"):
        HierarchicalBranches(ResidualStage(8, 1), 2, 1, 3, head_hidden_units="wide")
