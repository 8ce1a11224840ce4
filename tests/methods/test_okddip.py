"""OKDDip: `okddip_loss` against NumPy, `OKDDipModel` training, saving,
export, every Keras entry point, refusals, and the command line."""

import json
import os

import keras
import numpy as np
import pytest

import keras_ahbf
from keras_ahbf import cli
from keras_ahbf.methods import OKDDipModel
from keras_ahbf.methods import okddip_loss
from keras_ahbf.methods import okddip_resnet_cifar
from keras_ahbf.methods import peer_network
from keras_ahbf.methods import shared_trunk_and_branches
from keras_ahbf.testing.data_files import tiny_cifar_npz
from keras_ahbf.testing.test_utils import gradients
from keras_ahbf.testing.test_utils import learnable_images
from keras_ahbf.testing.test_utils import to_numpy

K = 4


def small_model(**kwargs):
    options = dict(num_classes=K, input_shape=(8, 8, 3))
    options.update(kwargs)
    return okddip_resnet_cifar(8, **options)


# ------------------------------------------------------------------ the loss


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _kl(teacher, student, temperature):
    log_q, log_p = _log_softmax(teacher / temperature), _log_softmax(student / temperature)
    return (np.exp(log_q) * (log_q - log_p)).sum(-1)


def _numpy_okddip(logits, attention, y, temperature, kd_weight, sample_weight=None):
    """The two-level loss of the authors' `train_GL.py` in float64, sample by sample."""
    logits = [np.asarray(z, "float64") for z in logits]
    attention = np.asarray(attention, "float64")
    n, batch = len(logits) - 1, len(y)
    weight = np.ones(batch) if sample_weight is None else np.asarray(sample_weight, "float64")
    ce = [np.mean(-_log_softmax(z)[np.arange(batch), y] * weight) for z in logits]
    kl = np.zeros(n + 1)
    for i in range(batch):
        ensemble = sum(logits[b][i] for b in range(1, n + 1)) / n
        kl[0] += _kl(ensemble, logits[0][i], temperature) * weight[i] / batch
        for a in range(n):
            target = sum(attention[i, a, b] * logits[b + 1][i] for b in range(n))
            kl[a + 1] += _kl(target, logits[a + 1][i], temperature) * weight[i] / batch
    kl = kl * temperature**2
    return ce, list(kl), sum(ce) + kd_weight * kl.sum()


def _attention(rng, batch, n):
    energy = rng.normal(size=(batch, n, n)) * 2
    e = np.exp(energy - energy.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype("float32")


@pytest.mark.parametrize(
    "networks, temperature, kd_weight, weighted",
    [(4, 3.0, 1.0, False), (3, 1.0, 0.5, True), (5, 2.5, 2.0, True)],
)
def test_okddip_loss_matches_numpy(networks, temperature, kd_weight, weighted):
    rng = np.random.default_rng(networks)
    batch = 6
    logits = [rng.normal(size=(batch, 5)).astype("float32") * 3 for _ in range(networks)]
    attention = _attention(rng, batch, networks - 1)
    y = rng.integers(0, 5, batch)
    sample_weight = rng.uniform(0.2, 2.0, batch).astype("float32") if weighted else None
    terms = okddip_loss([keras.ops.convert_to_tensor(z) for z in logits], attention, y,
                        temperature=temperature, kd_weight=kd_weight,
                        sample_weight=sample_weight)
    ce, kl, total = _numpy_okddip(logits, attention, y, temperature, kd_weight, sample_weight)
    np.testing.assert_allclose([to_numpy(t) for t in terms["ce_terms"]], ce, rtol=1e-5)
    np.testing.assert_allclose([to_numpy(t) for t in terms["kl_terms"]], kl,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["ce"]), sum(ce), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(terms["kd"]), sum(kl), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["total"]), total, rtol=1e-5)
    detached = okddip_loss(logits, attention, y, temperature=temperature,
                           kd_weight=kd_weight, stop_teacher_gradient=True,
                           sample_weight=sample_weight)
    np.testing.assert_allclose(to_numpy(detached["total"]), total, rtol=1e-5)
    half = okddip_loss(logits, attention, y, temperature=temperature, kd_weight=kd_weight,
                       rampup_weight=0.5, sample_weight=sample_weight)
    np.testing.assert_allclose(to_numpy(half["total"]), sum(ce) + 0.5 * kd_weight * sum(kl),
                               rtol=1e-5)


def test_gradients_reach_the_peers_and_the_attention_unless_detached():
    rng = np.random.default_rng(7)
    logits = [rng.normal(size=(3, 4)).astype("float32") for _ in range(4)]
    attention = _attention(rng, 3, 3)
    y = np.array([0, 1, 2])

    def kd_of(stop):
        def fn(z0, z1, z2, z3, a):
            return okddip_loss([z0, z1, z2, z3], a, y, stop_teacher_gradient=stop)["kd"]
        return fn

    # The leader's logits are nobody's teacher; the attention is always learned.
    attached = gradients(kd_of(False), [*logits, attention])
    detached = gradients(kd_of(True), [*logits, attention])
    np.testing.assert_allclose(attached[0], detached[0], rtol=1e-5, atol=1e-7)
    assert np.abs(attached[4]).max() > 1e-4
    np.testing.assert_allclose(attached[4], detached[4], rtol=1e-5, atol=1e-7)
    # Peer 1 gets gradient from the others' targets (and the leader's) only when attached:
    # detached, it is the gradient of its own KL term with a constant target.
    t = 3.0
    target = np.einsum("bj,jbc->bc", attention[:, 0, :].astype("float64"),
                       np.stack(logits[1:]).astype("float64"))
    q = np.exp(_log_softmax(target / t))
    p = np.exp(_log_softmax(logits[1].astype("float64") / t))
    np.testing.assert_allclose(detached[1], t * (p - q) / 3, rtol=1e-4, atol=1e-6)
    assert not np.allclose(attached[1], detached[1], atol=1e-5)


def test_identical_networks_have_no_kl():
    z = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    attention = _attention(np.random.default_rng(1), 4, 3)
    terms = okddip_loss([z] * 4, attention, np.array([0, 1, 2, 0]))
    assert float(to_numpy(terms["kd"])) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda z, a, y: okddip_loss(z[:2], a, y), ValueError, "len\\(logits\\)=2"),
        (lambda z, a, y: okddip_loss(z[0], a, y), TypeError, "logits"),
        (lambda z, a, y: okddip_loss(z, a[:, :1], y), ValueError, "attention"),
        (lambda z, a, y: okddip_loss(z, a[0], y), ValueError, "attention"),
        (lambda z, a, y: okddip_loss(z, a, y, temperature=0.0), ValueError,
         "temperature=0.0"),
        (lambda z, a, y: okddip_loss(z, a, y, kd_weight=-1.0), ValueError, "kd_weight=-1.0"),
        (lambda z, a, y: okddip_loss(z, a, y, stop_teacher_gradient=1), TypeError,
         "stop_teacher_gradient"),
        (lambda z, a, y: okddip_loss([z[0], z[1][:, :2], z[2]], a, y), ValueError, "logits"),
        (lambda z, a, y: okddip_loss(z, a, y[:2]), ValueError, "labels|y_true|batch"),
    ],
)
def test_okddip_loss_refuses_bad_arguments(call, error, match):
    z = [np.zeros((4, 3), "float32"), np.ones((4, 3), "float32"), np.zeros((4, 3), "float32")]
    a = np.full((4, 2, 2), 0.5, "float32")
    with pytest.raises(error, match=match):
        call(z, a, np.array([0, 1, 2, 0]))


# ------------------------------------------------------------------ the model


def test_inference_runs_the_leader_only_and_all_outputs_every_network():
    model = small_model()
    x, _ = learnable_images(n=5)
    assert tuple(model(x).shape) == (5, K)
    out = model.all_outputs(x)
    assert set(out) == {"branch_logits", "attention"} and len(out["branch_logits"]) == 4
    assert tuple(out["attention"].shape) == (5, 3, 3)
    np.testing.assert_allclose(to_numpy(out["attention"]).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(out["branch_logits"][0]), to_numpy(model(x)),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(to_numpy(out["branch_logits"][0]), to_numpy(out["branch_logits"][1]))
    assert model.num_classes == K and model.num_peers == 4
    assert model.target_metric == "peer_0_accuracy" and model.method_title == "OKDDip"
    # ResNet-8's 64-channel last stage: 64 // 8 = 8 query and key units.
    assert model.attention.projection_units == 8


def test_compute_loss_equals_okddip_loss_plus_weight_decay():
    model = small_model(weight_decay=1e-3, temperature=2.0, rampup_epochs=0)
    model.compile("sgd")
    x, y = learnable_images(n=8)
    out = model.all_outputs(x)
    got = to_numpy(model.compute_loss(x, y, out, training=False))
    logits = [to_numpy(z) for z in out["branch_logits"]]
    _, _, total = _numpy_okddip(logits, to_numpy(out["attention"]), y, 2.0, 1.0)
    l2 = 0.5e-3 * sum(float((to_numpy(v).astype("float64") ** 2).sum())
                      for v in model.trainable_variables)
    np.testing.assert_allclose(got, total + l2, rtol=1e-5)


def test_fit_learns_and_reports_every_network():
    x, y = learnable_images(n=64)
    model = small_model(num_peers=3, rampup_epochs=2)
    model.compile(keras.optimizers.SGD(0.02, momentum=0.9, nesterov=True))
    logs = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history
    for name in ("loss", "ce", "kd", "kd_weighted", "rampup_weight", "ce_peer_0",
                 "kl_peer_0", "kl_peer_2", "peer_0_accuracy", "peer_1_accuracy",
                 "peer_2_accuracy", "ensemble_accuracy"):
        assert name in logs, name
    assert "peer_3_accuracy" not in logs
    assert logs["loss"][-1] < logs["loss"][0]
    # The code's sigmoid ramp-up exp(-5 (1 - t)^2), from epoch 0.
    np.testing.assert_allclose(logs["rampup_weight"], [np.exp(-5), np.exp(-1.25), 1],
                               rtol=1e-5)


def test_every_keras_entry_point():
    x, y = learnable_images(n=16)
    model = small_model(num_peers=3)
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
    x, y = learnable_images(n=32)
    model = small_model(num_peers=3, temperature=2.0, rampup_epochs=4, weight_decay=1e-4,
                        attention_reduction=4)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "okddip.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_ahbf.OKDDipModel)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    a, b = loaded.all_outputs(x), model.all_outputs(x)
    for u, v in zip(a["branch_logits"] + [a["attention"]], b["branch_logits"] + [b["attention"]]):
        np.testing.assert_allclose(to_numpy(u), to_numpy(v), rtol=1e-5, atol=1e-6)
    assert (loaded.temperature, loaded.rampup_epochs, loaded.weight_decay,
            loaded.attention_reduction) == (2.0, 4, 1e-4, 4)
    assert int(to_numpy(loaded.epoch)) == 1
    loaded.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0)

    target = model.target_model(name="deployed")
    assert not isinstance(target, OKDDipModel) and target.name == "deployed"
    plain = peer_network("resnet8", K, (8, 8, 3))
    assert target.count_params() == plain.count_params()
    target_path = os.path.join(tmp_path, "target.keras")
    target.save(target_path)
    reloaded = keras.saving.load_model(target_path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def _parts(branches=3):
    return shared_trunk_and_branches("resnet8", K, branches, (8, 8, 3))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: OKDDipModel(*_parts(2)), ValueError, "num_branches=2"),
        (lambda: OKDDipModel("resnet8", _parts()[1]), TypeError, "trunk"),
        (lambda: OKDDipModel(_parts()[0], "branches"), TypeError, "branches"),
        (lambda: OKDDipModel(*_parts(), temperature=0.0), ValueError, "temperature=0.0"),
        (lambda: OKDDipModel(*_parts(), kd_weight=-2.0), ValueError, "kd_weight=-2.0"),
        (lambda: OKDDipModel(*_parts(), attention_reduction=0), ValueError,
         "attention_reduction=0"),
        (lambda: OKDDipModel(*_parts(), rampup_epochs=-1), ValueError, "rampup_epochs=-1"),
        (lambda: OKDDipModel(*_parts(), rampup_shape="cosine"), ValueError,
         "rampup_shape='cosine'"),
        (lambda: OKDDipModel(*_parts(), stop_teacher_gradient="yes"), TypeError,
         "stop_teacher_gradient"),
        (lambda: small_model(num_peers=2), ValueError, "num_peers=2"),
        (lambda: small_model(num_classes=0), ValueError, "num_classes"),
        (lambda: okddip_resnet_cifar(9, num_classes=K), ValueError, "depth=9"),
    ],
)
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_compile_refuses_a_loss_and_fit_checks_labels():
    model = small_model(num_peers=3)
    x, _ = learnable_images(n=8)
    with pytest.raises(ValueError, match="loss="):
        model.compile("sgd", loss="mse")
    model.compile("sgd")
    with pytest.raises(ValueError, match="y"):
        model.fit(x, np.full(8, K), verbose=0)


def test_zero_init_residual_reaches_the_trunk_and_every_branch():
    from keras_ahbf import training

    # ResNet-8: one residual block per stage; stages 1-2 shared, stage 3 per branch.
    assert training.zero_init_residual(small_model(num_peers=3)) == 2 + 3


# --------------------------------------------------------- the command line


@pytest.mark.large
def test_cli_train_evaluate_export(tmp_path, capsys):
    npz = tiny_cifar_npz(tmp_path / "cifar10.npz")
    run = str(tmp_path / "run")
    options = ["--method", "okddip", "--dataset", "cifar10", "--data-dir", npz,
               "--backbone", "resnet8", "--batch-size", "4", "--num-peers", "3",
               "--verbose", "0"]
    assert cli.main(["train", *options, "--epochs", "1", "--output", run]) == 0
    out = capsys.readouterr().out
    assert "OKDDip run finished" in out and "peer_0 (target)" in out
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    assert summary["kind"] == "okddip" and summary["config"]["method"] == "okddip"
    assert set(summary["peer_top1"]) == {"peer_0", "peer_1", "peer_2"}
    assert summary["target_top1_last"] == summary["peer_top1"]["peer_0"]["last"]
    assert set(summary["teacher_top1"]) == {"ensemble"}
    # The code's 80 of 300 epochs, scaled to 1 epoch.
    assert summary["config"]["temperature"] == 3.0 and summary["config"]["rampup_epochs"] == 0
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
        (["--method", "okddip", "--num-branches", "3"], "num_branches"),
        (["--method", "okddip", "--kdcl-ensemble", "naive"], "kdcl_ensemble"),
        (["--method", "okddip", "--num-peers", "2"], "num_peers=2"),
    ],
)
def test_cli_refuses_bad_options(tmp_path, capsys, extra, match):
    rc = cli.main(["train", "--dataset", "digits", *extra, "--output", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "r")
