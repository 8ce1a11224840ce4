"""The AHBF-OKD loss as pure functions: logits in, named loss terms out.

Everything here uses `keras.ops` only, so it runs (and differentiates) on
TensorFlow, JAX and PyTorch. The equations are those of the AHBF-OKD paper's
published training code (see `docs/method.md`, section 3):

```
p_t          = softmax(t / T) + 1e-7
KL_T(s <- t) = T^2 * mean_batch( sum_k p_t[k] * (log p_t[k] - log_softmax(s / T)[k]) )
L_CE         = CE(z_0, y) + a * sum_{b>0} CE(z_b, y) + f * sum_m CE(e_m, y)   (a = f = 1 in the paper)
kd_branch    = sum_m KL_T(TA_{m-1} <- z_m)
kd_ta        = sum_m [ KL_T(TA_{m-1} <- TA_m) + KL_T(z_m <- TA_m) ]
total        = L_CE + w * kd_weight * (lambda_branch * kd_branch + lambda_ta * kd_ta)
```

with `TA_0 = z_0` (the target branch) and `TA_m = e_m` (the m-th fused logits).
"""

import math
import numbers

import numpy as np
from keras import ops

from keras_ahbf.config import PAPER
from keras_ahbf.config import RAMPUP_SHAPES

# The label checks (and the shape/dtype helpers they share with the logits
# checks below) are the data package's: one place checks images and labels.
from keras_ahbf.data.validation import as_checkable as _as_checkable
from keras_ahbf.data.validation import check_label_values
from keras_ahbf.data.validation import check_labels as _check_labels
from keras_ahbf.data.validation import dtype_name as _dtype_name
from keras_ahbf.data.validation import is_real_dtype as _is_real_dtype
from keras_ahbf.data.validation import static_shape as _static_shape

TEACHER_EPSILON = 1e-7


def _check_number(name, value, *, positive=False):
    """Validates a non-negative (or positive) number argument.

    Returns a Python or NumPy number as a Python float (a large Python int
    would overflow the int32 a backend makes of it), a tensor unchanged (its
    value cannot be checked eagerly).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if hasattr(value, "shape"):  # a tensor: cannot be checked eagerly.
            return value
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond the float range.
        finite = False
    if not finite:
        raise ValueError(f"`{name}` must be finite. Received: {name}={value}")
    if positive and value <= 0:
        raise ValueError(f"`{name}` must be > 0. Received: {name}={value}")
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value}")
    return float(value)


# --------------------------------------------------------------------------
# Static checks of the tensor arguments. They only read shapes and dtypes
# (known at trace time on every backend, also inside `jit`), plus, for NumPy
# or Python labels, their values; backend tensors' values are never read, so
# nothing is synchronised with the device.


def _real_valued(name, value, what):
    """`value` as a checkable tensor; TypeError unless its dtype is real."""
    value = _as_checkable(name, value)
    dtype = _dtype_name(value)
    if not _is_real_dtype(dtype):
        raise TypeError(
            f"`{name}` must be a float tensor of {what}. "
            f"Received: {name} with dtype {dtype}"
        )
    return value


def _check_logits(name, value):
    """Checks one logits tensor: real dtype, rank 2. Returns its shape."""
    if value is None:
        raise TypeError(
            f"`{name}` must be a tensor of logits (batch, classes). "
            f"Received: {name}=None"
        )
    value = _real_valued(name, value, "logits (batch, classes)")
    shape = _static_shape(value)
    if shape is not None and len(shape) != 2:
        raise ValueError(
            f"`{name}` must be a 2D tensor of logits (batch, classes). "
            f"Received: {name}.shape={shape}"
        )
    return value, shape


def _merge_shapes(named_shapes, what="All branch and fused logits"):
    """Checks that 2D shapes agree where known; returns the merged shape."""
    merged = [None, None]
    first = [None, None]
    for name, shape in named_shapes:
        if shape is None:
            continue
        for axis in (0, 1):
            if shape[axis] is None:
                continue
            if merged[axis] is None:
                merged[axis], first[axis] = shape[axis], (name, shape)
            elif merged[axis] != shape[axis]:
                other, other_shape = first[axis]
                axis_name = "batch size" if axis == 0 else "number of classes"
                raise ValueError(
                    f"{what} must have the same shape (batch, classes); they "
                    f"differ in {axis_name}. Received: "
                    f"{other}.shape={other_shape} and {name}.shape={shape}"
                )
    return tuple(merged)


def _check_sample_weight(sample_weight, batch, name="sample_weight"):
    if sample_weight is None:
        return None
    sample_weight = _real_valued(name, sample_weight, "shape (batch,)")
    shape = _static_shape(sample_weight)
    if shape is not None and shape != ():
        ok = len(shape) == 1 or (len(shape) == 2 and shape[1] in (1, None))
        if not ok or (None not in (shape[0], batch) and shape[0] != batch):
            raise ValueError(
                f"`{name}` must have shape (batch,) = ({batch},), one weight "
                f"per example. Received: {name}.shape={shape}"
            )
    return sample_weight


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be a bool. Received: {name}={value!r}"
        )


def _per_sample_kl(student_logits, teacher_logits, temperature, stop_gradient):
    """Per-sample `T^2 * sum_k p_t (log p_t - log_softmax(s / T))`, float32."""
    if stop_gradient:
        teacher_logits = ops.stop_gradient(teacher_logits)
    p_t = ops.softmax(teacher_logits / temperature, axis=-1) + TEACHER_EPSILON
    log_p_s = ops.log_softmax(student_logits / temperature, axis=-1)
    kl = ops.sum(p_t * (ops.log(p_t) - log_p_s), axis=-1)
    return kl * (temperature**2)


def _weighted_mean(values, sample_weight):
    if sample_weight is None:
        return ops.mean(values)
    sample_weight = ops.reshape(ops.cast(sample_weight, values.dtype), (-1,))
    return ops.mean(values * sample_weight)


def kl_with_temperature(
    student_logits,
    teacher_logits,
    temperature=3.0,
    stop_teacher_gradient=False,
    sample_weight=None,
):
    """Temperature-scaled KL divergence `KL_T(student <- teacher)`.

    Matches PyTorch's `T**2 * KLDivLoss(reduction="batchmean")(
    log_softmax(s / T), softmax(t / T) + 1e-7)` as used by the AHBF-OKD code:

    ```
    p_t = softmax(t / T) + 1e-7
    KL_T(s <- t) = T^2 * mean_batch(sum_k p_t[k] * (log p_t[k] - log_softmax(s / T)[k]))
    ```

    Args:
        student_logits: tensor of shape `(batch, classes)`. The student `s`.
        teacher_logits: tensor of shape `(batch, classes)`. The teacher `t`.
        temperature: float. The temperature `T` (> 0).
        stop_teacher_gradient: bool. If `True`, no gradient flows into
            `teacher_logits`.
        sample_weight: optional tensor of shape `(batch,)`. Per-sample weights
            (the batch mean becomes `mean(sample_weight * kl)`).

    Returns:
        A float32 scalar tensor.

    Raises:
        ValueError: if `temperature <= 0`, or if the logits are not 2D
            tensors of the same shape.
        TypeError: for logits that are not numeric tensors.

    Example:

    >>> import numpy as np
    >>> s = np.array([[1.0, 2.0, 3.0]], "float32")
    >>> float(kl_with_temperature(s, s)) < 1e-5
    True
    """
    temperature = _check_number("temperature", temperature, positive=True)
    _check_bool("stop_teacher_gradient", stop_teacher_gradient)
    student_logits, s_shape = _check_logits("student_logits", student_logits)
    teacher_logits, t_shape = _check_logits("teacher_logits", teacher_logits)
    batch, _ = _merge_shapes(
        [("student_logits", s_shape), ("teacher_logits", t_shape)],
        what="`student_logits` and `teacher_logits`",
    )
    sample_weight = _check_sample_weight(sample_weight, batch)
    student_logits = ops.cast(student_logits, "float32")
    teacher_logits = ops.cast(teacher_logits, "float32")
    kl = _per_sample_kl(
        student_logits, teacher_logits, temperature, stop_teacher_gradient
    )
    return _weighted_mean(kl, sample_weight)


def cross_entropy(y_true, logits, sample_weight=None):
    """Mean sparse categorical cross-entropy from logits (float32 scalar).

    Args:
        y_true: integer tensor of shape `(batch,)` or `(batch, 1)`.
        logits: tensor of shape `(batch, classes)`.
        sample_weight: optional tensor of shape `(batch,)`.

    Returns:
        A float32 scalar tensor.

    Raises:
        ValueError: if `logits` is not 2D, or `y_true` does not hold one
            class id per example (NumPy labels: also if one is outside
            `[0, classes)`).
        TypeError: for non-numeric logits or labels.
    """
    logits, shape = _check_logits("logits", logits)
    batch, num_classes = shape if shape is not None else (None, None)
    y_true = _check_labels(y_true, batch, num_classes)
    sample_weight = _check_sample_weight(sample_weight, batch)
    logits = ops.cast(logits, "float32")
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    one_hot = ops.one_hot(labels, ops.shape(logits)[-1], dtype="float32")
    per_sample = -ops.sum(one_hot * ops.log_softmax(logits, axis=-1), axis=-1)
    return _weighted_mean(per_sample, sample_weight)


def rampup_weight(epoch, rampup_epochs=240, shape=PAPER.rampup_shape):
    """The epoch-based ramp-up weight of the distillation terms.

    ```
    t        = min(epoch, R) / R
    w(epoch) = 0.5 * exp(-5 * (1 - t)^2)     shape "exp" (the paper's)
    w(epoch) = 0.5 * t                       shape "linear"
    w(epoch) = 0.5                           if R = 0
    ```

    Epochs are counted from 0, so with the paper's shape `w(0) = 0.5 *
    exp(-5)` and `w(R) = 0.5`.

    Args:
        epoch: int, float or scalar tensor. The current (0-based) epoch.
        rampup_epochs: int. The ramp-up length `R` (>= 0).
        shape: str. `"exp"` (the paper's) or `"linear"`.

    Returns:
        A Python float if `epoch` is a Python number, else a float32 scalar
        tensor.

    Raises:
        ValueError: if `rampup_epochs < 0` or `shape` is unknown.

    Example:

    >>> rampup_weight(240, 240)
    0.5
    >>> rampup_weight(60, 240, shape="linear")
    0.125
    """
    _check_number("rampup_epochs", rampup_epochs)
    if shape not in RAMPUP_SHAPES:
        raise ValueError(
            f"`shape` must be one of {list(RAMPUP_SHAPES)}. Received: shape={shape!r}"
        )
    if isinstance(epoch, numbers.Real):
        if rampup_epochs == 0:
            return 0.5
        t = min(float(epoch), rampup_epochs) / rampup_epochs
        return 0.5 * t if shape == "linear" else 0.5 * math.exp(-5.0 * (1.0 - t) ** 2)
    epoch = ops.cast(epoch, "float32")
    if rampup_epochs == 0:
        return ops.convert_to_tensor(0.5, "float32")
    t = ops.minimum(epoch, float(rampup_epochs)) / float(rampup_epochs)
    if shape == "linear":
        return 0.5 * t
    return 0.5 * ops.exp(-5.0 * (1.0 - t) * (1.0 - t))


def ahbf_loss(
    y_true,
    branch_logits,
    fused_logits,
    *,
    temperature=PAPER.temperature,
    kd_weight=PAPER.kd_weight,
    lambda_ta=PAPER.lambda_ta,
    lambda_branch=PAPER.lambda_branch,
    rampup_weight=0.5,
    stop_teacher_gradient=PAPER.stop_teacher_gradient,
    aux_ce_weight=PAPER.aux_ce_weight,
    fused_ce_weight=PAPER.fused_ce_weight,
    sample_weight=None,
):
    """The AHBF-OKD training loss with each term returned by name.

    With `B` branches (`z_0` the target, `z_1 ... z_{B-1}` ever deeper) and
    `B - 1` fused outputs `e_1 ... e_{B-1}`, the teacher assistants are
    `TA_0 = z_0` and `TA_m = e_m`, and

    ```
    ce        = CE(z_0, y) + aux_ce_weight * sum_{b>0} CE(z_b, y)
                + fused_ce_weight * sum_m CE(e_m, y)
    kd_branch = sum_m KL_T(TA_{m-1} <- z_m)
    kd_ta     = sum_m [ KL_T(TA_{m-1} <- TA_m) + KL_T(z_m <- TA_m) ]
    kd        = lambda_branch * kd_branch + lambda_ta * kd_ta
    total     = ce + rampup_weight * kd_weight * kd
    ```

    where `KL_T(s <- t)` is `kl_with_temperature(s, t, T)`: the student `s`
    learns from the teacher `t`. With B = 4 that is 7 CE and 9 KL terms. All
    terms are computed in float32 whatever the logits' dtype (mixed precision).

    Args:
        y_true: integer tensor of shape `(batch,)` or `(batch, 1)`. Labels.
        branch_logits: list of `B >= 2` tensors of shape `(batch, classes)`.
            Branch logits, the target branch first.
        fused_logits: list of `B - 1` tensors of shape `(batch, classes)`.
            The fused logits `e_1 ... e_{B-1}`.
        temperature: float. Distillation temperature `T` (> 0).
        kd_weight: float. Overall weight of the distillation terms (>= 0).
        lambda_ta: float. Weight of the teacher-assistant terms (>= 0).
        lambda_branch: float. Weight of the branch terms (>= 0).
        rampup_weight: float or scalar tensor. The ramp-up factor `w`; 0.5 is
            its value once the ramp-up is over (see `rampup_weight()`).
        stop_teacher_gradient: bool. If `True`, the teacher side of every KL
            term is treated as a constant. The published code does not stop
            these gradients (the default).
        aux_ce_weight: float. Weight of the deeper branches' cross-entropy
            terms `CE(z_b, y)`, b > 0 (>= 0; 1 in the paper).
        fused_ce_weight: float. Weight of the fused outputs' cross-entropy
            terms `CE(e_m, y)` (>= 0; 1 in the paper).
        sample_weight: optional tensor of shape `(batch,)`. Per-sample weights
            applied to every CE and KL term.

    Returns:
        A dict of float32 scalar tensors: `"ce"` (weighted as above),
        `"kd_branch"`, `"kd_ta"`, `"kd"` (the weighted sum of the two),
        `"total"`, and the lists `"ce_terms"` (unweighted, branches then
        fused) and `"kl_terms"` (per level m: branch, assistant,
        assistant-to-branch).

    Raises:
        ValueError: if `len(branch_logits) < 2`, if
            `len(fused_logits) != len(branch_logits) - 1`, if
            `temperature <= 0`, if a weight is negative, if the logits are
            not 2D tensors of one common shape `(batch, classes)`, if
            `y_true` (or `sample_weight`) does not hold one value per
            example (one-hot labels included), or, for NumPy/Python labels,
            if a label is not an integer in `[0, classes)`.
        TypeError: if `branch_logits` / `fused_logits` are not lists, or
            for non-numeric logits or labels.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = [rng.normal(size=(8, 10)).astype("float32") for _ in range(3)]
    >>> e = [rng.normal(size=(8, 10)).astype("float32") for _ in range(2)]
    >>> y = rng.integers(0, 10, size=8)
    >>> terms = ahbf_loss(y, z, e, rampup_weight=0.5)
    >>> sorted(k for k in terms if not k.endswith("_terms"))
    ['ce', 'kd', 'kd_branch', 'kd_ta', 'total']

    Reference:
        Gong et al., "Adaptive Hierarchy-Branch Fusion for Online Knowledge
        Distillation", AAAI 2023.
    """
    if not isinstance(branch_logits, (list, tuple)):
        raise TypeError(
            "`branch_logits` must be a list of logits tensors, target first. "
            f"Received: branch_logits of type {type(branch_logits).__name__}"
        )
    if not isinstance(fused_logits, (list, tuple)):
        raise TypeError(
            "`fused_logits` must be a list of logits tensors. "
            f"Received: fused_logits of type {type(fused_logits).__name__}"
        )
    if len(branch_logits) < 2:
        raise ValueError(
            "Online distillation needs at least 2 branches. Received: "
            f"len(branch_logits)={len(branch_logits)}"
        )
    if len(fused_logits) != len(branch_logits) - 1:
        raise ValueError(
            "`fused_logits` must hold one tensor per fusion level, i.e. "
            f"len(branch_logits) - 1 = {len(branch_logits) - 1}. Received: "
            f"len(fused_logits)={len(fused_logits)}"
        )
    temperature = _check_number("temperature", temperature, positive=True)
    kd_weight = _check_number("kd_weight", kd_weight)
    lambda_ta = _check_number("lambda_ta", lambda_ta)
    lambda_branch = _check_number("lambda_branch", lambda_branch)
    rampup_weight = _check_number("rampup_weight", rampup_weight)
    aux_ce_weight = _check_number("aux_ce_weight", aux_ce_weight)
    fused_ce_weight = _check_number("fused_ce_weight", fused_ce_weight)
    _check_bool("stop_teacher_gradient", stop_teacher_gradient)
    checked, shapes = [], []
    for group, tensors in (("branch_logits", branch_logits), ("fused_logits", fused_logits)):
        for i, tensor in enumerate(tensors):
            tensor, shape = _check_logits(f"{group}[{i}]", tensor)
            checked.append(tensor)
            shapes.append((f"{group}[{i}]", shape))
    batch, num_classes = _merge_shapes(shapes)
    y_true = _check_labels(y_true, batch, num_classes)
    sample_weight = _check_sample_weight(sample_weight, batch)
    branch_logits = checked[: len(branch_logits)]
    fused_logits = checked[len(branch_logits) :]

    # All 2B - 1 logits tensors are stacked once, so each softmax, log-softmax
    # and reduction is one batched op instead of one op per term: the same
    # numbers, far fewer (and larger) ops for the eager and graph executors.
    num_branches = len(branch_logits)
    logits = ops.stack(
        [ops.cast(t, "float32") for t in list(branch_logits) + list(fused_logits)],
        axis=0,
    )  # (2B - 1, batch, classes): z_0 ... z_{B-1}, e_1 ... e_{B-1}

    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    one_hot = ops.one_hot(labels, ops.shape(logits)[-1], dtype="float32")
    ce_per_sample = -ops.sum(
        one_hot[None] * ops.log_softmax(logits, axis=-1), axis=-1
    )  # (2B - 1, batch)

    def ta(m):  # index of TA_m in `logits`: TA_0 = z_0, TA_m = e_m.
        return 0 if m == 0 else num_branches + m - 1

    # kl_terms order, per level m: KL(TA_{m-1} <- z_m), KL(TA_{m-1} <- TA_m),
    # KL(z_m <- TA_m).
    students, teachers = [], []
    for m in range(1, num_branches):
        students += [ta(m - 1), ta(m - 1), m]
        teachers += [m, ta(m), ta(m)]
    scaled = logits / temperature
    log_p_s = ops.log_softmax(scaled, axis=-1)
    teacher_scaled = ops.stop_gradient(scaled) if stop_teacher_gradient else scaled
    p_t = ops.softmax(teacher_scaled, axis=-1) + TEACHER_EPSILON
    log_p_t = ops.log(p_t)
    teachers = ops.convert_to_tensor(teachers, dtype="int32")
    students = ops.convert_to_tensor(students, dtype="int32")
    kl_per_sample = ops.sum(
        ops.take(p_t, teachers, axis=0)
        * (ops.take(log_p_t, teachers, axis=0) - ops.take(log_p_s, students, axis=0)),
        axis=-1,
    ) * (temperature**2)  # (3 (B - 1), batch)

    if sample_weight is not None:
        sample_weight = ops.reshape(ops.cast(sample_weight, "float32"), (1, -1))
        ce_per_sample = ce_per_sample * sample_weight
        kl_per_sample = kl_per_sample * sample_weight
    ce_vector = ops.mean(ce_per_sample, axis=-1)
    kl_vector = ops.mean(kl_per_sample, axis=-1)
    ce_terms = [ce_vector[i] for i in range(2 * num_branches - 1)]
    kl_terms = [kl_vector[i] for i in range(3 * (num_branches - 1))]

    if aux_ce_weight == 1.0 and fused_ce_weight == 1.0:
        ce = ops.sum(ce_vector)
    else:
        ce_weights = [1.0] + [float(aux_ce_weight)] * (num_branches - 1)
        ce_weights += [float(fused_ce_weight)] * (num_branches - 1)
        ce = ops.sum(ce_vector * ops.convert_to_tensor(ce_weights, "float32"))
    per_kind = ops.sum(ops.reshape(kl_vector, (num_branches - 1, 3)), axis=0)
    kd_branch = per_kind[0]
    kd_ta = per_kind[1] + per_kind[2]
    kd = lambda_branch * kd_branch + lambda_ta * kd_ta
    if not isinstance(rampup_weight, numbers.Real):
        rampup_weight = ops.cast(rampup_weight, "float32")
    total = ce + rampup_weight * kd_weight * kd
    return {
        "ce": ce,
        "kd_branch": kd_branch,
        "kd_ta": kd_ta,
        "kd": kd,
        "total": total,
        "ce_terms": ce_terms,
        "kl_terms": kl_terms,
    }
