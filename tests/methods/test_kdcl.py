"""KDCL: the ensemble teachers and `kdcl_loss` against NumPy, the per-peer
augmentation, `KDCLModel` training, saving, export, every Keras entry point,
refusals, and the command line."""

import json
import os

import keras
import numpy as np
import pytest

import keras_ahbf
from keras_ahbf import cli
from keras_ahbf.methods import KDCLModel
from keras_ahbf.methods import kdcl_from_backbone
from keras_ahbf.methods import kdcl_loss
from keras_ahbf.methods import kdcl_resnet_cifar
from keras_ahbf.methods import kdcl_teacher_logits
from keras_ahbf.methods import random_flip_and_translate
from keras_ahbf.testing.data_files import tiny_cifar_npz
from keras_ahbf.testing.test_utils import gradients
from keras_ahbf.testing.test_utils import learnable_images
from keras_ahbf.testing.test_utils import to_numpy

K = 4


def small_model(**kwargs):
    options = dict(num_classes=K, input_shape=(8, 8, 3))
    options.update(kwargs)
    return kdcl_resnet_cifar(8, **options)


# ------------------------------------------------------------------ the loss


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _numpy_teacher(logits, y, ensemble):
    """The teacher's logits in float64, one sample and one class at a time."""
    logits = [np.asarray(z, "float64") for z in logits]
    batch, classes = logits[0].shape
    teacher = np.zeros((batch, classes))
    for i in range(batch):
        if ensemble == "minlogit":
            for c in range(classes):
                teacher[i, c] = min(z[i, c] - z[i, y[i]] for z in logits)
        elif ensemble == "naive":
            teacher[i] = sum(z[i] for z in logits) / len(logits)
        else:
            losses = [-_log_softmax(z[i])[y[i]] for z in logits]
            teacher[i] = logits[int(np.argmin(losses))][i]
    return teacher


def _numpy_kdcl(logits, y, ensemble, temperature, kd_weight, sample_weight=None):
    logits = [np.asarray(z, "float64") for z in logits]
    batch = len(y)
    weight = np.ones(batch) if sample_weight is None else np.asarray(sample_weight, "float64")
    log_q = _log_softmax(_numpy_teacher(logits, y, ensemble) / temperature)
    ce, kl = [], []
    for z in logits:
        ce.append(np.mean(-_log_softmax(z)[np.arange(batch), y] * weight))
        per_sample = (np.exp(log_q) * (log_q - _log_softmax(z / temperature))).sum(-1)
        kl.append(temperature**2 * np.mean(per_sample * weight))
    return ce, kl, sum(ce) + kd_weight * sum(kl)


@pytest.mark.parametrize("ensemble", ["minlogit", "naive", "best"])
def test_teacher_logits_match_numpy(ensemble):
    rng = np.random.default_rng(3)
    logits = [rng.normal(size=(7, 5)).astype("float32") * 3 for _ in range(3)]
    y = rng.integers(0, 5, 7)
    got = to_numpy(kdcl_teacher_logits(logits, y, ensemble))
    np.testing.assert_allclose(got, _numpy_teacher(logits, y, ensemble), rtol=1e-5, atol=1e-6)
    if ensemble == "minlogit":
        np.testing.assert_array_equal(got[np.arange(7), y], 0.0)
        # No peer's shifted logit is below the teacher's, class by class.
        for z in logits:
            assert np.all(z - z[np.arange(7), y][:, None] >= got - 1e-6)


@pytest.mark.parametrize(
    "ensemble, peers, temperature, kd_weight, weighted",
    [("minlogit", 2, 2.0, 1.0, False), ("minlogit", 3, 3.0, 0.5, True),
     ("naive", 2, 1.0, 1.0, True), ("naive", 4, 2.5, 2.0, False), ("best", 3, 2.0, 1.0, True)],
)
def test_kdcl_loss_matches_numpy(ensemble, peers, temperature, kd_weight, weighted):
    rng = np.random.default_rng(peers)
    batch = 6
    logits = [rng.normal(size=(batch, 5)).astype("float32") * 3 for _ in range(peers)]
    y = rng.integers(0, 5, batch)
    sample_weight = rng.uniform(0.2, 2.0, batch).astype("float32") if weighted else None
    terms = kdcl_loss([keras.ops.convert_to_tensor(z) for z in logits], y, ensemble=ensemble,
                      temperature=temperature, kd_weight=kd_weight,
                      sample_weight=sample_weight)
    ce, kl, total = _numpy_kdcl(logits, y, ensemble, temperature, kd_weight, sample_weight)
    np.testing.assert_allclose([to_numpy(t) for t in terms["ce_terms"]], ce, rtol=1e-5)
    np.testing.assert_allclose([to_numpy(t) for t in terms["kl_terms"]], kl,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["kd"]), sum(kl), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(terms["total"]), total, rtol=1e-5)
    attached = kdcl_loss(logits, y, ensemble=ensemble, temperature=temperature,
                         kd_weight=kd_weight, stop_teacher_gradient=False,
                         sample_weight=sample_weight)
    np.testing.assert_allclose(to_numpy(attached["total"]), total, rtol=1e-5)
    half = kdcl_loss(logits, y, ensemble=ensemble, temperature=temperature,
                     kd_weight=kd_weight, rampup_weight=0.5, sample_weight=sample_weight)
    np.testing.assert_allclose(to_numpy(half["total"]), sum(ce) + 0.5 * kd_weight * sum(kl),
                               rtol=1e-5)


def test_detached_teacher_gives_each_peer_its_own_gradient():
    rng = np.random.default_rng(5)
    logits = [rng.normal(size=(3, 4)).astype("float32") for _ in range(2)]
    y = np.array([0, 1, 3])
    t = 2.0
    grads = gradients(lambda a, b: kdcl_loss([a, b], y, temperature=t)["kd"], logits)
    q = np.exp(_log_softmax(_numpy_teacher(logits, y, "minlogit") / t))
    for z, g in zip(logits, grads):
        p = np.exp(_log_softmax(z.astype("float64") / t))
        np.testing.assert_allclose(g, t * (p - q) / 3, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda z, y: kdcl_loss(z[:1], y), ValueError, "len\\(logits\\)=1"),
        (lambda z, y: kdcl_loss(z[0], y), TypeError, "logits"),
        (lambda z, y: kdcl_loss(z, y, ensemble="mean"), ValueError, "ensemble='mean'"),
        (lambda z, y: kdcl_teacher_logits(z, y, "linear"), ValueError, "ensemble='linear'"),
        (lambda z, y: kdcl_loss(z, y, temperature=0.0), ValueError, "temperature=0.0"),
        (lambda z, y: kdcl_loss(z, y, kd_weight=-1.0), ValueError, "kd_weight=-1.0"),
        (lambda z, y: kdcl_loss(z, y, stop_teacher_gradient=1), TypeError,
         "stop_teacher_gradient"),
        (lambda z, y: kdcl_loss([z[0], z[1][:, :2]], y), ValueError, "logits"),
        (lambda z, y: kdcl_loss(z, y[:2]), ValueError, "labels|y_true|batch"),
    ],
)
def test_kdcl_loss_refuses_bad_arguments(call, error, match):
    z = [np.zeros((4, 3), "float32"), np.ones((4, 3), "float32")]
    with pytest.raises(error, match=match):
        call(z, np.array([0, 1, 2, 0]))


# ---------------------------------------------------------- the augmentation


def _candidates(image, padding):
    """Every flip and pad-and-crop translation of one image, in NumPy."""
    h, w = image.shape[:2]
    out = []
    for flipped in (image, image[:, ::-1]):
        padded = np.pad(flipped, ((padding, padding), (padding, padding), (0, 0)))
        for dy in range(2 * padding + 1):
            for dx in range(2 * padding + 1):
                out.append(padded[dy:dy + h, dx:dx + w])
    return out


def test_random_flip_and_translate_is_a_flip_and_shift_of_each_image():
    x = np.random.default_rng(0).normal(size=(16, 6, 5, 2)).astype("float32")
    seed = keras.random.SeedGenerator(4)
    first = to_numpy(random_flip_and_translate(x, 2, seed=seed))
    second = to_numpy(random_flip_and_translate(x, 2, seed=seed))
    assert first.shape == x.shape and not np.array_equal(first, second)
    for out in (first, second):
        for image, got in zip(x, out):
            assert any(np.array_equal(got, c) for c in _candidates(image, 2))
    # Not all images get the same draw, and an int seed is reproducible.
    assert len({to_numpy(a).tobytes() for a in first - x}) > 1
    np.testing.assert_array_equal(to_numpy(random_flip_and_translate(x, 1, seed=7)),
                                  to_numpy(random_flip_and_translate(x, 1, seed=7)))
    flipped = to_numpy(random_flip_and_translate(x, 0, seed=seed))
    for image, got in zip(x, flipped):
        assert np.array_equal(got, image) or np.array_equal(got, image[:, ::-1])
    with pytest.raises(ValueError, match="padding=-1"):
        random_flip_and_translate(x, -1)


# ------------------------------------------------------------------ the model


def test_inference_runs_peer_0_only_and_training_augments_the_other_peers():
    model = small_model(num_peers=3, seed=1)
    x, _ = learnable_images(n=8)
    assert tuple(model(x).shape) == (8, K)
    out = model.all_outputs(x)
    assert set(out) == {"peer_logits"} and len(out["peer_logits"]) == 3
    np.testing.assert_allclose(to_numpy(out["peer_logits"][0]), to_numpy(model(x)),
                               rtol=1e-5, atol=1e-6)
    assert model.target_metric == "peer_0_accuracy" and model.method_title == "KDCL"
    assert (model.ensemble, model.peer_augmentation, model.temperature) == ("minlogit", True, 2.0)
    # In training mode peer 0 sees the images as given, the others their own
    # augmented copies (BatchNorm uses the batch statistics either way).
    plain = KDCLModel(model.peers, peer_augmentation=False)
    augmented = model.all_outputs(x, training=True)["peer_logits"]
    reference = plain.all_outputs(x, training=True)["peer_logits"]
    np.testing.assert_allclose(to_numpy(augmented[0]), to_numpy(reference[0]),
                               rtol=1e-5, atol=1e-5)
    for k in (1, 2):
        assert not np.allclose(to_numpy(augmented[k]), to_numpy(reference[k]), atol=1e-4)


def test_compute_loss_equals_kdcl_loss_plus_weight_decay():
    model = small_model(weight_decay=1e-3, temperature=3.0, kdcl_ensemble="naive")
    model.compile("sgd")
    x, y = learnable_images(n=8)
    out = model.all_outputs(x)
    got = to_numpy(model.compute_loss(x, y, out, training=False))
    logits = [to_numpy(z) for z in out["peer_logits"]]
    _, _, total = _numpy_kdcl(logits, y, "naive", 3.0, 1.0)
    l2 = 0.5e-3 * sum(float((to_numpy(v).astype("float64") ** 2).sum())
                      for v in model.trainable_variables)
    np.testing.assert_allclose(got, total + l2, rtol=1e-5)


def test_fit_learns_and_reports_every_peer_of_two_architectures():
    x, y = learnable_images(n=64)
    model = kdcl_from_backbone(["resnet8", "resnet14"], num_classes=K, num_peers=2,
                               input_shape=(8, 8, 3), seed=0)
    assert model.name == "kdcl_resnet8_resnet14"
    assert model.peers[1].count_params() > model.peers[0].count_params()
    model.compile(keras.optimizers.SGD(0.02, momentum=0.9, nesterov=True))
    logs = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history
    for name in ("loss", "ce", "kd", "kd_weighted", "rampup_weight", "ce_peer_0",
                 "kl_peer_1", "peer_0_accuracy", "peer_1_accuracy", "ensemble_accuracy"):
        assert name in logs, name
    assert logs["loss"][-1] < logs["loss"][0]
    assert logs["rampup_weight"] == [1.0] * 3
    np.testing.assert_allclose(logs["kd_weighted"], logs["kd"], rtol=1e-4)


def test_every_keras_entry_point():
    x, y = learnable_images(n=16)
    model = small_model(seed=2)
    model.compile("sgd", metrics=["accuracy"])
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"loss", "peer_0_accuracy", "peer_1_accuracy", "accuracy"} <= set(logs)
    logs = model.test_on_batch(x, y, return_dict=True)
    assert logs["accuracy"] == pytest.approx(logs["peer_0_accuracy"])
    assert model.predict_on_batch(x).shape == (16, K)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["peer_0_accuracy"] == pytest.approx(logs["peer_0_accuracy"])
    # Evaluation does not augment: it is deterministic.
    assert model.evaluate(x, y, verbose=0, return_dict=True) == result
    assert tuple(model(x).shape) == (16, K)
    assert model.predict(x, verbose=0).shape == (16, K)


def test_save_load_round_trip_and_target_export(tmp_path):
    x, y = learnable_images(n=32)
    model = small_model(temperature=3.0, weight_decay=1e-4, kdcl_ensemble="best",
                        augmentation_padding=2, seed=5)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "kdcl.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_ahbf.KDCLModel)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    for a, b in zip(loaded.all_outputs(x)["peer_logits"], model.all_outputs(x)["peer_logits"]):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)
    assert (loaded.ensemble, loaded.augmentation_padding, loaded.seed, loaded.temperature,
            loaded.weight_decay) == ("best", 2, 5, 3.0, 1e-4)
    assert int(to_numpy(loaded.epoch)) == 1
    loaded.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0)

    target = model.target_model(name="deployed")
    assert not isinstance(target, KDCLModel) and target.name == "deployed"
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
        (lambda: KDCLModel([_peer()]), ValueError, "len\\(peers\\)=1"),
        (lambda: KDCLModel(_peer()), TypeError, "peers"),
        (lambda: KDCLModel([_peer(), _peer(3)]), ValueError, "output shapes"),
        (lambda: KDCLModel([_peer(), _peer()], ensemble="linear"), ValueError,
         "ensemble='linear'"),
        (lambda: KDCLModel([_peer(), _peer()], peer_augmentation=1), TypeError,
         "peer_augmentation"),
        (lambda: KDCLModel([_peer(), _peer()], augmentation_padding=-1), ValueError,
         "augmentation_padding=-1"),
        (lambda: KDCLModel([_peer(), _peer()], seed=-3), ValueError, "seed=-3"),
        (lambda: KDCLModel([_peer(), _peer()], temperature=0.0), ValueError,
         "temperature=0.0"),
        (lambda: KDCLModel([_peer(), _peer()], kd_weight=-2.0), ValueError,
         "kd_weight=-2.0"),
        (lambda: small_model(num_peers=1), ValueError, "num_peers=1"),
        (lambda: small_model(kdcl_ensemble="naive", ensemble="minlogit"), ValueError,
         "kdcl_ensemble"),
        (lambda: kdcl_from_backbone(["resnet8"] * 3, num_classes=K, num_peers=2,
                                    input_shape=(8, 8, 3)), ValueError, "num_peers=2"),
        (lambda: kdcl_resnet_cifar(9, num_classes=K), ValueError, "depth=9"),
    ],
)
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_custom_peers_and_compile_refuses_a_loss():
    model = KDCLModel([_peer(), _peer(), _peer()], name="trio", seed=0)
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
    options = ["--method", "kdcl", "--dataset", "cifar10", "--data-dir", npz,
               "--backbone", "resnet8", "--batch-size", "4", "--kdcl-ensemble", "naive",
               "--verbose", "0"]
    assert cli.main(["train", *options, "--epochs", "1", "--output", run]) == 0
    out = capsys.readouterr().out
    assert "KDCL run finished" in out and "peer_0 (target)" in out
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    assert summary["kind"] == "kdcl" and summary["config"]["method"] == "kdcl"
    assert summary["config"]["kdcl_ensemble"] == "naive"
    assert set(summary["peer_top1"]) == {"peer_0", "peer_1"}
    assert summary["target_top1_last"] == summary["peer_top1"]["peer_0"]["last"]
    assert set(summary["teacher_top1"]) == {"ensemble"}
    assert summary["config"]["temperature"] == 2.0 and summary["config"]["rampup_epochs"] == 0
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
        (["--kdcl-ensemble", "naive"], "kdcl_ensemble"),
        (["--method", "dml", "--kdcl-ensemble", "naive"], "kdcl_ensemble"),
        (["--method", "kdcl", "--num-branches", "3"], "num_branches"),
        (["--method", "kdcl", "--num-peers", "1"], "num_peers=1"),
    ],
)
def test_cli_refuses_bad_options(tmp_path, capsys, extra, match):
    rc = cli.main(["train", "--dataset", "digits", *extra, "--output", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "r")


def test_cli_refuses_an_unknown_ensemble(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--dataset", "digits", "--method", "kdcl", "--kdcl-ensemble",
                  "linear", "--output", str(tmp_path / "r")])
    assert "linear" in capsys.readouterr().err
