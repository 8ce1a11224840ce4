"""Tests for keras_ahbf.training: recipes, scaling, schedule, builders."""

import json

import keras
import numpy as np
import pytest

from keras_ahbf import models as ahbf_models
from keras_ahbf import training
from keras_ahbf.online_kd_model import OnlineKDModel
from keras_ahbf.testing.test_utils import to_numpy

# Fastest for a few tiny steps: eager TensorFlow (no tracing), jitted JAX
# (its eager mode is slow), plain PyTorch.
FAST = dict(
    run_eagerly=keras.backend.backend() == "tensorflow",
    jit_compile=keras.backend.backend() == "jax",
)


def test_cifar_defaults_are_the_paper_recipe():
    for dataset in ("cifar10", "cifar100"):
        c = training.resolve_config(dataset)
        assert c.backbone == "resnet32"
        assert (c.num_branches, c.aux) == (4, 4)
        assert c.epochs == 300
        assert c.batch_size == 128
        assert c.lr == 0.1 and c.momentum == 0.9 and c.nesterov is True
        assert c.milestones == (150, 225) and c.lr_decay == 0.1
        assert c.weight_decay == 5e-4
        assert c.rampup_epochs == 240
        assert (c.temperature, c.kd_weight, c.lambda_ta, c.lambda_branch) == (3.0, 1.5, 2.0, 4.0)
        assert c.stop_teacher_gradient is False


def test_imagenet_recipe():
    c = training.resolve_config("imagenet2012")
    assert (c.epochs, c.batch_size, c.milestones, c.weight_decay) == (90, 256, (30, 60), 1e-4)
    assert c.backbone == "resnet18_imagenet"


@pytest.mark.parametrize(
    "epochs, milestones, rampup",
    [(300, (150, 225), 240), (30, (15, 23), 24), (10, (5, 8), 8), (2, (1,), 2), (1, (), 1)],
)
def test_milestones_and_rampup_scale_with_epochs(epochs, milestones, rampup):
    c = training.resolve_config("cifar100", epochs=epochs)
    # Independent check: round-half-up of the 300-epoch values.
    expected = sorted({int(np.floor(m * epochs / 300 + 0.5)) for m in (150, 225)})
    expected = tuple(m for m in expected if 0 < m < epochs)
    assert c.milestones == expected == milestones
    assert c.rampup_epochs == rampup == int(np.floor(240 * epochs / 300 + 0.5))


def test_explicit_milestones_and_rampup_are_not_scaled():
    c = training.resolve_config("cifar10", epochs=20, milestones=(3, 7), rampup_epochs=0)
    assert c.milestones == (3, 7) and c.rampup_epochs == 0
    assert training.resolve_config("cifar10", epochs=20, milestones=()).milestones == ()


@pytest.mark.parametrize(
    "options, name",
    [
        (dict(epochs=0), "epochs"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=0.0), "lr"),
        (dict(milestones=(5, 3)), "milestones"),
        (dict(batch_size=0), "batch_size"),
        (dict(num_branches=1), "num_branches"),
        (dict(aux=-1), "aux"),
        (dict(temperature=0.0), "temperature"),
        (dict(momentum=1.0), "momentum"),
        (dict(rampup_epochs=-2), "rampup_epochs"),
        (dict(backbone="resnet33x"), "resnet33x"),
        (dict(epochs=2.5), "epochs"),
        (dict(nonsense=1), "nonsense"),
    ],
)
def test_bad_options_raise_naming_them(options, name):
    with pytest.raises((ValueError, TypeError), match=name):
        training.resolve_config("cifar100", **options)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset"):
        training.resolve_config("mnist")


def test_config_json_round_trip():
    c = training.resolve_config("digits", epochs=3, data_dir="/x", train_limit=10)
    d = json.loads(json.dumps(c.to_dict()))
    assert training.TrainConfig.from_dict(d) == c
    assert set(c.kd_options()) == set(training.KD_OPTIONS)


def test_steps_per_epoch():
    assert training.steps_per_epoch(50000, 128) == 391
    assert training.steps_per_epoch(50000, 128, drop_remainder=True) == 390
    assert training.steps_per_epoch(3, 128) == 1


def test_multistep_lr_matches_numpy():
    schedule = training.MultiStepLR(0.1, [2, 4], steps_per_epoch=3, gamma=0.1)
    steps = np.arange(0, 20)
    got = np.array([float(to_numpy(schedule(s))) for s in steps])
    epochs = steps // 3
    expected = 0.1 * 0.1 ** ((epochs >= 2).astype(int) + (epochs >= 4).astype(int))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Serialisable.
    clone = training.MultiStepLR.from_config(schedule.get_config())
    assert float(to_numpy(clone(13))) == pytest.approx(1e-3)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert isinstance(restored, training.MultiStepLR)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(initial_learning_rate=0.0, milestones=[1], steps_per_epoch=1),
        dict(initial_learning_rate=0.1, milestones=[3, 1], steps_per_epoch=1),
        dict(initial_learning_rate=0.1, milestones=[1], steps_per_epoch=0),
        dict(initial_learning_rate=0.1, milestones=[1], steps_per_epoch=1, gamma=0.0),
    ],
)
def test_multistep_lr_validation(kwargs):
    with pytest.raises((ValueError, TypeError)):
        training.MultiStepLR(**kwargs)


def test_build_optimizer():
    c = training.resolve_config("cifar100", epochs=4)
    opt = training.build_optimizer(c, steps=10)
    assert isinstance(opt, keras.optimizers.SGD)
    assert opt.nesterov and opt.momentum == pytest.approx(0.9)
    schedule = keras.saving.deserialize_keras_object(opt.get_config()["learning_rate"])
    assert isinstance(schedule, training.MultiStepLR)
    assert schedule.milestones == [2, 3]
    assert schedule.steps_per_epoch == 10
    # Coupled L2 lives in the model, not in the optimizer.
    assert not opt.weight_decay


def _tiny_config(**kw):
    base = dict(backbone="resnet8", num_branches=2, aux=1, epochs=2, batch_size=8)
    base.update(kw)
    return training.resolve_config("digits", **base)


def test_build_model_uses_the_config():
    c = _tiny_config(num_branches=3, temperature=2.0, weight_decay=1e-3)
    model = training.build_model(c, num_classes=10, input_shape=(8, 8, 1))
    assert isinstance(model, OnlineKDModel)
    assert model.num_branches == 3
    assert model.temperature == 2.0 and model.weight_decay == 1e-3
    assert model.branches.depths == [1, 2, 3]
    assert tuple(model.target_model().input_shape) == (None, 8, 8, 1)


def test_build_model_defers_to_build_backbone(monkeypatch):
    calls = []

    def fake_get_builder(name):
        def builder(**kwargs):
            calls.append((name, kwargs))
            return "built"

        return builder

    monkeypatch.setattr(ahbf_models, "get_builder", fake_get_builder, raising=False)
    c = _tiny_config()
    assert training.build_model(c, 10, (8, 8, 1)) == "built"
    name, kwargs = calls[-1]
    assert name == "resnet8"
    assert kwargs["num_classes"] == 10 and kwargs["num_branches"] == 2
    assert kwargs["input_shape"] == (8, 8, 1) and kwargs["rampup_epochs"] == c.rampup_epochs


def test_resolve_backbone_names_the_valid_ones():
    assert training.resolve_backbone("ResNet-14").keywords == {"depth": 14}
    with pytest.raises(ValueError, match="Unknown backbone 'resnet7'.*resnet8"):
        training.resolve_backbone("resnet7")
    with pytest.raises(ValueError, match="Received: name=14"):
        training.resolve_backbone(14)


def test_compile_model_and_fit_one_epoch_follow_the_schedule():
    c = _tiny_config(milestones=(1,), lr=0.05)
    model = training.build_model(c, 10, (8, 8, 1))
    training.compile_model(model, c, steps=2, **FAST)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 16)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(to_numpy(model.optimizer.iterations)) == 2
    assert float(to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.005)


def _np_cross_entropy(logits, labels):
    logits = logits.astype("float64")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def test_baseline_coupled_l2_matches_numpy():
    c = _tiny_config(weight_decay=1e-2)
    baseline = training.build_baseline(c, 10, (8, 8, 1))
    assert isinstance(baseline, ahbf_models.BaselineModel)
    assert not isinstance(baseline, OnlineKDModel)
    training.compile_baseline(baseline, c, steps=2, **FAST)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 4)
    logits = baseline(x, training=False)
    weights = [to_numpy(v) for v in baseline.trainable_variables]
    l2 = 0.5 * 1e-2 * sum(float(np.sum(w.astype("float64") ** 2)) for w in weights)
    got = float(to_numpy(baseline.compute_loss(x, y, logits, training=False)))
    assert got == pytest.approx(_np_cross_entropy(to_numpy(logits), y) + l2, rel=1e-5)
    # One path: a loss term, not regularizers on the variables.
    assert not baseline.losses
    assert all(v.regularizer is None for v in baseline.trainable_variables)
    # The weight decay is saved with the model.
    config = baseline.get_config()
    restored = ahbf_models.BaselineModel.from_config(config)
    assert isinstance(restored, ahbf_models.BaselineModel) and restored.weight_decay == 1e-2
    # Without weight decay the loss is the cross-entropy alone.
    baseline.weight_decay = 0.0
    got = float(to_numpy(baseline.compute_loss(x, y, logits, training=False)))
    assert got == pytest.approx(_np_cross_entropy(to_numpy(logits), y), rel=1e-5)


def test_baseline_saves_its_weight_decay_and_exports_a_plain_network(tmp_path):
    baseline = training.build_baseline(_tiny_config(weight_decay=3e-3), 10, (8, 8, 1))
    path = str(tmp_path / "baseline.keras")
    baseline.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is ahbf_models.BaselineModel and loaded.weight_decay == 3e-3
    target = loaded.target_model()
    assert type(target).__name__ == "Functional" and target.name == baseline.name
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(to_numpy(target(x)), to_numpy(baseline(x)), rtol=1e-5, atol=1e-6)


def test_baseline_has_the_target_architecture_and_trains():
    c = _tiny_config()
    keras.utils.set_random_seed(3)
    ahbf = training.build_model(c, 10, (8, 8, 1))
    keras.utils.set_random_seed(3)
    baseline = training.build_baseline(c, 10, (8, 8, 1))
    target = ahbf.target_model()
    assert baseline.count_params() == target.count_params()
    # Same seed, same initial target weights.
    for a, b in zip(baseline.weights, target.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    training.compile_baseline(baseline, c, steps=2, **FAST)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 16)
    logs = baseline.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert "branch_0_accuracy" in logs and np.isfinite(logs["loss"][0])
