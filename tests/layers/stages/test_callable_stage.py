import keras
import numpy as np
import pytest

from keras_ahbf.layers import CallableStage, HierarchicalBranches
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import to_numpy

X = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")


@keras.saving.register_keras_serializable(package="keras_ahbf_tests")
def relu_convs(depth):
    return keras.Sequential(
        [keras.layers.Conv2D(5, 3, padding="same", activation="relu") for _ in range(depth)]
    )


def test_wraps_the_built_stage():
    stage = CallableStage(relu_convs, depth=3)
    y = stage(X)
    assert tuple(y.shape) == (2, 4, 4, 5)
    assert len(stage.stage.layers) == 3
    np.testing.assert_allclose(to_numpy(stage.stage(X)), to_numpy(y), rtol=1e-6)
    assert stage.compute_output_shape((None, 4, 4, 3)) == (None, 4, 4, 5)


def test_hierarchical_copies():
    branches = HierarchicalBranches(CallableStage(relu_convs, 1), 3, 2, 4)
    branches(X)
    assert [len(s.stage.layers) for s in branches.stages] == [1, 3, 5]


def test_layer_contract_with_a_registered_function():
    run_layer_test(
        CallableStage, {"stage_fn": relu_convs, "depth": 2}, X,
        expected_output_shape=(2, 4, 4, 5), expected_num_trainable_weights=4,
        # `relu_convs` builds its layers with the global policy.
        mixed_precision="global",
    )
    config = keras.saving.serialize_keras_object(CallableStage(relu_convs, 2))
    assert config["config"]["stage_fn"]["config"] == "keras_ahbf_tests>relu_convs"


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="stage_fn"):
        CallableStage(keras.layers.Dense(3), 1)
    with pytest.raises(TypeError, match="must return"):
        CallableStage(lambda d: 3, 1)(X)
    with pytest.raises(ValueError, match="Register"):
        CallableStage.from_config(
            {"stage_fn": {"module": "builtins", "class_name": "function",
                          "config": "missing_fn", "registered_name": "function"},
             "depth": 1}
        )
