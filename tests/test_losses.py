"""Exact-number and gradient tests of keras_ahbf.losses against NumPy."""

import math

import keras
import numpy as np
import pytest

from keras_ahbf import losses
from keras_ahbf.testing.test_utils import gradients, to_numpy


# ----------------------------------------------------------------------------
# Independent NumPy implementation of AHBF_SPEC.md section 3.
def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_kl(student, teacher, T):
    p_t = np.exp(np_log_softmax(teacher / T)) + 1e-7
    per_sample = (p_t * (np.log(p_t) - np_log_softmax(student / T))).sum(-1)
    return T * T * per_sample.mean()


def np_ce(y, z):
    return -np_log_softmax(z)[np.arange(len(y)), y].mean()


def np_ahbf(y, z, e, T, kd_weight, lambda_ta, lambda_branch, w):
    ta = [z[0]] + list(e)
    ce = sum(np_ce(y, t) for t in list(z) + list(e))
    kd_branch = sum(np_kl(ta[m - 1], z[m], T) for m in range(1, len(z)))
    kd_ta = sum(
        np_kl(ta[m - 1], ta[m], T) + np_kl(z[m], ta[m], T) for m in range(1, len(z))
    )
    total = ce + w * kd_weight * (lambda_branch * kd_branch + lambda_ta * kd_ta)
    return dict(ce=ce, kd_branch=kd_branch, kd_ta=kd_ta, total=total)


def random_logits(num_branches=4, batch=16, classes=10, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    z = [
        (scale * rng.normal(size=(batch, classes))).astype("float32")
        for _ in range(num_branches)
    ]
    e = [
        (scale * rng.normal(size=(batch, classes))).astype("float32")
        for _ in range(num_branches - 1)
    ]
    y = rng.integers(0, classes, batch)
    return y, z, e


# ----------------------------------------------------------------------------
@pytest.mark.parametrize("num_branches", [2, 3, 4])
@pytest.mark.parametrize(
    "options",
    [
        dict(temperature=3.0, kd_weight=1.5, lambda_ta=2.0, lambda_branch=4.0, w=0.5),
        dict(temperature=1.0, kd_weight=1.0, lambda_ta=0.5, lambda_branch=1.0, w=0.01),
        dict(temperature=7.5, kd_weight=2.0, lambda_ta=0.0, lambda_branch=3.0, w=0.3),
    ],
)
def test_ahbf_loss_matches_numpy(num_branches, options):
    y, z, e = random_logits(num_branches, seed=num_branches)
    opts = dict(options)
    w = opts.pop("w")
    got = losses.ahbf_loss(y, z, e, rampup_weight=w, **opts)
    want = np_ahbf(y, z, e, opts["temperature"], opts["kd_weight"],
                   opts["lambda_ta"], opts["lambda_branch"], w)
    for key in ("ce", "kd_branch", "kd_ta", "total"):
        np.testing.assert_allclose(to_numpy(got[key]), want[key], rtol=1e-5)
    assert len(got["ce_terms"]) == 2 * num_branches - 1
    assert len(got["kl_terms"]) == 3 * (num_branches - 1)


def test_ahbf_loss_defaults_are_the_papers():
    y, z, e = random_logits(4)
    got = losses.ahbf_loss(y, z, e, rampup_weight=0.2)
    want = np_ahbf(y, z, e, 3.0, 1.5, 2.0, 4.0, 0.2)
    np.testing.assert_allclose(to_numpy(got["total"]), want["total"], rtol=1e-5)


def test_ahbf_loss_float16_logits_are_computed_in_float32():
    y, z, e = random_logits(3)
    got = losses.ahbf_loss(
        y, [t.astype("float16") for t in z], [t.astype("float16") for t in e]
    )
    assert keras.backend.standardize_dtype(got["total"].dtype) == "float32"
    want = np_ahbf(
        y,
        [t.astype("float16").astype("float32") for t in z],
        [t.astype("float16").astype("float32") for t in e],
        3.0, 1.5, 2.0, 4.0, 0.5,
    )
    np.testing.assert_allclose(to_numpy(got["total"]), want["total"], rtol=1e-5)


def test_kl_with_temperature_matches_numpy_and_is_zero_on_itself():
    _, z, _ = random_logits(2, seed=3)
    np.testing.assert_allclose(
        to_numpy(losses.kl_with_temperature(z[0], z[1], 4.0)),
        np_kl(z[0], z[1], 4.0),
        rtol=1e-5,
    )
    # KL(p || p) is zero up to the 1e-7 added to the teacher probabilities.
    assert abs(float(to_numpy(losses.kl_with_temperature(z[0], z[0], 3.0)))) < 1e-4


def test_sample_weight_weights_every_term():
    y, z, e = random_logits(3, batch=6)
    sw = np.array([1, 0, 2, 1, 0, 1], "float32")
    got = losses.ahbf_loss(y, z, e, sample_weight=sw)
    # Weighting by integers equals repeating rows, divided by the batch size.
    idx = np.repeat(np.arange(6), sw.astype(int))
    rep = np_ahbf(y[idx], [t[idx] for t in z], [t[idx] for t in e],
                  3.0, 1.5, 2.0, 4.0, 0.5)
    scale = len(idx) / 6.0
    np.testing.assert_allclose(to_numpy(got["total"]), rep["total"] * scale, rtol=1e-5)


@pytest.mark.parametrize(
    "epoch, length, want",
    [
        (0, 240, 0.5 * math.exp(-5.0)),
        (120, 240, 0.5 * math.exp(-5.0 * 0.25)),
        (240, 240, 0.5),
        (300, 240, 0.5),
        (0, 0, 0.5),
        (7, 0, 0.5),
        (1, 4, 0.5 * math.exp(-5.0 * 0.75**2)),
    ],
)
def test_rampup_weight_formula(epoch, length, want):
    assert losses.rampup_weight(epoch, length) == pytest.approx(want, rel=1e-12)
    tensor = losses.rampup_weight(np.array(epoch, "int32"), length)
    np.testing.assert_allclose(to_numpy(tensor), want, rtol=1e-6)


@pytest.mark.parametrize("stop", [False, True])
def test_gradients_reach_teachers_unless_stopped(stop):
    y, z, e = random_logits(3, batch=4, classes=5, seed=5)
    B = len(z)

    # For every KL term: (student index, teacher index) in inputs = z + e.
    def idx_z(b):
        return b

    def idx_ta(m):
        return idx_z(0) if m == 0 else B + m - 1

    pairs = []
    for m in range(1, B):
        pairs += [
            (idx_ta(m - 1), idx_z(m)),  # KL(TA_{m-1} <- z_m)
            (idx_ta(m - 1), idx_ta(m)),  # KL(TA_{m-1} <- TA_m)
            (idx_z(m), idx_ta(m)),  # KL(z_m <- TA_m)
        ]
    for k, (student, teacher) in enumerate(pairs):
        def term(*tensors, k=k):
            terms = losses.ahbf_loss(
                y, list(tensors[:B]), list(tensors[B:]), stop_teacher_gradient=stop
            )
            return terms["kl_terms"][k]

        grads = gradients(term, z + e)
        assert np.abs(grads[student]).max() > 1e-6, (k, "student")
        if stop:
            assert np.abs(grads[teacher]).max() == 0.0, (k, "teacher")
        else:
            assert np.abs(grads[teacher]).max() > 1e-6, (k, "teacher")


def test_total_gradient_matches_finite_differences():
    y, z, e = random_logits(2, batch=3, classes=4, seed=9, scale=1.0)

    def total(*tensors):
        return losses.ahbf_loss(y, list(tensors[:2]), list(tensors[2:]),
                                rampup_weight=0.4)["total"]

    grads = gradients(total, z + e)
    eps = 1e-3
    base = [t.astype("float64") for t in z + e]
    for i in range(len(base)):
        for pos in [(0, 0), (2, 3)]:
            plus = [t.copy() for t in base]
            minus = [t.copy() for t in base]
            plus[i][pos] += eps
            minus[i][pos] -= eps
            f = lambda ts: np_ahbf(y, ts[:2], ts[2:], 3.0, 1.5, 2.0, 4.0, 0.4)["total"]
            numeric = (f(plus) - f(minus)) / (2 * eps)
            assert grads[i][pos] == pytest.approx(numeric, rel=2e-2, abs=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(kd_weight=-0.1), "kd_weight"),
        (dict(lambda_ta=-1.0), "lambda_ta"),
        (dict(lambda_branch=-2.0), "lambda_branch"),
        (dict(rampup_weight=-0.5), "rampup_weight"),
        (dict(temperature=float("nan")), "temperature"),
    ],
)
def test_invalid_options_raise(kwargs, match):
    y, z, e = random_logits(3)
    with pytest.raises(ValueError, match=match):
        losses.ahbf_loss(y, z, e, **kwargs)


def test_wrong_list_lengths_raise():
    y, z, e = random_logits(3)
    with pytest.raises(ValueError, match=r"len\(fused_logits\)=1"):
        losses.ahbf_loss(y, z, e[:1])
    with pytest.raises(ValueError, match=r"len\(branch_logits\)=1"):
        losses.ahbf_loss(y, z[:1], [])
    with pytest.raises(TypeError, match="branch_logits"):
        losses.ahbf_loss(y, z[0], e)
    with pytest.raises(ValueError, match="rampup_epochs"):
        losses.rampup_weight(1, -1)
