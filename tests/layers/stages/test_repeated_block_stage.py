import keras
import numpy as np
import pytest

from keras_ahbf.layers import HierarchicalBranches, RepeatedBlockStage
from keras_ahbf.testing.test_case import check_config_round_trip
from keras_ahbf.testing.test_case import check_mixed_precision
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy, trainable_count

X = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")


def parts():
    inp = keras.Input((4, 4, 3))
    prefix = keras.Model(inp, keras.layers.Conv2D(6, 1, name="widen")(inp))
    b_in = keras.Input((4, 4, 6))
    h = keras.layers.Conv2D(6, 3, padding="same", name="conv")(b_in)
    block = keras.Model(b_in, keras.layers.Add(name="add")([b_in, h]))
    s_in = keras.Input((4, 4, 6))
    suffix = keras.Model(s_in, keras.layers.Conv2D(2, 1, name="narrow")(s_in))
    return prefix, block, suffix


def test_runs_prefix_blocks_suffix_with_fresh_weights():
    prefix, block, suffix = parts()
    stage = RepeatedBlockStage(block, depth=3, prefix=prefix, suffix=suffix)
    y = to_numpy(stage(X))
    assert y.shape == (2, 4, 4, 2)
    assert len(stage.blocks) == 3
    kernels = [to_numpy(b.get_layer("conv").kernel) for b in stage.blocks]
    assert not np.allclose(kernels[0], kernels[1])
    h = stage.prefix_model(X)
    for b in stage.blocks:
        h = b(h)
    np.testing.assert_allclose(to_numpy(stage.suffix_model(h)), y, rtol=1e-5, atol=1e-6)
    want = trainable_count(prefix) + 3 * trainable_count(block) + trainable_count(suffix)
    assert trainable_count(stage) == want


def test_hierarchical_copies():
    prefix, block, suffix = parts()
    branches = HierarchicalBranches(
        RepeatedBlockStage(block, 1, prefix=prefix, suffix=suffix), 3, 1, 4
    )
    branches(X)
    assert [len(s.blocks) for s in branches.stages] == [1, 2, 3]


def test_layer_contract():
    prefix, block, suffix = parts()
    run_layer_test(
        RepeatedBlockStage, {"block": block, "depth": 2, "prefix": prefix, "suffix": suffix},
        X, expected_output_shape=(2, 4, 4, 2), expected_num_trainable_weights=2 + 2 * 2 + 2,
        # The sub-models keep the dtype policies of the blueprint models'
        # layers (float32 here): a layer `dtype` does not reach inside them.
        mixed_precision=None,
    )
    check_config_round_trip(RepeatedBlockStage(block, 2, name="stage"))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_with_blueprints_built_under_the_policy(policy):
    keras.config.set_dtype_policy(policy)
    try:
        prefix, block, suffix = parts()
    finally:
        keras.config.set_dtype_policy("float32")
    kwargs = {"block": block, "depth": 2, "prefix": prefix, "suffix": suffix}
    check_mixed_precision(RepeatedBlockStage, kwargs, X, policies=(policy,),
                          global_policy=True)


def test_bad_arguments_raise():
    prefix, block, _ = parts()
    with pytest.raises(ValueError, match="same shape"):
        RepeatedBlockStage(prefix, 1)
    with pytest.raises(ValueError, match="depth=0"):
        RepeatedBlockStage(block, 0)
    with pytest.raises(TypeError, match="suffix"):
        RepeatedBlockStage(block, 1, suffix="x")
