"""ONE: `one_loss` against NumPy, the gate, `NativeEnsembleModel` training,
saving, export, every Keras entry point, refusals, and the command line."""

import json
import os

import keras
import numpy as np
import pytest

import keras_ahbf
from keras_ahbf import cli
from keras_ahbf.config import ONE
from keras_ahbf.config import resolve_config
from keras_ahbf.methods import NativeEnsembleGate
from keras_ahbf.methods import NativeEnsembleModel
from keras_ahbf.methods import one_loss
from keras_ahbf.methods import one_resnet_cifar
from keras_ahbf.methods import shared_trunk_and_branches
from keras_ahbf.testing.data_files import tiny_cifar_npz
from keras_ahbf.testing.test_case import run_layer_test
from keras_ahbf.testing.test_utils import gradients
from keras_ahbf.testing.test_utils import learnable_images
from keras_ahbf.testing.test_utils import to_numpy

K = 4


def small_model(**kwargs):
    options = dict(num_classes=K, input_shape=(8, 8, 3))
    options.update(kwargs)
    return one_resnet_cifar(8, **options)


# ------------------------------------------------------------------ the loss


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _numpy_one(logits, ensemble, y, temperature, kd_weight, rampup=1.0, sample_weight=None):
    """The authors' loss (`cifar_one.py`, `KLLoss`) in float64 NumPy, one branch at a time."""
    logits = [np.asarray(z, "float64") for z in logits]
    ensemble = np.asarray(ensemble, "float64")
    batch = len(y)
    weight = np.ones(batch) if sample_weight is None else np.asarray(sample_weight, "float64")

    def ce(z):
        return np.mean(-_log_softmax(z)[np.arange(batch), y] * weight)

    target = np.exp(_log_softmax(ensemble / temperature)) + 1e-7
    kl = []
    for z in logits:
        per_sample = (target * (np.log(target) - _log_softmax(z / temperature))).sum(-1)
        kl.append(temperature**2 * np.mean(per_sample * weight))
    ce_terms = [ce(z) for z in logits]
    ce_ensemble = ce(ensemble)
    total = sum(ce_terms) + ce_ensemble + rampup * kd_weight * sum(kl)
    return ce_terms, ce_ensemble, kl, total


@pytest.mark.parametrize(
    "branches, temperature, kd_weight, weighted",
    [(3, 3.0, 1.0, False), (2, 1.0, 0.5, True), (4, 2.5, 2.0, True)],
)
def test_one_loss_matches_numpy(branches, temperature, kd_weight, weighted):
    rng = np.random.default_rng(branches)
    batch = 6
    logits = [rng.normal(size=(batch, 5)).astype("float32") * 3 for _ in range(branches)]
    gate = rng.dirichlet(np.ones(branches), size=batch)
    ensemble = sum(gate[:, b : b + 1] * logits[b] for b in range(branches)).astype("float32")
    y = rng.integers(0, 5, batch)
    sample_weight = rng.uniform(0.2, 2.0, batch).astype("float32") if weighted else None
    terms = one_loss([keras.ops.convert_to_tensor(z) for z in logits], ensemble, y,
                     temperature=temperature, kd_weight=kd_weight, sample_weight=sample_weight)
    ce, ce_e, kl, total = _numpy_one(logits, ensemble, y, temperature, kd_weight,
                                     sample_weight=sample_weight)
    np.testing.assert_allclose([to_numpy(t) for t in terms["ce_terms"]], ce, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(terms["ce_ensemble"]), ce_e, rtol=1e-5)
    np.testing.assert_allclose([to_numpy(t) for t in terms["kl_terms"]], kl, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["ce"]), sum(ce) + ce_e, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(terms["kd"]), sum(kl), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["total"]), total, rtol=1e-5)
    # Detaching the teacher changes gradients, never values; the ramp-up
    # weight scales the KL part only.
    attached = one_loss(logits, ensemble, y, temperature=temperature, kd_weight=kd_weight,
                        stop_teacher_gradient=False, sample_weight=sample_weight)
    np.testing.assert_allclose(to_numpy(attached["total"]), total, rtol=1e-5)
    half = one_loss(logits, ensemble, y, temperature=temperature, kd_weight=kd_weight,
                    rampup_weight=0.25, sample_weight=sample_weight)
    _, _, _, ramped = _numpy_one(logits, ensemble, y, temperature, kd_weight, 0.25, sample_weight)
    np.testing.assert_allclose(to_numpy(half["total"]), ramped, rtol=1e-5)


@pytest.mark.parametrize("stop", [True, False])
def test_the_detached_teacher_learns_from_its_cross_entropy_only(stop):
    rng = np.random.default_rng(7)
    batch, classes = 5, 4
    logits = [rng.normal(size=(batch, classes)).astype("float32") for _ in range(3)]
    ensemble = rng.normal(size=(batch, classes)).astype("float32")
    y = rng.integers(0, classes, batch)

    def total(e):
        return one_loss(logits, e, y, temperature=3.0, stop_teacher_gradient=stop)["total"]

    (grad,) = gradients(total, [ensemble])
    p = np.exp(_log_softmax(ensemble.astype("float64")))
    ce_grad = (p - np.eye(classes)[y]) / batch
    if stop:
        np.testing.assert_allclose(grad, ce_grad, rtol=1e-4, atol=1e-6)
    else:
        assert not np.allclose(grad, ce_grad, atol=1e-4)


def test_identical_branches_and_teacher_have_no_kl():
    z = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    terms = one_loss([z, z, z], z, np.array([0, 1, 2, 0]))
    assert float(to_numpy(terms["kd"])) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda z, e, y: one_loss(z[:1], e, y), ValueError, "len\\(logits\\)=1"),
        (lambda z, e, y: one_loss(z[0], e, y), TypeError, "logits"),
        (lambda z, e, y: one_loss(z, None, y), TypeError, "ensemble_logits"),
        (lambda z, e, y: one_loss(z, e[:, :2], y), ValueError, "ensemble_logits"),
        (lambda z, e, y: one_loss(z, e, y, temperature=0.0), ValueError, "temperature=0.0"),
        (lambda z, e, y: one_loss(z, e, y, kd_weight=-1.0), ValueError, "kd_weight=-1.0"),
        (lambda z, e, y: one_loss(z, e, y, stop_teacher_gradient=1), TypeError,
         "stop_teacher_gradient"),
        (lambda z, e, y: one_loss(z, e, y[:2]), ValueError, "labels|y_true|batch"),
        (lambda z, e, y: one_loss(z, e, y, sample_weight=np.ones(3, "float32")), ValueError,
         "sample_weight"),
    ],
)
def test_one_loss_refuses_bad_arguments(call, error, match):
    z = [np.zeros((4, 3), "float32"), np.ones((4, 3), "float32")]
    with pytest.raises(error, match=match):
        call(z, np.zeros((4, 3), "float32"), np.array([0, 1, 2, 0]))


# ------------------------------------------------------------------ the gate


def test_gate_layer_contract_and_value():
    x = np.random.default_rng(1).normal(size=(3, 4, 4, 6)).astype("float32")
    gate = run_layer_test(NativeEnsembleGate, {"num_branches": 3}, x,
                          expected_output_shape=(3, 3), expected_num_trainable_weights=4,
                          expected_num_non_trainable_weights=2)
    kernel, bias = (to_numpy(v) for v in gate.dense.weights)
    gamma, beta = to_numpy(gate.batch_norm.gamma), to_numpy(gate.batch_norm.beta)
    mean = to_numpy(gate.batch_norm.moving_mean)
    var = to_numpy(gate.batch_norm.moving_variance)
    scores = x.astype("float64").mean(axis=(1, 2)) @ kernel + bias
    scores = np.maximum((scores - mean) / np.sqrt(var + 1e-5) * gamma + beta, 0.0)
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(to_numpy(gate(x, training=False)), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="num_branches=0"):
        NativeEnsembleGate(0)


# ------------------------------------------------------------------ the model


def test_inference_runs_branch_0_and_all_outputs_the_gated_ensemble():
    model = small_model()
    x, _ = learnable_images(n=5)
    assert tuple(model(x).shape) == (5, K)
    out = model.all_outputs(x)
    assert set(out) == {"branch_logits", "gate", "ensemble_logits"}
    assert len(out["branch_logits"]) == ONE.num_peers == 3
    np.testing.assert_allclose(to_numpy(out["branch_logits"][0]), to_numpy(model(x)),
                               rtol=1e-5, atol=1e-6)
    logits = [to_numpy(z) for z in out["branch_logits"]]
    gate = to_numpy(out["gate"])
    assert gate.shape == (5, 3)
    np.testing.assert_allclose(gate.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(out["ensemble_logits"]),
                               sum(gate[:, b : b + 1] * logits[b] for b in range(3)),
                               rtol=1e-5, atol=1e-5)
    # The branches start from different weights on one shared trunk.
    assert not np.allclose(logits[0], logits[1])
    assert model.num_classes == K and model.target_metric == "peer_0_accuracy"
    assert model.method_title == "ONE"
    assert (model.temperature, model.kd_weight, model.rampup_epochs) == (3.0, 1.0, 80)


def test_compute_loss_equals_one_loss_plus_weight_decay():
    model = small_model(weight_decay=1e-3, temperature=2.0, rampup_epochs=0)
    model.compile("sgd")
    x, y = learnable_images(n=8)
    out = model.all_outputs(x)
    got = to_numpy(model.compute_loss(x, y, out, training=False))
    logits = [to_numpy(z) for z in out["branch_logits"]]
    _, _, _, total = _numpy_one(logits, to_numpy(out["ensemble_logits"]), y, 2.0, 1.0)
    l2 = 0.5e-3 * sum(float((to_numpy(v).astype("float64") ** 2).sum())
                      for v in model.trainable_variables)
    np.testing.assert_allclose(got, total + l2, rtol=1e-5)


def test_fit_learns_and_reports_every_branch_and_the_ensemble():
    x, y = learnable_images(n=64)
    model = small_model(rampup_epochs=0)
    model.compile(keras.optimizers.SGD(0.02, momentum=0.9, nesterov=True))
    logs = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history
    for name in ("loss", "ce", "kd", "kd_weighted", "rampup_weight", "ce_ensemble",
                 "ce_peer_0", "kl_peer_2", "peer_0_accuracy", "peer_1_accuracy",
                 "peer_2_accuracy", "ensemble_accuracy"):
        assert name in logs, name
    assert logs["loss"][-1] < logs["loss"][0]
    assert logs["rampup_weight"] == [1.0] * 3
    np.testing.assert_allclose(logs["kd_weighted"], logs["kd"], rtol=1e-4)


def test_rampup_is_the_authors_sigmoid_rampup():
    # utils/ramps.py: exp(-5 (1 - min(epoch, R) / R)^2), epochs from 0.
    x, y = learnable_images(n=16)
    model = small_model(rampup_epochs=2)
    model.compile("sgd")
    logs = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    np.testing.assert_allclose(logs["rampup_weight"], [np.exp(-5.0), np.exp(-1.25), 1.0],
                               rtol=1e-5)


def test_every_keras_entry_point():
    x, y = learnable_images(n=16)
    model = small_model()
    model.compile("sgd", metrics=["accuracy"])
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"loss", "peer_0_accuracy", "peer_2_accuracy", "ensemble_accuracy",
            "accuracy"} <= set(logs)
    logs = model.test_on_batch(x, y, return_dict=True)
    assert logs["accuracy"] == pytest.approx(logs["peer_0_accuracy"])
    assert model.predict_on_batch(x).shape == (16, K)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["peer_0_accuracy"] == pytest.approx(logs["peer_0_accuracy"])
    assert isinstance(model.evaluate(x, y, verbose=0), list)
    assert tuple(model(x).shape) == (16, K)
    assert model.predict(x, verbose=0).shape == (16, K)


def test_save_load_round_trip_and_target_export(tmp_path):
    x, y = learnable_images(n=16)
    model = small_model(temperature=2.0, rampup_epochs=4, weight_decay=1e-4)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "one.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_ahbf.NativeEnsembleModel)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    ours, theirs = model.all_outputs(x), loaded.all_outputs(x)
    for key in ("gate", "ensemble_logits"):
        np.testing.assert_allclose(to_numpy(theirs[key]), to_numpy(ours[key]),
                                   rtol=1e-6, atol=1e-6)
    assert (loaded.temperature, loaded.rampup_epochs, loaded.weight_decay) == (2.0, 4, 1e-4)
    assert int(to_numpy(loaded.epoch)) == 1
    loaded.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0)

    target = model.target_model(name="deployed")
    assert not isinstance(target, NativeEnsembleModel) and target.name == "deployed"
    assert target.count_params() == (model.trunk.count_params()
                                     + model.branches.stages[0].count_params()
                                     + model.branches.heads[0].count_params())
    target_path = os.path.join(tmp_path, "target.keras")
    target.save(target_path)
    reloaded = keras.saving.load_model(target_path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def _parts(branches=3):
    return shared_trunk_and_branches("resnet8", K, branches, (8, 8, 3))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: NativeEnsembleModel(*_parts(1)), ValueError, "num_branches=1"),
        (lambda: NativeEnsembleModel("resnet8", _parts()[1]), TypeError, "trunk"),
        (lambda: NativeEnsembleModel(_parts()[0], [1, 2]), TypeError, "branches"),
        (lambda: NativeEnsembleModel(*_parts(), temperature=0.0), ValueError, "temperature=0.0"),
        (lambda: NativeEnsembleModel(*_parts(), kd_weight=-2.0), ValueError, "kd_weight=-2.0"),
        (lambda: NativeEnsembleModel(*_parts(), rampup_epochs=-1), ValueError,
         "rampup_epochs=-1"),
        (lambda: NativeEnsembleModel(*_parts(), rampup_shape="cosine"), ValueError,
         "rampup_shape='cosine'"),
        (lambda: NativeEnsembleModel(*_parts(), stop_teacher_gradient="yes"), TypeError,
         "stop_teacher_gradient"),
        (lambda: small_model(num_peers=1), ValueError, "num_peers=1"),
        (lambda: small_model(num_classes=0), ValueError, "num_classes"),
        (lambda: one_resnet_cifar(9, num_classes=K), ValueError, "depth=9"),
    ],
)
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_compile_refuses_a_loss_and_fit_bad_labels():
    model = small_model(num_peers=2)
    x, _ = learnable_images(n=8)
    with pytest.raises(ValueError, match="loss="):
        model.compile("sgd", loss="mse")
    model.compile("sgd")
    with pytest.raises(ValueError, match="y"):
        model.fit(x, np.full(8, K), verbose=0)


def test_config_defaults_are_the_authors_recipe():
    config = resolve_config("cifar100", method="one")
    assert (config.temperature, config.kd_weight, config.stop_teacher_gradient) == (3.0, 1.0, True)
    assert (config.num_peers, config.rampup_epochs, config.epochs) == (3, 80, 300)
    # The 80-epoch ramp-up of 300 epochs scales with --epochs.
    assert resolve_config("cifar100", method="one", epochs=30).rampup_epochs == 8


# --------------------------------------------------------- the command line


@pytest.mark.large
def test_cli_train_evaluate_export(tmp_path, capsys):
    npz = tiny_cifar_npz(tmp_path / "cifar10.npz")
    run = str(tmp_path / "run")
    options = ["--method", "one", "--dataset", "cifar10", "--data-dir", npz,
               "--backbone", "resnet8", "--batch-size", "4", "--verbose", "0"]
    assert cli.main(["train", *options, "--epochs", "1", "--output", run]) == 0
    out = capsys.readouterr().out
    assert "ONE run finished" in out and "peer_0 (target)" in out
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    assert summary["kind"] == "one" and summary["config"]["method"] == "one"
    assert set(summary["peer_top1"]) == {"peer_0", "peer_1", "peer_2"}
    assert summary["target_top1_last"] == summary["peer_top1"]["peer_0"]["last"]
    assert set(summary["teacher_top1"]) == {"ensemble"}
    assert summary["config"]["temperature"] == 3.0 and summary["config"]["num_peers"] == 3
    target = keras.saving.load_model(os.path.join(run, "target.keras"))
    assert target.output_shape == (None, 10)

    assert cli.main(["train", *options, "--epochs", "1", "--output", run]) == 0
    capsys.readouterr()

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
        (["--method", "one", "--num-branches", "3"], "num_branches"),
        (["--method", "one", "--baseline"], "baseline"),
        (["--method", "one", "--num-peers", "1"], "num_peers=1"),
    ],
)
def test_cli_refuses_options_of_another_method(tmp_path, capsys, extra, match):
    rc = cli.main(["train", "--dataset", "digits", *extra, "--output", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "r")
