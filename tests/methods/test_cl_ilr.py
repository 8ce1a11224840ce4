"""CL-ILR: `cl_ilr_loss` and its gradients against NumPy, the backpropagation
rescaling, `CollaborativeLearningModel` training, saving, export, every Keras
entry point, refusals, and the command line."""

import json
import os

import keras
import numpy as np
import pytest

import keras_ahbf
from keras_ahbf import cli
from keras_ahbf.config import resolve_config
from keras_ahbf.methods import CollaborativeLearningModel
from keras_ahbf.methods import cl_ilr_loss
from keras_ahbf.methods import cl_ilr_resnet_cifar
from keras_ahbf.methods import shared_trunk_and_branches
from keras_ahbf.testing.data_files import tiny_cifar_npz
from keras_ahbf.testing.test_utils import gradients
from keras_ahbf.testing.test_utils import learnable_images
from keras_ahbf.testing.test_utils import to_numpy

K = 4


def small_model(**kwargs):
    options = dict(num_classes=K, input_shape=(8, 8, 3))
    options.update(kwargs)
    return cl_ilr_resnet_cifar(8, **options)


# ------------------------------------------------------------------ the loss


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _targets(logits, temperature):
    """Each head's target: the softened mean of the other heads' logits."""
    heads = len(logits)
    return [
        np.exp(_log_softmax(sum(logits[j] for j in range(heads) if j != h)
                            / (heads - 1) / temperature))
        for h in range(heads)
    ]


def _numpy_cl(logits, y, temperature, kd_weight, ce_weight, rampup=1.0, sample_weight=None):
    """The collaborative-learning loss in float64 NumPy, one head at a time."""
    logits = [np.asarray(z, "float64") for z in logits]
    batch = len(y)
    weight = np.ones(batch) if sample_weight is None else np.asarray(sample_weight, "float64")
    ce, kl = [], []
    for z, t in zip(logits, _targets(logits, temperature)):
        ce.append(np.mean(-_log_softmax(z)[np.arange(batch), y] * weight))
        per_sample = (t * (np.log(t) - _log_softmax(z / temperature))).sum(-1)
        kl.append(temperature**2 * np.mean(per_sample * weight))
    return ce, kl, ce_weight * sum(ce) + rampup * kd_weight * sum(kl)


@pytest.mark.parametrize(
    "heads, temperature, kd_weight, ce_weight, weighted",
    [(4, 2.0, 0.5, 0.5, False), (2, 1.0, 1.0, 1.0, True), (3, 3.0, 0.7, 0.2, True)],
)
def test_cl_ilr_loss_matches_numpy(heads, temperature, kd_weight, ce_weight, weighted):
    rng = np.random.default_rng(heads)
    batch = 6
    logits = [rng.normal(size=(batch, 5)).astype("float32") * 3 for _ in range(heads)]
    y = rng.integers(0, 5, batch)
    sample_weight = rng.uniform(0.2, 2.0, batch).astype("float32") if weighted else None
    options = dict(temperature=temperature, kd_weight=kd_weight, ce_weight=ce_weight,
                   sample_weight=sample_weight)
    terms = cl_ilr_loss([keras.ops.convert_to_tensor(z) for z in logits], y, **options)
    ce, kl, total = _numpy_cl(logits, y, temperature, kd_weight, ce_weight,
                              sample_weight=sample_weight)
    np.testing.assert_allclose([to_numpy(t) for t in terms["ce_terms"]], ce, rtol=1e-5)
    np.testing.assert_allclose([to_numpy(t) for t in terms["kl_terms"]], kl, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["ce"]), sum(ce), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(terms["kd"]), sum(kl), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["kd_weighted"]), kd_weight * sum(kl),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["total"]), total, rtol=1e-5)
    attached = cl_ilr_loss(logits, y, stop_teacher_gradient=False, **options)
    np.testing.assert_allclose(to_numpy(attached["total"]), total, rtol=1e-5)
    ramped = cl_ilr_loss(logits, y, rampup_weight=0.25, **options)
    np.testing.assert_allclose(
        to_numpy(ramped["total"]),
        _numpy_cl(logits, y, temperature, kd_weight, ce_weight, 0.25, sample_weight)[2],
        rtol=1e-5,
    )


def test_detached_targets_give_each_head_its_own_gradient():
    # d total / d z_h = ce_weight (softmax(z_h) - y) / B + kd_weight T (softmax(z_h / T) - t_h) / B
    rng = np.random.default_rng(5)
    batch, classes, heads, temperature = 5, 4, 3, 2.0
    logits = [rng.normal(size=(batch, classes)).astype("float32") for _ in range(heads)]
    y = rng.integers(0, classes, batch)

    def total(*z):
        return cl_ilr_loss(list(z), y, temperature=temperature, kd_weight=0.5,
                           ce_weight=0.5)["total"]

    grads = gradients(total, logits)
    wide = [z.astype("float64") for z in logits]
    for z, t, grad in zip(wide, _targets(wide, temperature), grads):
        expected = (0.5 * (np.exp(_log_softmax(z)) - np.eye(classes)[y])
                    + 0.5 * temperature * (np.exp(_log_softmax(z / temperature)) - t)) / batch
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_identical_heads_have_no_kl():
    z = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    terms = cl_ilr_loss([z, z, z, z], np.array([0, 1, 2, 0]))
    assert float(to_numpy(terms["kd"])) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda z, y: cl_ilr_loss(z[:1], y), ValueError, "len\\(logits\\)=1"),
        (lambda z, y: cl_ilr_loss(z[0], y), TypeError, "logits"),
        (lambda z, y: cl_ilr_loss(z, y, temperature=0.0), ValueError, "temperature=0.0"),
        (lambda z, y: cl_ilr_loss(z, y, kd_weight=-1.0), ValueError, "kd_weight=-1.0"),
        (lambda z, y: cl_ilr_loss(z, y, ce_weight=-1.0), ValueError, "ce_weight=-1.0"),
        (lambda z, y: cl_ilr_loss(z, y, stop_teacher_gradient=1), TypeError,
         "stop_teacher_gradient"),
        (lambda z, y: cl_ilr_loss([z[0], z[1][:, :2]], y), ValueError, "logits"),
        (lambda z, y: cl_ilr_loss(z, y[:2]), ValueError, "labels|y_true|batch"),
    ],
)
def test_cl_ilr_loss_refuses_bad_arguments(call, error, match):
    z = [np.zeros((4, 3), "float32"), np.ones((4, 3), "float32")]
    with pytest.raises(error, match=match):
        call(z, np.array([0, 1, 2, 0]))


# ------------------------------------------------------------------ the model


def test_inference_runs_head_0_and_all_outputs_every_head():
    model = small_model()
    x, _ = learnable_images(n=5)
    assert tuple(model(x).shape) == (5, K)
    out = model.all_outputs(x)
    assert set(out) == {"branch_logits"} and len(out["branch_logits"]) == 4
    np.testing.assert_allclose(to_numpy(out["branch_logits"][0]), to_numpy(model(x)),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(to_numpy(out["branch_logits"][0]), to_numpy(out["branch_logits"][1]))
    assert model.num_classes == K and model.target_metric == "peer_0_accuracy"
    assert model.method_title == "CL-ILR"
    assert (model.temperature, model.kd_weight, model.ce_weight, model.ilr) == (2.0, 0.5, 0.5, True)
    assert model.gradient_scale.scale == 0.25


def test_ilr_rescales_the_gradient_through_the_shared_layers():
    x, y = learnable_images(n=4)
    model = small_model(num_peers=3)
    config = model.get_config()
    config["ilr"] = False
    plain = CollaborativeLearningModel.from_config(config)
    plain.set_weights(model.get_weights())

    def loss_of(m):
        def fn(images):
            logits = m.all_outputs(images, training=False)["branch_logits"]
            return cl_ilr_loss(logits, y)["total"]
        return fn

    np.testing.assert_allclose(to_numpy(loss_of(model)(x)), to_numpy(loss_of(plain)(x)),
                               rtol=1e-6)
    # Everything reaching the images flows through the shared layers.
    (scaled,) = gradients(loss_of(model), [x])
    (summed,) = gradients(loss_of(plain), [x])
    assert np.abs(summed).max() > 0
    np.testing.assert_allclose(scaled, summed / 3.0, rtol=1e-4, atol=1e-7)


def test_compute_loss_equals_cl_ilr_loss_plus_weight_decay():
    model = small_model(weight_decay=1e-3, temperature=3.0, ce_weight=0.8)
    model.compile("sgd")
    x, y = learnable_images(n=8)
    out = model.all_outputs(x)
    got = to_numpy(model.compute_loss(x, y, out, training=False))
    _, _, total = _numpy_cl([to_numpy(z) for z in out["branch_logits"]], y, 3.0, 0.5, 0.8)
    l2 = 0.5e-3 * sum(float((to_numpy(v).astype("float64") ** 2).sum())
                      for v in model.trainable_variables)
    np.testing.assert_allclose(got, total + l2, rtol=1e-5)


def test_fit_learns_and_reports_every_head():
    x, y = learnable_images(n=64)
    model = small_model(num_peers=3)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
    logs = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history
    for name in ("loss", "ce", "kd", "kd_weighted", "rampup_weight", "ce_peer_0",
                 "kl_peer_2", "peer_0_accuracy", "peer_2_accuracy", "ensemble_accuracy"):
        assert name in logs, name
    assert logs["loss"][-1] < logs["loss"][0]
    assert logs["rampup_weight"] == [1.0] * 3
    np.testing.assert_allclose(logs["kd_weighted"], 0.5 * np.asarray(logs["kd"]), rtol=1e-4)


def test_every_keras_entry_point_and_rampup():
    x, y = learnable_images(n=16)
    model = small_model(num_peers=2, rampup_epochs=2, rampup_shape="linear")
    model.compile("sgd", metrics=["accuracy"])
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"loss", "peer_0_accuracy", "peer_1_accuracy", "ensemble_accuracy",
            "accuracy"} <= set(logs)
    logs = model.test_on_batch(x, y, return_dict=True)
    assert logs["accuracy"] == pytest.approx(logs["peer_0_accuracy"])
    assert model.predict_on_batch(x).shape == (16, K)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["peer_0_accuracy"] == pytest.approx(logs["peer_0_accuracy"])
    assert isinstance(model.evaluate(x, y, verbose=0), list)
    assert model.predict(x, verbose=0).shape == (16, K)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    np.testing.assert_allclose(history["rampup_weight"], [0.0, 0.5, 1.0], atol=1e-6)


def test_save_load_round_trip_and_target_export(tmp_path):
    x, y = learnable_images(n=16)
    model = small_model(num_peers=3, temperature=3.0, ilr=False, weight_decay=1e-4)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "cl_ilr.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_ahbf.CollaborativeLearningModel)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    for a, b in zip(loaded.all_outputs(x)["branch_logits"],
                    model.all_outputs(x)["branch_logits"]):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)
    assert (loaded.temperature, loaded.ilr, loaded.weight_decay) == (3.0, False, 1e-4)
    assert loaded.gradient_scale.scale == 1.0 and int(to_numpy(loaded.epoch)) == 1
    loaded.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0)

    target = model.target_model(name="deployed")
    assert not isinstance(target, CollaborativeLearningModel) and target.name == "deployed"
    target_path = os.path.join(tmp_path, "target.keras")
    target.save(target_path)
    reloaded = keras.saving.load_model(target_path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def _parts(heads=2):
    return shared_trunk_and_branches("resnet8", K, heads, (8, 8, 3))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: CollaborativeLearningModel(*_parts(1)), ValueError, "num_branches=1"),
        (lambda: CollaborativeLearningModel(None, _parts()[1]), TypeError, "trunk"),
        (lambda: CollaborativeLearningModel(_parts()[0], "heads"), TypeError, "branches"),
        (lambda: CollaborativeLearningModel(*_parts(), ilr=1), TypeError, "ilr"),
        (lambda: CollaborativeLearningModel(*_parts(), temperature=-1.0), ValueError,
         "temperature=-1.0"),
        (lambda: CollaborativeLearningModel(*_parts(), kd_weight=-2.0), ValueError,
         "kd_weight=-2.0"),
        (lambda: CollaborativeLearningModel(*_parts(), ce_weight=-2.0), ValueError,
         "ce_weight=-2.0"),
        (lambda: CollaborativeLearningModel(*_parts(), rampup_epochs=-1), ValueError,
         "rampup_epochs=-1"),
        (lambda: CollaborativeLearningModel(*_parts(), stop_teacher_gradient="no"), TypeError,
         "stop_teacher_gradient"),
        (lambda: small_model(num_peers=1), ValueError, "num_peers=1"),
        (lambda: cl_ilr_resnet_cifar(9, num_classes=K), ValueError, "depth=9"),
    ],
)
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_config_defaults():
    config = resolve_config("cifar100", method="cl-ilr")
    assert (config.temperature, config.kd_weight, config.stop_teacher_gradient) == (2.0, 0.5, True)
    assert (config.num_peers, config.rampup_epochs) == (4, 0)


# --------------------------------------------------------- the command line


@pytest.mark.large
def test_cli_train_evaluate_export(tmp_path, capsys):
    npz = tiny_cifar_npz(tmp_path / "cifar10.npz")
    run = str(tmp_path / "run")
    options = ["--method", "cl-ilr", "--dataset", "cifar10", "--data-dir", npz,
               "--backbone", "resnet8", "--batch-size", "4", "--verbose", "0",
               "--num-peers", "3"]
    assert cli.main(["train", *options, "--epochs", "1", "--output", run]) == 0
    out = capsys.readouterr().out
    assert "CL-ILR run finished" in out and "peer_0 (target)" in out
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    assert summary["kind"] == "cl-ilr" and summary["config"]["method"] == "cl-ilr"
    assert set(summary["peer_top1"]) == {"peer_0", "peer_1", "peer_2"}
    assert summary["target_top1_last"] == summary["peer_top1"]["peer_0"]["last"]
    assert set(summary["teacher_top1"]) == {"ensemble"}
    assert summary["config"]["temperature"] == 2.0 and summary["config"]["kd_weight"] == 0.5
    target = keras.saving.load_model(os.path.join(run, "target.keras"))
    assert target.output_shape == (None, 10)

    report = str(tmp_path / "eval.json")
    assert cli.main(["evaluate", run, "--json", report]) == 0
    assert "peer_0 (target)" in capsys.readouterr().out
    with open(report) as f:
        result = json.load(f)
    assert result["target_top1"] == result["metrics"]["peer_0_accuracy"]

    exported = str(tmp_path / "exported.keras")
    assert cli.main(["export", run, "--output", exported, "--no-saved-model"]) == 0
    reloaded = keras.saving.load_model(exported)
    x = np.zeros((2, 32, 32, 3), "float32")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), target.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--method", "cl-ilr", "--fusion", "se"], "fusion"),
        (["--method", "cl-ilr", "--num-peers", "1"], "num_peers=1"),
    ],
)
def test_cli_refuses_options_of_another_method(tmp_path, capsys, extra, match):
    rc = cli.main(["train", "--dataset", "digits", *extra, "--output", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "r")
