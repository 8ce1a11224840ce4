import keras
import numpy as np
import pytest

from keras_ahbf.layers import HierarchicalBranches, ResidualStage
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy, trainable_count

X = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype("float32")


def make(num_branches=3, aux=2, **kwargs):
    return HierarchicalBranches(
        ResidualStage(32, depth=1, strides=2),
        num_branches=num_branches, aux=aux, num_classes=7, **kwargs,
    )


def test_branch_depths_follow_the_hierarchy():
    branches = make(num_branches=4, aux=2)
    assert branches.depths == [1, 3, 5, 7]
    assert [s.depth for s in branches.stages] == [1, 3, 5, 7]
    feats, logits = branches(X)
    assert len(feats) == len(logits) == 4
    for f, z in zip(feats, logits):
        assert tuple(f.shape) == (2, 4, 4, 32)
        assert tuple(z.shape) == (2, 7)


def test_branches_are_independent_copies():
    branches = make(num_branches=2, aux=0)
    branches(X)
    w0 = to_numpy(branches.stages[0].blocks[0].conv1.kernel)
    w1 = to_numpy(branches.stages[1].blocks[0].conv1.kernel)
    assert not np.allclose(w0, w1)
    block_params = trainable_count(branches.stages[0])
    assert trainable_count(branches) == 2 * (block_params + 32 * 7 + 7)


def test_call_branch_equals_full_call():
    branches = make()
    feats, logits = branches(X, training=False)
    f0, z0 = branches.call_branch(0, X, training=False)
    np.testing.assert_allclose(to_numpy(z0), to_numpy(logits[0]), rtol=1e-6)


def test_logits_are_dense_of_pooled_features():
    branches = make(num_branches=2)
    feats, logits = branches(X, training=False)
    head = branches.heads[1]
    want = to_numpy(feats[1]).mean(axis=(1, 2)) @ to_numpy(head.kernel) + to_numpy(head.bias)
    np.testing.assert_allclose(to_numpy(logits[1]), want, rtol=1e-5, atol=1e-5)


def test_config_round_trip():
    clone = check_config_round_trip(make(name="branches"))
    assert clone.depths == [1, 3, 5]


def test_layer_contract():
    kwargs = dict(stage=ResidualStage(32, depth=1, strides=2), num_branches=3, aux=1,
                  num_classes=7)
    branches = run_layer_test(
        HierarchicalBranches, kwargs, X,
        expected_output_shape=([(2, 4, 4, 32)] * 3, [(2, 7)] * 3),
    )
    assert [s.name for s in branches.stages] == [f"branch_{b}_stage" for b in range(3)]
    assert [h.name for h in branches.heads] == [f"branch_{b}_classifier" for b in range(3)]


def test_custom_depth_key():
    @keras.saving.register_keras_serializable(package="keras_ahbf_tests")
    class ConvStack(keras.layers.Layer):
        def __init__(self, num_convs, **kwargs):
            super().__init__(**kwargs)
            self.num_convs = num_convs

        def build(self, input_shape):
            self.convs = [
                keras.layers.Conv2D(8, 3, padding="same", name=f"c{i}",
                                    dtype=self.dtype_policy)
                for i in range(self.num_convs)
            ]

        def call(self, x):
            for conv in self.convs:
                x = conv(x)
            return x

        def compute_output_shape(self, s):
            return s[:3] + (8,)

        def get_config(self):
            return {**super().get_config(), "num_convs": self.num_convs}

    branches = HierarchicalBranches(
        ConvStack(2), num_branches=3, aux=1, num_classes=4, depth_key="num_convs"
    )
    branches(X)
    assert [len(s.convs) for s in branches.stages] == [2, 3, 4]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="aux=-1"):
        make(aux=-1)
    with pytest.raises(ValueError, match="num_branches=0"):
        make(num_branches=0)
    with pytest.raises(ValueError, match="num_classes=0"):
        HierarchicalBranches(ResidualStage(8, 1), 2, 1, num_classes=0)
    with pytest.raises(ValueError, match="levels"):
        HierarchicalBranches(ResidualStage(8, 1), 2, 1, 3, depth_key="levels")
    with pytest.raises(TypeError, match="stage"):
        HierarchicalBranches("resnet", 2, 1, 3)
