"""DML: `dml_loss` against NumPy, `MutualLearningModel` training, saving,
export, every Keras entry point, refusals, and the command line."""

import json
import os

import keras
import numpy as np
import pytest

import keras_ahbf
from keras_ahbf import cli
from keras_ahbf.methods import MutualLearningModel
from keras_ahbf.methods import dml_loss
from keras_ahbf.methods import dml_resnet_cifar
from keras_ahbf.testing.data_files import tiny_cifar_npz
from keras_ahbf.testing.test_utils import learnable_images
from keras_ahbf.testing.test_utils import to_numpy

K = 4


def small_model(**kwargs):
    options = dict(num_classes=K, input_shape=(8, 8, 3))
    options.update(kwargs)
    return dml_resnet_cifar(8, **options)


# ------------------------------------------------------------------ the loss


def _numpy_dml(logits, y, temperature, kd_weight, sample_weight=None):
    """The paper's loss in float64 NumPy, one peer and one pair at a time."""

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    logits = [np.asarray(z, "float64") for z in logits]
    peers, batch = len(logits), len(y)
    weight = np.ones(batch) if sample_weight is None else np.asarray(sample_weight, "float64")
    ce, kl = [], []
    for k in range(peers):
        ce.append(np.mean(-log_softmax(logits[k])[np.arange(batch), y] * weight))
        log_p_k = log_softmax(logits[k] / temperature)
        total = 0.0
        for other in range(peers):
            if other == k:
                continue
            log_p_l = log_softmax(logits[other] / temperature)
            per_sample = (np.exp(log_p_l) * (log_p_l - log_p_k)).sum(-1)
            total += np.mean(per_sample * weight)
        kl.append(temperature**2 * total / (peers - 1))
    return ce, kl, sum(ce) + kd_weight * sum(kl)


@pytest.mark.parametrize(
    "peers, temperature, kd_weight, weighted",
    [(2, 1.0, 1.0, False), (3, 2.5, 0.7, False), (4, 1.0, 2.0, True)],
)
def test_dml_loss_matches_numpy(peers, temperature, kd_weight, weighted):
    rng = np.random.default_rng(peers)
    batch = 6
    logits = [rng.normal(size=(batch, 5)).astype("float32") * 3 for _ in range(peers)]
    y = rng.integers(0, 5, batch)
    sample_weight = rng.uniform(0.2, 2.0, batch).astype("float32") if weighted else None
    terms = dml_loss(
        [keras.ops.convert_to_tensor(z) for z in logits], y, temperature=temperature,
        kd_weight=kd_weight, sample_weight=sample_weight,
    )
    ce, kl, total = _numpy_dml(logits, y, temperature, kd_weight, sample_weight)
    np.testing.assert_allclose([to_numpy(t) for t in terms["ce_terms"]], ce, rtol=1e-5)
    np.testing.assert_allclose([to_numpy(t) for t in terms["kl_terms"]], kl,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["ce"]), sum(ce), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(terms["kd"]), sum(kl), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["total"]), total, rtol=1e-5)
    # Detaching the teachers changes gradients, never values; the ramp-up
    # weight scales the KL part only.
    attached = dml_loss(logits, y, temperature=temperature, kd_weight=kd_weight,
                        stop_teacher_gradient=False, sample_weight=sample_weight)
    np.testing.assert_allclose(to_numpy(attached["total"]), total, rtol=1e-5)
    half = dml_loss(logits, y, temperature=temperature, kd_weight=kd_weight,
                    rampup_weight=0.5, sample_weight=sample_weight)
    np.testing.assert_allclose(to_numpy(half["total"]), sum(ce) + 0.5 * kd_weight * sum(kl),
                               rtol=1e-5)


def test_identical_peers_have_no_kl():
    z = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    terms = dml_loss([z, z, z], np.array([0, 1, 2, 0]))
    assert float(to_numpy(terms["kd"])) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda z, y: dml_loss(z[:1], y), ValueError, "len\\(logits\\)=1"),
        (lambda z, y: dml_loss(z[0], y), TypeError, "logits"),
        (lambda z, y: dml_loss(z, y, temperature=0.0), ValueError, "temperature=0.0"),
        (lambda z, y: dml_loss(z, y, kd_weight=-1.0), ValueError, "kd_weight=-1.0"),
        (lambda z, y: dml_loss(z, y, stop_teacher_gradient=1), TypeError,
         "stop_teacher_gradient"),
        (lambda z, y: dml_loss([z[0], z[1][:, :2]], y), ValueError, "logits"),
        (lambda z, y: dml_loss(z, y[:2]), ValueError, "labels|y_true|batch"),
    ],
)
def test_dml_loss_refuses_bad_arguments(call, error, match):
    z = [np.zeros((4, 3), "float32"), np.ones((4, 3), "float32")]
    with pytest.raises(error, match=match):
        call(z, np.array([0, 1, 2, 0]))


# ------------------------------------------------------------------ the model


def test_inference_runs_peer_0_only_and_all_outputs_every_peer():
    model = small_model(num_peers=3)
    x, _ = learnable_images(n=5)
    assert tuple(model(x).shape) == (5, K)
    out = model.all_outputs(x)
    assert set(out) == {"peer_logits"} and len(out["peer_logits"]) == 3
    np.testing.assert_allclose(to_numpy(out["peer_logits"][0]), to_numpy(model(x)),
                               rtol=1e-5, atol=1e-6)
    # The peers start from different weights.
    assert not np.allclose(to_numpy(out["peer_logits"][0]), to_numpy(out["peer_logits"][1]))
    assert model.num_classes == K and model.target_metric == "peer_0_accuracy"


def test_compute_loss_equals_dml_loss_plus_weight_decay():
    model = small_model(weight_decay=1e-3, temperature=2.0)
    model.compile("sgd")
    x, y = learnable_images(n=8)
    out = model.all_outputs(x)
    got = to_numpy(model.compute_loss(x, y, out, training=False))
    logits = [to_numpy(z) for z in out["peer_logits"]]
    _, _, total = _numpy_dml(logits, y, 2.0, 1.0)
    l2 = 0.5e-3 * sum(float((to_numpy(v).astype("float64") ** 2).sum())
                      for v in model.trainable_variables)
    np.testing.assert_allclose(got, total + l2, rtol=1e-5)


def test_fit_learns_and_reports_every_peer():
    x, y = learnable_images(n=128)
    model = small_model()
    model.compile(keras.optimizers.SGD(0.02, momentum=0.9, nesterov=True))
    logs = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history
    for name in ("loss", "ce", "kd", "kd_weighted", "rampup_weight", "ce_peer_0",
                 "kl_peer_1", "peer_0_accuracy", "peer_1_accuracy", "ensemble_accuracy"):
        assert name in logs, name
    assert logs["loss"][-1] < logs["loss"][0]
    assert logs["rampup_weight"] == [1.0] * 4
    # Each KL term is logged as it enters the loss (kd_weight 1, no ramp-up).
    np.testing.assert_allclose(logs["kd_weighted"], logs["kd"], rtol=1e-4)


def test_rampup_rescales_the_ahbf_curve_to_one():
    x, y = learnable_images(n=16)
    model = small_model(rampup_epochs=2, rampup_shape="linear")
    model.compile("sgd")
    logs = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    np.testing.assert_allclose(logs["rampup_weight"], [0.0, 0.5, 1.0], atol=1e-6)


def test_every_keras_entry_point():
    x, y = learnable_images(n=16)
    model = small_model()
    model.compile("sgd", metrics=["accuracy"])
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"loss", "peer_0_accuracy", "peer_1_accuracy", "accuracy"} <= set(logs)
    logs = model.test_on_batch(x, y, return_dict=True)
    assert logs["accuracy"] == pytest.approx(logs["peer_0_accuracy"])
    assert model.predict_on_batch(x).shape == (16, K)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["peer_0_accuracy"] == pytest.approx(logs["peer_0_accuracy"])
    assert isinstance(model.evaluate(x, y, verbose=0), list)
    # Stepping does not change what `call` and `predict` return.
    assert tuple(model(x).shape) == (16, K)
    assert model.predict(x, verbose=0).shape == (16, K)


def test_save_load_round_trip_and_target_export(tmp_path):
    x, y = learnable_images(n=32)
    model = small_model(temperature=3.0, rampup_epochs=4, weight_decay=1e-4)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "dml.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_ahbf.MutualLearningModel)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    for a, b in zip(loaded.all_outputs(x)["peer_logits"], model.all_outputs(x)["peer_logits"]):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)
    assert (loaded.temperature, loaded.rampup_epochs, loaded.weight_decay) == (3.0, 4, 1e-4)
    assert int(to_numpy(loaded.epoch)) == 1
    assert int(to_numpy(loaded.optimizer.iterations)) == int(to_numpy(model.optimizer.iterations))
    loaded.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0)

    target = model.target_model(name="deployed")
    assert not isinstance(target, MutualLearningModel) and target.name == "deployed"
    assert target.count_params() == model.peers[0].count_params()
    target_path = os.path.join(tmp_path, "target.keras")
    target.save(target_path)
    reloaded = keras.saving.load_model(target_path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def _peer(outputs=K, size=8):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(outputs)(x))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: MutualLearningModel([_peer()]), ValueError, "len\\(peers\\)=1"),
        (lambda: MutualLearningModel(_peer()), TypeError, "peers"),
        (lambda: MutualLearningModel([_peer(), "resnet8"]), TypeError, "peers"),
        (lambda: MutualLearningModel([_peer(), _peer(3)]), ValueError, "output shapes"),
        (lambda: MutualLearningModel([_peer(), _peer()], temperature=0.0), ValueError,
         "temperature=0.0"),
        (lambda: MutualLearningModel([_peer(), _peer()], kd_weight=-2.0), ValueError,
         "kd_weight=-2.0"),
        (lambda: MutualLearningModel([_peer(), _peer()], rampup_epochs=-1), ValueError,
         "rampup_epochs=-1"),
        (lambda: MutualLearningModel([_peer(), _peer()], rampup_shape="cosine"), ValueError,
         "rampup_shape='cosine'"),
        (lambda: MutualLearningModel([_peer(), _peer()], stop_teacher_gradient="yes"),
         TypeError, "stop_teacher_gradient"),
        (lambda: small_model(num_peers=1), ValueError, "num_peers=1"),
        (lambda: small_model(num_classes=0), ValueError, "num_classes"),
        (lambda: dml_resnet_cifar(9, num_classes=K), ValueError, "depth=9"),
    ],
)
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_same_model_twice_is_refused():
    peer = _peer()
    with pytest.raises(ValueError, match="peers"):
        MutualLearningModel([peer, peer])


def test_custom_peers_and_compile_refuses_a_loss():
    model = MutualLearningModel([_peer(), _peer(), _peer()], name="trio")
    x, y = learnable_images(n=8)
    with pytest.raises(ValueError, match="loss="):
        model.compile("sgd", loss="mse")
    model.compile("sgd")
    assert "peer_2_accuracy" in model.train_on_batch(x, y, return_dict=True)
    with pytest.raises(ValueError, match="y"):
        model.fit(x, np.full(8, K), verbose=0)


def test_zero_init_residual_reaches_every_peer():
    from keras_ahbf import training

    # ResNet-8: one residual block in each of 3 stages, per peer.
    assert training.zero_init_residual(small_model(num_peers=3)) == 9


# --------------------------------------------------------- the command line


@pytest.mark.large
def test_cli_train_evaluate_export(tmp_path, capsys):
    npz = tiny_cifar_npz(tmp_path / "cifar10.npz")
    run = str(tmp_path / "run")
    options = ["--method", "dml", "--dataset", "cifar10", "--data-dir", npz,
               "--backbone", "resnet8", "--batch-size", "4", "--verbose", "0"]
    assert cli.main(["train", *options, "--epochs", "1", "--output", run]) == 0
    out = capsys.readouterr().out
    assert "DML run finished" in out and "peer_0 (target)" in out
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    assert summary["kind"] == "dml" and summary["config"]["method"] == "dml"
    assert set(summary["peer_top1"]) == {"peer_0", "peer_1"}
    assert summary["target_top1_last"] == summary["peer_top1"]["peer_0"]["last"]
    assert set(summary["teacher_top1"]) == {"ensemble"}
    assert summary["config"]["temperature"] == 1.0 and summary["config"]["rampup_epochs"] == 0
    target = keras.saving.load_model(os.path.join(run, "target.keras"))
    assert target.output_shape == (None, 10)

    # Resuming continues the same method; another method is refused.
    assert cli.main(["train", *options, "--epochs", "1", "--output", run]) == 0
    capsys.readouterr()
    assert cli.main(["train", *options[2:], "--epochs", "1", "--output", run]) == 2
    assert "--method 'dml' (this command: 'ahbf')" in capsys.readouterr().err

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
        (["--method", "dml", "--num-branches", "3"], "num_branches"),
        (["--method", "dml", "--lambda-ta", "1"], "lambda_ta"),
        (["--method", "dml", "--baseline"], "baseline"),
        (["--num-peers", "3"], "num_peers"),
        (["--method", "dml", "--num-peers", "1"], "num_peers=1"),
    ],
)
def test_cli_refuses_options_of_another_method(tmp_path, capsys, extra, match):
    rc = cli.main(["train", "--dataset", "digits", *extra, "--output", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "r")
