"""OnlineKDModel: training, metrics, ramp-up, export and serialization."""

import os

import keras
import numpy as np
import pytest

import keras_ahbf
from keras_ahbf import losses
from keras_ahbf.layers import AdaptiveFusion, HierarchicalBranches, ResidualStage
from keras_ahbf.models import resnet_cifar
from keras_ahbf.testing.test_utils import learnable_images, to_numpy

K = 4


def small_model(**kwargs):
    options = dict(num_classes=K, num_branches=3, aux=1, input_shape=(8, 8, 3))
    options.update(kwargs)
    return resnet_cifar(8, **options)


def test_inference_returns_target_logits_only():
    model = small_model()
    x, _ = learnable_images(n=5)
    assert tuple(model(x).shape) == (5, K)
    assert model.predict(x, verbose=0).shape == (5, K)
    outputs = model.all_outputs(x)
    assert set(outputs) == {"branch_logits", "fused_logits", "fusion_weights"}
    assert len(outputs["branch_logits"]) == 3
    assert len(outputs["fused_logits"]) == len(outputs["fusion_weights"]) == 2
    np.testing.assert_allclose(
        to_numpy(outputs["branch_logits"][0]), to_numpy(model(x)), rtol=1e-5, atol=1e-6
    )


def test_all_outputs_follow_the_fusion_recursion():
    model = small_model()
    x, _ = learnable_images(n=4)
    out = model.all_outputs(x)
    z, e, w = (
        [to_numpy(t) for t in out[k]]
        for k in ("branch_logits", "fused_logits", "fusion_weights")
    )
    # e_1 mixes z_0 and z_1; e_2 mixes e_1 and z_2 with the layer's weights.
    np.testing.assert_allclose(e[0], w[0][:, :1] * z[0] + w[0][:, 1:] * z[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(e[1], w[1][:, :1] * e[0] + w[1][:, 1:] * z[2], rtol=1e-5, atol=1e-5)


def test_compute_loss_equals_ahbf_loss_plus_weight_decay():
    model = small_model(weight_decay=1e-3, rampup_epochs=10)
    model.compile(optimizer="sgd")
    model.set_epoch(4)
    x, y = learnable_images(n=8)
    out = model.all_outputs(x, training=False)
    got = to_numpy(model.compute_loss(x, y, out, training=False))
    w = 0.5 * np.exp(-5.0 * (1 - 4 / 10) ** 2)
    terms = losses.ahbf_loss(y, out["branch_logits"], out["fused_logits"], rampup_weight=w)
    l2 = 0.5e-3 * sum(float((to_numpy(v).astype("float64") ** 2).sum())
                      for v in model.trainable_variables)
    np.testing.assert_allclose(got, to_numpy(terms["total"]) + l2, rtol=1e-5)


def test_fit_learns_and_reports_every_term_and_branch():
    x, y = learnable_images(n=256)
    model = small_model(rampup_epochs=2)
    # (lr 0.05 diverges for some initialisations on this tiny task.)
    model.compile(keras.optimizers.SGD(0.02, momentum=0.9, nesterov=True))
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    logs = history.history
    for name in ["loss", "ce", "kd_branch", "kd_ta", "rampup_weight"]:
        assert name in logs
    names = list(logs)
    accuracy_names = [n for n in names if n.endswith("accuracy")]
    assert accuracy_names == [
        "branch_0_accuracy", "branch_1_accuracy", "branch_2_accuracy",
        "ta_1_accuracy", "ta_2_accuracy",
    ]
    assert logs["loss"][-1] < 0.5 * logs["loss"][0]
    assert logs["ce"][-1] < logs["ce"][0]
    # The target network learns the task.
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["branch_0_accuracy"] > 0.9
    target = model.target_model()
    accuracy = (target.predict(x, verbose=0).argmax(-1) == y).mean()
    assert accuracy == pytest.approx(result["branch_0_accuracy"], abs=1e-6)


def test_rampup_advances_without_user_callback():
    x, y = learnable_images(n=32)
    model = small_model(rampup_epochs=3)
    model.compile("sgd")
    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    want = [losses.rampup_weight(e, 3) for e in range(5)]
    np.testing.assert_allclose(history.history["rampup_weight"], want, rtol=1e-5)
    assert int(to_numpy(model.epoch)) == 4
    # Resuming continues the ramp-up from `initial_epoch`.
    history = model.fit(x, y, batch_size=16, epochs=3, initial_epoch=1, verbose=0)
    np.testing.assert_allclose(history.history["rampup_weight"], want[1:3], rtol=1e-5)


def test_evaluate_reports_all_branches_and_ramp_weight():
    x, y = learnable_images(n=16)
    model = small_model(rampup_epochs=0)
    model.compile("sgd", metrics=["accuracy"])
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    for name in ("loss", "ce", "kd_branch", "kd_ta", "branch_0_accuracy",
                 "branch_2_accuracy", "ta_2_accuracy", "fusion_1_weight", "accuracy"):
        assert name in result, name
    assert result["rampup_weight"] == pytest.approx(0.5)
    assert result["accuracy"] == pytest.approx(result["branch_0_accuracy"])
    # evaluate() must not change what predict() returns.
    assert model.predict(x, verbose=0).shape == (16, K)


def test_save_and_load_trained_model(tmp_path):
    x, y = learnable_images(n=64)
    model = small_model(rampup_epochs=5, temperature=4.0, stop_teacher_gradient=True)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "ahbf.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_ahbf.OnlineKDModel)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    assert loaded.temperature == 4.0 and loaded.stop_teacher_gradient is True
    assert loaded.rampup_epochs == 5
    assert int(to_numpy(loaded.epoch)) == 1
    # The optimizer state came back too, so training can resume.
    assert int(to_numpy(loaded.optimizer.iterations)) == int(to_numpy(model.optimizer.iterations))
    loaded.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0)


def test_target_model_is_plain_and_standalone(tmp_path):
    model = small_model()
    x, _ = learnable_images(n=6)
    target = model.target_model()
    names = [layer.name for layer in target.layers]
    assert not any("fusion" in n for n in names)
    assert "branch_1_stage" not in names
    np.testing.assert_allclose(
        target.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    path = os.path.join(tmp_path, "target.keras")
    target.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )


def test_custom_trunk_branches_and_fusion_list():
    inputs = keras.Input((8, 8, 3))
    trunk = keras.Model(inputs, keras.layers.Conv2D(8, 3, padding="same")(inputs))
    branches = HierarchicalBranches(ResidualStage(16, 1, strides=2), 2, 1, K)
    fusion = [AdaptiveFusion(return_weights=True)]
    model = keras_ahbf.OnlineKDModel(trunk, branches, fusion, rampup_epochs=1)
    model.compile("sgd")
    x, y = learnable_images(n=16)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (16, K)


# torch.compile takes minutes on this model: only in the large suite there.
JIT_MARKS = [pytest.mark.large] if keras.backend.backend() == "torch" else []


@pytest.mark.parametrize("_", [pytest.param(None, marks=JIT_MARKS)])
def test_jit_and_eager_give_the_same_losses(_):
    x, y = learnable_images(n=16)
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(7)
        model = small_model(rampup_epochs=1)
        model.compile(keras.optimizers.SGD(0.01), jit_compile=jit)
        results.append(model.evaluate(x, y, verbose=0, return_dict=True))
    for key in ("loss", "ce", "kd_branch", "kd_ta"):
        assert results[0][key] == pytest.approx(results[1][key], rel=1e-4), key


def test_compile_rejects_a_loss():
    model = small_model()
    with pytest.raises(ValueError, match="loss"):
        model.compile("sgd", loss="mse")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=0.0), "temperature=0.0"),
        (dict(kd_weight=-1.0), "kd_weight=-1.0"),
        (dict(lambda_ta=-0.5), "lambda_ta=-0.5"),
        (dict(lambda_branch=-3.0), "lambda_branch=-3.0"),
        (dict(rampup_epochs=-1), "rampup_epochs=-1"),
        (dict(weight_decay=-1e-4), "weight_decay"),
        (dict(fusion="bogus"), "fusion='bogus'"),
    ],
)
def test_invalid_options_raise_before_training(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_model(**kwargs)


def test_fusion_list_of_wrong_length_raises():
    inputs = keras.Input((8, 8, 3))
    trunk = keras.Model(inputs, keras.layers.Conv2D(8, 3, padding="same")(inputs))
    branches = HierarchicalBranches(ResidualStage(16, 1, strides=2), 3, 1, K)
    with pytest.raises(ValueError, match="list of 2"):
        keras_ahbf.OnlineKDModel(trunk, branches, [AdaptiveFusion(return_weights=True)])
    single = HierarchicalBranches(ResidualStage(16, 1, strides=2), 1, 1, K)
    with pytest.raises(ValueError, match="num_branches=1"):
        keras_ahbf.OnlineKDModel(trunk, single)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_training_keeps_the_loss_in_float32(policy):
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        x, y = learnable_images(n=32)
        model = small_model(rampup_epochs=0)
        model.compile(keras.optimizers.SGD(0.02, momentum=0.9))
        if policy == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert model.fusions[0].dtype_policy.name == policy
        out = model.all_outputs(x[:4])
        assert keras.backend.standardize_dtype(out["branch_logits"][0].dtype) != "float32"
        loss = model.compute_loss(x[:4], y[:4], out, training=False)
        assert keras.backend.standardize_dtype(loss.dtype) == "float32"
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_same_seed_gives_identical_weights():
    x, y = learnable_images(n=32)
    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(42)
        model = small_model(rampup_epochs=1)
        model.compile(keras.optimizers.SGD(0.02, momentum=0.9))
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        weights.append([to_numpy(v) for v in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "x, y, error, match",
    [
        (np.zeros((4, 8, 8), "float32"), np.zeros(4, "int32"), ValueError, "4D"),
        (np.zeros((4, 3, 8, 8), "float32"), np.zeros(4, "int32"), ValueError, "channels-first"),
        (np.zeros((4, 16, 16, 3), "float32"), np.zeros(4, "int32"), ValueError, r"\(8, 8, 3\)"),
        (np.zeros((0, 8, 8, 3), "float32"), np.zeros(0, "int32"), ValueError, "empty"),
        (np.full((4, 8, 8, 3), np.nan, "float32"), np.zeros(4, "int32"), ValueError, "NaN"),
        (np.full((4, 8, 8, 3), "a"), np.zeros(4, "int32"), TypeError, "numeric"),
        (np.zeros((4, 8, 8, 3), "float32"), np.array([0, 1, 2, 4]), ValueError, r"\[0, 4\).*4"),
        (np.zeros((4, 8, 8, 3), "float32"), np.array([0, -1, 2, 3]), ValueError, "out of range"),
        (np.zeros((4, 8, 8, 3), "float32"), np.zeros((4, 4)), ValueError, "one-hot"),
        (np.zeros((4, 8, 8, 3), "float32"), np.zeros(3, "int32"), ValueError, "same length"),
        (np.zeros((4, 8, 8, 3), "float32"), np.array([0.5, 1, 2, 3]), ValueError, "integer"),
        (np.zeros((4, 8, 8, 3), "float32"), np.array(["a"] * 4), TypeError, "integer"),
    ],
)
def test_bad_array_data_raises_before_training(x, y, error, match):
    model = small_model()
    model.compile("sgd")
    with pytest.raises(error, match=match):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(error, match=match):
        model.evaluate(x, y, verbose=0)
    assert int(to_numpy(model.optimizer.iterations)) == 0


def test_every_keras_entry_point():
    x, y = learnable_images(n=16)
    model = small_model(rampup_epochs=0)
    model.compile("sgd", metrics=["accuracy"])
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"loss", "ce", "branch_0_accuracy", "ta_2_accuracy", "fusion_1_weight",
            "accuracy"} <= set(logs)
    logs = model.test_on_batch(x, y, return_dict=True)
    assert logs["accuracy"] == pytest.approx(logs["branch_0_accuracy"])
    assert logs["rampup_weight"] == pytest.approx(0.5)
    assert model.predict_on_batch(x).shape == (16, K)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["branch_0_accuracy"] == pytest.approx(logs["branch_0_accuracy"])
    assert result["loss"] == pytest.approx(logs["loss"], rel=1e-5)
    assert isinstance(model.evaluate(x, y, verbose=0), list)
    # The steps leave the inference contract alone.
    assert tuple(model(x).shape) == (16, K)
    assert isinstance(model(x, training=True), dict)
    assert model.predict(x, verbose=0).shape == (16, K)


def test_from_config_deserializes_nested_layers():
    model = small_model()
    config = model.get_config()
    assert isinstance(config["trunk"], dict) and isinstance(config["branches"], dict)
    clone = keras_ahbf.OnlineKDModel.from_config(config)
    assert clone.num_branches == 3 and clone.built
    # `__init__` itself takes layers, not their serialized configs.
    with pytest.raises(TypeError, match="trunk"):
        keras_ahbf.OnlineKDModel(config["trunk"], model.branches)
