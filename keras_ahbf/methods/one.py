"""On-the-fly native ensemble (ONE): its loss, gate, training model and builders.

Lan, Zhu and Gong, "Knowledge Distillation by On-the-Fly Native Ensemble",
NeurIPS 2018 (arXiv:1806.04606); the authors' code is
https://github.com/Lan1991Xu/ONE_NeurIPS2018 (`cifar_one.py`,
`models/cifar/resnet.py`, `loss/kl_loss.py`, `utils/ramps.py`).
See `docs/methods.md`.

The module also holds `SharedTrunkModel`, the base of the methods whose
networks share low-level layers and differ in their last stage (ONE,
CL-ILR): a trunk, identical branches, and the deployed network trunk +
branch 0.
"""

import functools

import keras
from keras import ops

from keras_ahbf import losses as ahbf_losses
from keras_ahbf.config import ONE
from keras_ahbf.config import PAPER
from keras_ahbf.layers import _utils
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.losses import TEACHER_EPSILON
from keras_ahbf.losses import _check_bool
from keras_ahbf.losses import _check_labels
from keras_ahbf.losses import _check_logits
from keras_ahbf.losses import _check_number
from keras_ahbf.losses import _check_sample_weight
from keras_ahbf.losses import _merge_shapes
from keras_ahbf.methods.online_distillation_model import OnlineDistillationModel
from keras_ahbf.methods.shared_trunk import shared_trunk_and_branches
from keras_ahbf.utils.validation import check_bool

__all__ = [
    "NativeEnsembleGate",
    "NativeEnsembleModel",
    "SharedTrunkModel",
    "one_from_backbone",
    "one_loss",
    "one_resnet_cifar",
]


def _check_logits_list(logits, what="branch", minimum=2):
    """Validates a list of logits; returns them as float32 and `(batch, classes)`."""
    if not isinstance(logits, (list, tuple)):
        raise TypeError(
            f"`logits` must be a list of logits tensors, one per {what}. "
            f"Received: logits of type {type(logits).__name__}"
        )
    if len(logits) < minimum:
        raise ValueError(
            f"Online distillation needs at least {minimum} {what}es' logits. "
            f"Received: len(logits)={len(logits)}"
        )
    checked, shapes = [], []
    for i, tensor in enumerate(logits):
        tensor, shape = _check_logits(f"logits[{i}]", tensor)
        checked.append(ops.cast(tensor, "float32"))
        shapes.append((f"logits[{i}]", shape))
    return checked, shapes


def _cross_entropy(logits, one_hot):
    """Per-sample cross-entropy of float32 logits `(..., batch, classes)`."""
    return -ops.sum(one_hot * ops.log_softmax(logits, axis=-1), axis=-1)


def _weighted_means(values, sample_weight):
    """Batch means of per-sample terms `(..., batch)`, weighted per sample."""
    if sample_weight is not None:
        values = values * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return ops.mean(values, axis=-1)


def _kd_factor(kd_weight, rampup_weight):
    if not isinstance(rampup_weight, (int, float)) or rampup_weight != 1.0:
        return ops.cast(rampup_weight, "float32") * kd_weight
    return kd_weight


def one_loss(
    logits,
    ensemble_logits,
    labels,
    temperature: float = ONE.temperature,
    kd_weight: float = ONE.kd_weight,
    rampup_weight=1.0,
    stop_teacher_gradient: bool = ONE.stop_teacher_gradient,
    sample_weight=None,
):
    """The ONE loss of `m` branches and their gated ensemble, as named terms.

    Every branch and the gated ensemble `z_e = sum_b g_b z_b` learn from the
    labels, and every branch is distilled from the ensemble (Lan et al.,
    2018, eq. 6, and `cifar_one.py` / `loss/kl_loss.py` of the authors'
    code):

    ```
    p_e     = softmax(z_e / T) + 1e-7            (the teacher, detached)
    kl_b    = T^2 * mean_batch sum_c p_e (log p_e - log_softmax(z_b / T))
    ce_b    = mean_batch CE(y, z_b);   ce_e = mean_batch CE(y, z_e)
    total   = sum_b ce_b + ce_e + rampup_weight * kd_weight * sum_b kl_b
    ```

    `T = 3` in the paper and the code; the `1e-7` added to the teacher's
    probabilities is the code's (`KLLoss`). With
    `stop_teacher_gradient=True` (the code's `Variable(target.data)`) the
    ensemble, and so the gate, learns from its cross-entropy only.

    Args:
        logits: list of `m >= 2` tensors `(batch, num_classes)`, one per
            branch, branch 0 (the deployed network) first.
        ensemble_logits: tensor `(batch, num_classes)`, the gated ensemble.
        labels: integer class ids `(batch,)` or `(batch, 1)`.
        temperature: float. Softmax temperature `T` (> 0); 3 in the paper.
        kd_weight: float. Weight of the KL terms (>= 0); 1 in the paper.
        rampup_weight: float or scalar tensor. A further factor of the KL
            terms: the code's consistency ramp-up `exp(-5 (1 - t)^2)`.
        stop_teacher_gradient: bool. Detach the ensemble in the KL terms.
        sample_weight: optional tensor `(batch,)`; each per-sample term is
            multiplied by it before the batch mean.

    Returns:
        dict of float32 tensors: `"ce_terms"` and `"kl_terms"` (lists of `m`
        scalars, `ce_b` and `kl_b`), `"ce_ensemble"` (`ce_e`), `"ce"` (all
        cross-entropy terms, `ce_e` included), `"kd"` (`sum_b kl_b`) and
        `"total"`.

    Raises:
        TypeError: if `logits` is not a list or tuple, or on non-numeric
            tensors.
        ValueError: on fewer than 2 branches, logits that are not 2D tensors
            of one shape, labels that do not match them, or an option out
            of range.

    Example:

    >>> import numpy as np
    >>> z = [np.zeros((4, 3), "float32"), np.zeros((4, 3), "float32")]
    >>> terms = one_loss(z, np.zeros((4, 3), "float32"), np.array([0, 1, 2, 0]))
    >>> round(float(terms["kd"]), 5)
    0.0
    """
    _check_number("temperature", temperature, positive=True)
    _check_number("kd_weight", kd_weight)
    _check_number("rampup_weight", rampup_weight)
    _check_bool("stop_teacher_gradient", stop_teacher_gradient)
    checked, shapes = _check_logits_list(logits)
    ensemble, ensemble_shape = _check_logits("ensemble_logits", ensemble_logits)
    shapes.append(("ensemble_logits", ensemble_shape))
    batch, num_classes = _merge_shapes(shapes, what="All branch and ensemble logits")
    labels = _check_labels(labels, batch, num_classes)
    sample_weight = _check_sample_weight(sample_weight, batch)

    num_branches = len(checked)
    stacked = ops.stack(checked, axis=0)  # (m, batch, classes)
    ensemble = ops.cast(ensemble, "float32")
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    one_hot = ops.one_hot(labels, ops.shape(stacked)[-1], dtype="float32")
    ce = _weighted_means(_cross_entropy(stacked, one_hot[None]), sample_weight)
    ce_ensemble = _weighted_means(_cross_entropy(ensemble, one_hot), sample_weight)
    teacher = ops.stop_gradient(ensemble) if stop_teacher_gradient else ensemble
    p_e = ops.softmax(teacher / temperature, axis=-1) + TEACHER_EPSILON
    log_p = ops.log_softmax(stacked / temperature, axis=-1)
    kl = ops.sum(p_e[None] * (ops.log(p_e)[None] - log_p), axis=-1) * temperature**2
    kl = _weighted_means(kl, sample_weight)  # (m,)
    ce_sum = ops.sum(ce) + ce_ensemble
    kd = ops.sum(kl)
    return {
        "ce_terms": [ce[b] for b in range(num_branches)],
        "kl_terms": [kl[b] for b in range(num_branches)],
        "ce_ensemble": ce_ensemble,
        "ce": ce_sum,
        "kd": kd,
        "total": ce_sum + _kd_factor(kd_weight, rampup_weight) * kd,
    }


@keras.saving.register_keras_serializable(package="keras_ahbf")
class NativeEnsembleGate(keras.layers.Layer):
    """The gate of ONE: per-sample weights of the branches from the shared features.

    ```
    g = softmax(ReLU(BatchNorm(Dense_m(GlobalAveragePooling(x)))))     # (batch, m)
    ```

    as `control_v1` / `bn_v1` of the authors' `ONE_ResNet` (their
    `AvgPool2d(16)` is the global average pool of the 16x16 shared map of
    CIFAR images; this layer pools any size). The BatchNorm uses PyTorch's
    defaults (momentum 0.1, i.e. Keras `momentum=0.9`, epsilon 1e-5).

    Args:
        num_branches: int. Number of branches `m` (>= 1).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: the shared feature map `(batch, height, width, channels)`.
        training: bool. Whether BatchNorm runs in training mode.

    Returns:
        A tensor `(batch, num_branches)` of weights summing to 1 per sample.

    Raises:
        ValueError: on `num_branches < 1` or an input that is not 4D
            channels-last with a known channel count.

    Example:

    >>> import numpy as np
    >>> gate = NativeEnsembleGate(3)
    >>> g = np.asarray(gate(np.ones((2, 4, 4, 8), "float32")))
    >>> g.shape, np.allclose(g.sum(-1), 1.0)
    ((2, 3), True)

    Reference:
        Lan, Zhu and Gong, "Knowledge Distillation by On-the-Fly Native
        Ensemble", NeurIPS 2018; code:
        https://github.com/Lan1991Xu/ONE_NeurIPS2018.
    """

    def __init__(self, num_branches: int, **kwargs):
        super().__init__(**kwargs)
        self.num_branches = _utils.check_int("num_branches", num_branches, 1)

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        channels = input_shape[-1]
        self.dense = keras.layers.Dense(
            self.num_branches, name="dense", dtype=self.dtype_policy
        )
        self.dense.build((input_shape[0], channels))
        self.batch_norm = _utils.batch_norm("batch_norm", self.dtype_policy)
        self.batch_norm.build((input_shape[0], self.num_branches))
        self.built = True

    def call(self, inputs, training=None):
        pooled = ops.mean(inputs, axis=(1, 2))
        scores = self.batch_norm(self.dense(pooled), training=training)
        return ops.softmax(ops.relu(scores), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_branches)

    def get_config(self):
        config = super().get_config()
        config.update({"num_branches": self.num_branches})
        return config


class SharedTrunkModel(OnlineDistillationModel):
    """Base of the methods whose networks share a trunk: trunk + identical branches.

    Holds a `trunk` (images -> shared feature map) and a
    `keras_ahbf.layers.HierarchicalBranches` (usually `aux=0`: identical
    branches, see `keras_ahbf.methods.shared_trunk_and_branches`). Branch 0
    on the trunk is the deployed network: `model(x)` runs only the trunk and
    branch 0, `target_model()` returns them as a plain `keras.Model`.
    Subclasses add their own layers in `__init__` (before calling
    `_finish_init`) and build them in `_build_extra(trunk_shape)`.

    Args:
        trunk: `keras.Model`. The shared layers (a known input shape lets
            the model build itself at construction).
        branches: `HierarchicalBranches` with at least 2 branches.
        **kwargs: `OnlineDistillationModel` arguments.

    Raises:
        TypeError: on a `trunk` that is not a Keras model or layer, or
            `branches` that is not a `HierarchicalBranches`.
        ValueError: on fewer than 2 branches.
    """

    NESTED_CONFIG = ("trunk", "branches")
    target_metric = "peer_0_accuracy"

    def __init__(self, trunk, branches, **kwargs):
        super().__init__(**kwargs)
        cls = type(self).__name__
        if not isinstance(trunk, keras.layers.Layer):
            raise TypeError(
                f"`trunk` of `{cls}` must be a Keras model or layer. "
                f"Received: trunk={trunk!r}"
            )
        if not isinstance(branches, HierarchicalBranches):
            raise TypeError(
                f"`branches` of `{cls}` must be a "
                f"`keras_ahbf.layers.HierarchicalBranches`. Received: branches={branches!r}"
            )
        if branches.num_branches < 2:
            raise ValueError(
                f"`{cls}` needs at least 2 branches. "
                f"Received: num_branches={branches.num_branches}"
            )
        self.trunk = trunk
        self.branches = branches
        self.num_branches = branches.num_branches

    def _trunk_input_shape(self):
        if not isinstance(self.trunk, keras.Model):
            return None
        try:
            shape = tuple(self.trunk.input_shape)
        except (AttributeError, TypeError, ValueError):  # not built, or several inputs.
            return None
        return shape if len(shape) == 4 else None

    @property
    def num_classes(self) -> int:
        """Number of classes of every branch."""
        return self.branches.num_classes

    def _accuracy_names(self):
        return [f"peer_{k}_accuracy" for k in range(self.num_branches)] + ["ensemble_accuracy"]

    def _build_extra(self, trunk_shape):
        """Builds the subclass's own layers on the trunk's output shape."""
        del trunk_shape

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                f"`{type(self).__name__}` expects images of shape (batch, height, "
                f"width, channels). Received: input_shape={input_shape}"
            )
        if not self.trunk.built:
            self.trunk.build(input_shape)
        spec = self.trunk.compute_output_spec(
            keras.KerasTensor(input_shape, dtype=self.compute_dtype)
        )
        trunk_shape = tuple(spec.shape)
        if not self.branches.built:
            self.branches.build(trunk_shape)
        self._build_extra(trunk_shape)
        self._input_shape_for_build = input_shape
        self.built = True

    def forward_target(self, inputs, training=None):
        """Branch 0's logits (only the trunk and branch 0 run)."""
        features = self.trunk(inputs, training=training)
        return self.branches.call_branch(0, features, training=training)[1]

    def target_logits(self, outputs):
        return outputs["branch_logits"][0]

    def target_model(self, name=None):
        """Returns the deployable network: trunk + branch 0.

        A plain functional `keras.Model` (images -> logits); it shares its
        layers and weights with this model (save or clone it for an
        independent copy).

        Args:
            name: str. Name of the returned model (default
                `"<model name>_target"`).

        Returns:
            A `keras.Model`.
        """
        self._check_built()
        inputs = keras.Input(shape=self._input_shape_for_build[1:], name="images")
        features = self.branches.stages[0](self.trunk(inputs))
        pooled = keras.layers.GlobalAveragePooling2D(
            name="branch_0_pool", dtype=self.dtype_policy
        )(features)
        logits = self.branches.heads[0](pooled)
        return keras.Model(inputs, logits, name=name or f"{self.name}_target")

    def get_config(self):
        config = super().get_config()
        config.update({
            "trunk": keras.saving.serialize_keras_object(self.trunk),
            "branches": keras.saving.serialize_keras_object(self.branches),
        })
        return config


def _ensemble_probabilities(logits):
    probabilities = [ops.softmax(ops.cast(z, "float32"), axis=-1) for z in logits]
    return ops.mean(ops.stack(probabilities, axis=0), axis=0)


@keras.saving.register_keras_serializable(package="keras_ahbf")
class NativeEnsembleModel(SharedTrunkModel):
    """ONE: identical branches on a shared trunk, distilled from their gated ensemble.

    ```
    x_t = trunk(x);   z_b = branch_b(x_t)   b = 0 ... m-1
    g   = NativeEnsembleGate(x_t)           (batch, m), per-sample branch weights
    z_e = sum_b g_b * z_b                   the on-the-fly native ensemble (teacher)
    ```

    trained with `one_loss` (every branch's and the ensemble's
    cross-entropy, plus `T^2 * KL(softmax(z_e / T) || softmax(z_b / T))`
    for every branch, the ensemble detached, the KL terms ramped up). Branch
    0 on the trunk is the deployed network (the plain backbone):
    `model(x)` / `predict` run only it and `target_model()` returns it.

    The defaults are the authors' CIFAR code (`cifar_one.py`): `T = 3`, KL
    weight 1, the teacher detached, and the consistency ramp-up
    `exp(-5 (1 - t)^2)`, `t = min(epoch, 80) / 80`, from
    `utils/ramps.py` (`--consistency_rampup 80` of 300 epochs); the paper
    mentions no ramp-up (the README recommends one). With `R > 0` this is
    `2 * keras_ahbf.losses.rampup_weight(epoch, R, "exp")`; `rampup_epochs=0`
    gives the full weight from the first step (the paper).

    `fit` and `evaluate` report `loss`, `ce` (every cross-entropy term,
    the ensemble's included), `kd` (the sum of the KL terms),
    `rampup_weight`, `kd_weighted` (what distillation adds to the loss),
    `ce_ensemble`, `ce_peer_k` and `kl_peer_k` for every branch, `l2` when
    `weight_decay > 0`, then `peer_0_accuracy` (the target) ...
    `peer_{m-1}_accuracy` and `ensemble_accuracy` (the gated ensemble, the
    teacher). Metrics passed to `compile(metrics=...)` are computed on
    branch 0's logits.

    Args:
        trunk: `keras.Model`. The shared low-level layers (images -> feature
            map).
        branches: `keras_ahbf.layers.HierarchicalBranches` of `m >= 2`
            branches (identical in ONE: `aux=0`).
        temperature: float. Softmax temperature `T` (> 0; 3).
        kd_weight: float. Weight of the KL terms (>= 0; 1).
        stop_teacher_gradient: bool. Detach the ensemble in the KL terms
            (True, the authors' code).
        rampup_epochs: int. Ramp-up length `R` in epochs (>= 0; 80 of the
            300-epoch CIFAR recipe).
        rampup_shape: str. `"exp"` (the code's sigmoid ramp-up) or
            `"linear"`.
        weight_decay: float. Coupled L2 weight decay (>= 0; see
            `OnlineDistillationModel`).
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Raises:
        TypeError: on a bad `trunk`, `branches` or
            `stop_teacher_gradient`.
        ValueError: on fewer than 2 branches or an option out of range.

    Example:

    ```python
    import keras_ahbf
    model = keras_ahbf.methods.one_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    model.fit(train_ds, epochs=300, validation_data=test_ds)
    model.target_model().save("resnet32_one.keras")
    ```

    Reference:
        Lan, Zhu and Gong, "Knowledge Distillation by On-the-Fly Native
        Ensemble", NeurIPS 2018; code:
        https://github.com/Lan1991Xu/ONE_NeurIPS2018.
    """

    method_title = "ONE"

    def __init__(
        self,
        trunk,
        branches,
        *,
        temperature: float = ONE.temperature,
        kd_weight: float = ONE.kd_weight,
        stop_teacher_gradient: bool = ONE.stop_teacher_gradient,
        rampup_epochs: int = ONE.rampup_epochs,
        rampup_shape: str = PAPER.rampup_shape,
        weight_decay: float = 0.0,
        **kwargs,
    ):
        super().__init__(
            trunk,
            branches,
            rampup_epochs=rampup_epochs,
            rampup_shape=rampup_shape,
            weight_decay=weight_decay,
            **kwargs,
        )
        self.temperature = _utils.check_float("temperature", temperature, 0.0, exclusive=True)
        self.kd_weight = _utils.check_float("kd_weight", kd_weight, 0.0)
        self.stop_teacher_gradient = check_bool("stop_teacher_gradient", stop_teacher_gradient)
        self.gate = NativeEnsembleGate(self.num_branches, name="gate", dtype=self.dtype_policy)
        self._finish_init(self._trunk_input_shape())

    def _build_extra(self, trunk_shape):
        if not self.gate.built:
            self.gate.build(trunk_shape)

    def _make_metrics(self):
        mean = keras.metrics.Mean
        acc = keras.metrics.SparseCategoricalAccuracy
        names = ["ce", "kd", "rampup_weight", "kd_weighted", "ce_ensemble"]
        names += [f"ce_peer_{k}" for k in range(self.num_branches)]
        names += [f"kl_peer_{k}" for k in range(self.num_branches)]
        trackers = {name: mean(name=name) for name in names}
        if self.weight_decay:
            trackers["l2"] = mean(name="l2")
        for name in self._accuracy_names():
            trackers[name] = acc(name=name)
        return trackers

    # ------------------------------------------------------------------- call
    def forward_all(self, inputs, training=None):
        """`{"branch_logits": [z_0, ...], "gate": g, "ensemble_logits": z_e}`."""
        features = self.trunk(inputs, training=training)
        gate = ops.cast(self.gate(features, training=training), "float32")
        _, logits = self.branches(features, training=training)
        ensemble = sum(
            (gate[:, b : b + 1] * ops.cast(z, "float32") for b, z in enumerate(logits)),
        )
        return {"branch_logits": list(logits), "gate": gate, "ensemble_logits": ensemble}

    # ------------------------------------------------------------ training
    def rampup_weight(self):
        """The factor of the KL terms this epoch, in [0, 1] (1 without ramp-up)."""
        if not self.rampup_epochs:
            return ops.convert_to_tensor(1.0, "float32")
        return 2.0 * ahbf_losses.rampup_weight(self.epoch, self.rampup_epochs, self.rampup_shape)

    def distillation_loss(self, y, outputs, sample_weight=None):
        """`one_loss` of the branches and the gated ensemble, and its logged terms."""
        w = self.rampup_weight()
        terms = one_loss(
            outputs["branch_logits"],
            outputs["ensemble_logits"],
            y,
            temperature=self.temperature,
            kd_weight=self.kd_weight,
            rampup_weight=w,
            stop_teacher_gradient=self.stop_teacher_gradient,
            sample_weight=sample_weight,
        )
        logged = {"ce": terms["ce"], "kd": terms["kd"], "rampup_weight": w,
                  "kd_weighted": terms["total"] - terms["ce"],
                  "ce_ensemble": terms["ce_ensemble"]}
        for k in range(self.num_branches):
            logged[f"ce_peer_{k}"] = terms["ce_terms"][k]
            logged[f"kl_peer_{k}"] = terms["kl_terms"][k]
        return terms["total"], logged

    def accuracy_logits(self, outputs):
        named = {f"peer_{k}_accuracy": z for k, z in enumerate(outputs["branch_logits"])}
        named["ensemble_accuracy"] = outputs["ensemble_logits"]
        return named

    # -------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update({
            "temperature": self.temperature,
            "kd_weight": self.kd_weight,
            "stop_teacher_gradient": self.stop_teacher_gradient,
        })
        return config


# ---------------------------------------------------------------- builders


def one_from_backbone(backbone: str, num_classes: int = 100, num_peers: int = ONE.num_peers,
                      input_shape=(32, 32, 3), name=None, **options):
    """A `NativeEnsembleModel` of a named backbone: its last stage copied `num_peers` times.

    The trunk is the backbone up to its last stage; each branch is the last
    stage and a classifier, so trunk + branch 0 is the plain backbone (the
    split of the authors' ResNets: `layer3` is the branch).

    Args:
        backbone: str. A name of `keras_ahbf.models.available_backbones()`.
        num_classes: int. Number of classes (>= 1).
        num_peers: int. Number of branches `m` (>= 2; 3 in the paper's CIFAR
            experiments).
        input_shape: tuple. `(height, width, channels)`.
        name: str. Model name (default `"one_<backbone>"`).
        **options: `NativeEnsembleModel` options (`temperature`,
            `kd_weight`, `stop_teacher_gradient`, `rampup_epochs`,
            `rampup_shape`, `weight_decay`).

    Returns:
        An uncompiled, built `NativeEnsembleModel`.

    Raises:
        ValueError: for an unknown backbone, `num_peers < 2` or invalid
            options.
    """
    return _one(backbone, None, num_classes, num_peers, input_shape, name, options)


def one_resnet_cifar(depth: int = 32, num_classes: int = 100, num_peers: int = ONE.num_peers,
                     input_shape=(32, 32, 3), name=None, **options):
    """A `NativeEnsembleModel` of a CIFAR ResNet-`depth` (the paper's setting).

    Args:
        depth: int. One of 8, 14, 20, 32, 44, 56, 110.
        num_classes, num_peers, input_shape, name, **options: see
            `one_from_backbone`.

    Returns:
        An uncompiled, built `NativeEnsembleModel`.

    Raises:
        ValueError: on an unsupported `depth`, `num_peers < 2` or invalid
            options.

    Example:

    ```python
    model = keras_ahbf.methods.one_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    ```
    """
    from keras_ahbf import models

    _utils.check_int("depth", depth, 1)
    builder = functools.partial(models.resnet_cifar, depth=depth)
    return _one(f"resnet{depth}", builder, num_classes, num_peers, input_shape, name, options)


def _one(backbone, builder, num_classes, num_peers, input_shape, name, options):
    num_peers = _utils.check_int("num_peers", num_peers, 2)
    trunk, branches = shared_trunk_and_branches(
        backbone, num_classes, num_peers, input_shape, builder=builder
    )
    return NativeEnsembleModel(trunk, branches, name=name or f"one_{backbone}", **options)
