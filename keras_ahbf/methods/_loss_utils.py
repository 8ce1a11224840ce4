"""The checks and pieces every online-distillation loss of `keras_ahbf.methods` shares.

Each method's loss (`dml_loss`, `one_loss`, `cl_ilr_loss`, `okddip_loss`,
`kdcl_loss`) validates its inputs with `check_options` and
`check_networks_logits`, computes its own teachers, and returns
`named_terms(...)`. Conventions: logits are stacked on axis 0,
`(networks, batch, classes)`, float32; per-sample terms are
`(networks, batch)` and become per-network batch means with
`weighted_means`.
"""

from keras import ops

from keras_ahbf.losses import _check_bool
from keras_ahbf.losses import _check_labels
from keras_ahbf.losses import _check_logits
from keras_ahbf.losses import _check_number
from keras_ahbf.losses import _check_sample_weight
from keras_ahbf.losses import _merge_shapes


def check_options(temperature, kd_weight, rampup_weight, stop_teacher_gradient):
    """Raises `ValueError`/`TypeError` naming the first invalid option."""
    _check_number("temperature", temperature, positive=True)
    _check_number("kd_weight", kd_weight)
    _check_number("rampup_weight", rampup_weight)
    _check_bool("stop_teacher_gradient", stop_teacher_gradient)


def check_networks_logits(logits, labels, sample_weight=None, *, minimum=2,
                          network="peer", too_few=None, extra=()):
    """Validates the networks' logits with their labels and sample weights.

    Args:
        logits: list of at least `minimum` tensors `(batch, classes)`.
        labels: integer class ids `(batch,)` or `(batch, 1)`.
        sample_weight: optional tensor `(batch,)`.
        minimum: int. Fewest networks the method accepts.
        network: str. What one network is called in messages ("peer").
        too_few: str or None. The sentence raised on fewer than `minimum`
            networks (default: "Online distillation needs at least ...").
        extra: sequence of `(name, tensor)`: further logits of the same
            shape (e.g. ONE's ensemble), checked and returned as float32.

    Returns:
        `(stacked, one_hot, sample_weight, extra)`: the logits as float32
        `(networks, batch, classes)`, the one-hot labels `(batch, classes)`
        float32, the checked sample weights (or None), and the list of the
        `extra` tensors as float32.

    Raises:
        TypeError: if `logits` is not a list or tuple, or holds non-numeric
            tensors.
        ValueError: on fewer than `minimum` networks, logits that are not 2D
            tensors of one shape, or labels or sample weights that do not
            match them.
    """
    networks = network + ("es" if network.endswith(("s", "x", "ch", "sh")) else "s")
    if not isinstance(logits, (list, tuple)):
        raise TypeError(
            f"`logits` must be a list of logits tensors, one per {network}. "
            f"Received: logits of type {type(logits).__name__}"
        )
    if len(logits) < minimum:
        sentence = too_few or f"Online distillation needs at least {minimum} {networks}."
        raise ValueError(f"{sentence} Received: len(logits)={len(logits)}")
    checked, shapes = [], []
    for i, tensor in enumerate(logits):
        tensor, shape = _check_logits(f"logits[{i}]", tensor)
        checked.append(ops.cast(tensor, "float32"))
        shapes.append((f"logits[{i}]", shape))
    others = []
    for name, tensor in extra:
        tensor, shape = _check_logits(name, tensor)
        others.append(ops.cast(tensor, "float32"))
        shapes.append((name, shape))
    what = f"All {networks}' logits" + (" and " + ", ".join(n for n, _ in extra) if extra else "")
    batch, num_classes = _merge_shapes(shapes, what=what)
    labels = _check_labels(labels, batch, num_classes)
    sample_weight = _check_sample_weight(sample_weight, batch)
    stacked = ops.stack(checked, axis=0)
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    one_hot = ops.one_hot(labels, ops.shape(stacked)[-1], dtype="float32")
    return stacked, one_hot, sample_weight, others


def cross_entropy(logits, one_hot):
    """Per-sample cross-entropy of float32 logits `(..., batch, classes)`."""
    return -ops.sum(one_hot * ops.log_softmax(logits, axis=-1), axis=-1)


def kl_divergence(log_q, log_p):
    """`KL(q || p)` per sample from log-probabilities `(..., classes)`."""
    return ops.sum(ops.exp(log_q) * (log_q - log_p), axis=-1)


def weighted_means(values, sample_weight):
    """Batch means of per-sample terms `(..., batch)`, weighted per sample."""
    if sample_weight is not None:
        values = values * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return ops.mean(values, axis=-1)


def kd_factor(kd_weight, rampup_weight):
    """`kd_weight * rampup_weight`, a Python float while the ramp-up is the constant 1."""
    if not isinstance(rampup_weight, (int, float)) or rampup_weight != 1.0:
        return ops.cast(rampup_weight, "float32") * kd_weight
    return kd_weight


def ensemble_probabilities(logits):
    """The mean of the networks' softmax probabilities (an ensemble nobody deploys)."""
    probabilities = [ops.softmax(ops.cast(z, "float32"), axis=-1) for z in logits]
    return ops.mean(ops.stack(probabilities, axis=0), axis=0)


def named_terms(ce, kl, factor, ce_extra=0.0, ce_weight=1.0, **more):
    """The loss dict of the methods: per-network terms, their sums and the total.

    Args:
        ce, kl: tensors `(networks,)`: each network's batch-mean
            cross-entropy and (unweighted) distillation term.
        factor: float or scalar tensor. The weight of the summed `kl` in
            the total (`kd_factor(kd_weight, rampup_weight)`).
        ce_extra: a further cross-entropy term counted in `"ce"` (ONE's
            ensemble).
        ce_weight: the factor of `"ce"` in the total (CL-ILR's `beta`).
        **more: further named terms returned as they are.

    Returns:
        dict: `"ce_terms"`, `"kl_terms"` (lists of scalars), `"ce"`, `"kd"`,
        `"kd_weighted"`, `"total"`, and `more`.
    """
    count = int(ce.shape[0])
    ce_sum = ops.sum(ce) + ce_extra
    kd = ops.sum(kl)
    distillation = factor * kd
    return {
        "ce_terms": [ce[k] for k in range(count)],
        "kl_terms": [kl[k] for k in range(count)],
        "ce": ce_sum,
        "kd": kd,
        "kd_weighted": distillation,
        "total": ce_weight * ce_sum + distillation,
        **more,
    }
