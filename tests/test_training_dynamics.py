"""Training dynamics pinned against NumPy: the SGD iterates with coupled L2,
the warm-up schedule, zero-initialised residual blocks, the symmetric padding
of strided ResNet convolutions, and the per-term training logs."""

import keras
import numpy as np
import pytest

import keras_ahbf
from keras_ahbf import training
from keras_ahbf.models import BaselineModel
from keras_ahbf.testing.test_utils import to_numpy


# ----------------------------------------------------------------- optimizer
def _np_sgd(w, grads_fn, lrs, mu, wd, form):
    """Nesterov SGD with coupled L2 in PyTorch's or Keras' form."""
    w, state, out = w.copy(), np.zeros_like(w), []
    for step, lr in enumerate(lrs):
        g = grads_fn(w) + wd * w  # coupled L2: wd * w added to the gradient
        if form == "torch":  # b = mu b + g ; w -= lr (g + mu b)
            state = g if step == 0 else mu * state + g
            w = w - lr * (g + mu * state)
        else:  # Keras: m = mu m - lr g ; w += mu m - lr g
            state = mu * state - lr * g
            w = w + mu * state - lr * g
        out.append(w.copy())
    return out


def test_sgd_with_coupled_l2_matches_numpy_and_pytorch_form():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    t = rng.normal(size=(8, 2)).astype("float32")
    wd, mu = 5e-3, 0.9
    inputs = keras.Input((3,))
    model = BaselineModel(inputs, keras.layers.Dense(2, use_bias=False)(inputs), weight_decay=wd)
    w0 = rng.normal(size=(3, 2)).astype("float32")
    model.layers[-1].kernel.assign(w0)
    schedule = training.MultiStepLR(0.1, [3], steps_per_epoch=1)  # lr 0.1 x3, then 0.01
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=mu, nesterov=True), loss="mse")
    lrs = [0.1, 0.1, 0.1, 0.01, 0.01]

    def grad(w):  # d mean((x w - t)^2) / d w
        return (2.0 / t.size) * x.T @ (x @ w - t)

    got = []
    for _ in lrs:
        model.train_on_batch(x, t)
        got.append(to_numpy(model.layers[-1].kernel))
    keras_form = _np_sgd(w0.astype(np.float64), grad, lrs, mu, wd, "keras")
    torch_form = _np_sgd(w0.astype(np.float64), grad, lrs, mu, wd, "torch")
    for g, k in zip(got, keras_form):
        np.testing.assert_allclose(g, k, rtol=1e-5, atol=1e-6)
    # While the learning rate is constant the two forms give the same iterates...
    for k, p in zip(keras_form[:3], torch_form[:3]):
        np.testing.assert_allclose(k, p, rtol=1e-10)
    # ...after a drop, Keras' velocity still carries the old rate for a while.
    assert not np.allclose(keras_form[3], torch_form[3], rtol=1e-6)


def test_warmup_schedule_matches_numpy():
    schedule = training.MultiStepLR(0.1, [2], steps_per_epoch=4, warmup_steps=5)
    for step in range(12):
        want = 0.1 * (0.1 if step // 4 >= 2 else 1.0) * min(1.0, (step + 1) / 5)
        np.testing.assert_allclose(to_numpy(schedule(step)), want, rtol=1e-6)
    assert training.MultiStepLR.from_config(schedule.get_config()).warmup_steps == 5
    with pytest.raises(ValueError, match="warmup_steps"):
        training.MultiStepLR(0.1, [2], steps_per_epoch=4, warmup_steps=-1)


def test_build_optimizer_warms_up_over_whole_epochs():
    config = training.resolve_config("digits", epochs=4, warmup_epochs=2)
    schedule = training.build_optimizer(config, steps=10).get_config()["learning_rate"]
    assert schedule["config"]["warmup_steps"] == 20


# ------------------------------------------------------------- architecture
def _tiny_config(**options):
    return training.resolve_config(
        "digits", epochs=1, num_branches=2, aux=1, backbone="resnet8", **options
    )


def test_zero_init_residual_zeroes_the_last_bn_scale_of_every_block():
    model = training.build_model(_tiny_config(zero_init_residual=True), 3, (16, 16, 3))
    gammas = {
        v.path: to_numpy(v) for v in model.trainable_variables if v.path.endswith("gamma")
    }
    last = {p: g for p, g in gammas.items() if "/bn2/" in p}
    # resnet8: one block in each trunk stage, branch 0 one block, branch 1 two.
    assert len(last) == 5
    assert all(np.all(g == 0) for g in last.values())
    assert all(np.all(g == 1) for p, g in gammas.items() if p not in last)
    baseline = training.build_baseline(_tiny_config(zero_init_residual=True), 3, (16, 16, 3))
    assert sum(
        np.all(to_numpy(v) == 0) for v in baseline.trainable_variables if v.path.endswith("bn2/gamma")
    ) == 3


def _np_conv(x, k, stride, pad):
    """NHWC x HWIO convolution with symmetric zero padding (PyTorch's)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = k.shape[:2]
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, k.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(patch, k, axes=([1, 2, 3], [0, 1, 2]))
    return out


def test_strided_basic_block_pads_symmetrically_as_pytorch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    block = keras_ahbf.layers.BasicBlock(4, strides=2)
    block.build(x.shape)
    k1, k2, ks = (rng.normal(size=v.shape).astype("float32") * 0.3 for v in
                  (block.conv1.kernel, block.conv2.kernel, block.shortcut_conv.kernel))
    block.conv1.kernel.assign(k1)
    block.conv2.kernel.assign(k2)
    block.shortcut_conv.kernel.assign(ks)
    bn = 1.0 / np.sqrt(1.0 + 1e-5)  # inference BatchNorm at its initial state
    h = np.maximum(_np_conv(x, k1, 2, 1) * bn, 0)
    h = _np_conv(h, k2, 1, 1) * bn
    want = np.maximum(h + _np_conv(x, ks, 2, 0) * bn, 0)
    got = to_numpy(block(x, training=False))
    assert got.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------- logs
def _data(n=24, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 16, 16, 3)).astype("float32"), rng.integers(0, classes, n)


def test_fit_logs_every_loss_term_and_the_new_options_round_trip():
    model = keras_ahbf.models.resnet_cifar(
        8, num_classes=3, num_branches=3, aux=1, input_shape=(16, 16, 3),
        rampup_epochs=4, rampup_shape="linear", aux_ce_weight=0.5, fused_ce_weight=0.25,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    names = ["ce_branch_0", "ce_branch_1", "ce_branch_2", "ce_ta_1", "ce_ta_2", "kd_weighted"]
    for name in names:
        assert name in history and np.all(np.isfinite(history[name])), name
    assert history["rampup_weight"] == pytest.approx([0.0, 0.125])  # linear: 0.5 * epoch / 4
    assert history["kd_weighted"][0] == pytest.approx(0.0, abs=1e-7)
    config = model.get_config()
    assert (config["rampup_shape"], config["aux_ce_weight"], config["fused_ce_weight"]) == (
        "linear", 0.5, 0.25,
    )
    clone = keras_ahbf.OnlineKDModel.from_config(config)
    assert clone.rampup_shape == "linear" and clone.fused_ce_weight == 0.25


def test_zero_auxiliary_weights_leave_only_the_target_cross_entropy():
    model = keras_ahbf.models.resnet_cifar(
        8, num_classes=3, num_branches=2, aux=1, input_shape=(16, 16, 3),
        kd_weight=0.0, aux_ce_weight=0.0, fused_ce_weight=0.0,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    x, y = _data()
    logs = model.evaluate(x, y, batch_size=24, verbose=0, return_dict=True)
    logits = to_numpy(model(x, training=False))
    z = logits - logits.max(-1, keepdims=True)
    ce = -(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(len(y)), y].mean()
    np.testing.assert_allclose(logs["loss"], ce, rtol=1e-4)
    np.testing.assert_allclose(logs["ce_branch_0"], ce, rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(rampup_shape="cosine"), "rampup_shape"),
        (dict(aux_ce_weight=-0.5), "aux_ce_weight"),
        (dict(fused_ce_weight=float("nan")), "fused_ce_weight"),
    ],
)
def test_bad_new_model_options_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        keras_ahbf.models.resnet_cifar(8, num_classes=3, input_shape=(16, 16, 3), **kwargs)
