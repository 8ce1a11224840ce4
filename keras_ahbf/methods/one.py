"""On-the-fly native ensemble (ONE): its loss, gate, training model and builders.

Lan, Zhu and Gong, "Knowledge Distillation by On-the-Fly Native Ensemble",
NeurIPS 2018 (arXiv:1806.04606); the authors' code is
https://github.com/Lan1991Xu/ONE_NeurIPS2018 (`cifar_one.py`,
`models/cifar/resnet.py`, `loss/kl_loss.py`, `utils/ramps.py`).
See `docs/methods.md`.
"""

import keras
from keras import ops

from keras_ahbf.config import ONE
from keras_ahbf.config import PAPER
from keras_ahbf.layers import _utils
from keras_ahbf.losses import TEACHER_EPSILON
from keras_ahbf.methods import _builders
from keras_ahbf.methods import _loss_utils
from keras_ahbf.methods.shared_trunk_model import SharedTrunkModel

__all__ = [
    "NativeEnsembleGate",
    "NativeEnsembleModel",
    "one_from_backbone",
    "one_loss",
    "one_resnet_cifar",
]


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
        cross-entropy terms, `ce_e` included), `"kd"` (`sum_b kl_b`),
        `"kd_weighted"` (what distillation adds to the loss) and `"total"`.

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
    _loss_utils.check_options(temperature, kd_weight, rampup_weight, stop_teacher_gradient)
    stacked, one_hot, sample_weight, (ensemble,) = _loss_utils.check_networks_logits(
        logits, labels, sample_weight, network="branch",
        extra=[("ensemble_logits", ensemble_logits)],
    )
    ce = _loss_utils.weighted_means(_loss_utils.cross_entropy(stacked, one_hot[None]), sample_weight)
    ce_ensemble = _loss_utils.weighted_means(
        _loss_utils.cross_entropy(ensemble, one_hot), sample_weight
    )
    teacher = ops.stop_gradient(ensemble) if stop_teacher_gradient else ensemble
    p_e = ops.softmax(teacher / temperature, axis=-1) + TEACHER_EPSILON
    log_p = ops.log_softmax(stacked / temperature, axis=-1)
    kl = ops.sum(p_e[None] * (ops.log(p_e)[None] - log_p), axis=-1) * temperature**2
    return _loss_utils.named_terms(
        ce,
        _loss_utils.weighted_means(kl, sample_weight),
        _loss_utils.kd_factor(kd_weight, rampup_weight),
        ce_extra=ce_ensemble,
        ce_ensemble=ce_ensemble,
    )


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
    EXTRA_TERMS = ("ce_ensemble",)

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
            temperature=temperature,
            kd_weight=kd_weight,
            stop_teacher_gradient=stop_teacher_gradient,
            rampup_epochs=rampup_epochs,
            rampup_shape=rampup_shape,
            weight_decay=weight_decay,
            **kwargs,
        )
        self.gate = NativeEnsembleGate(self.num_branches, name="gate", dtype=self.dtype_policy)
        self._finish_init(self._trunk_input_shape())

    def _build_extra(self, trunk_shape):
        if not self.gate.built:
            self.gate.build(trunk_shape)

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
        return self._loss_and_logs(terms, w)

    def accuracy_logits(self, outputs):
        named = {f"peer_{k}_accuracy": z for k, z in enumerate(outputs["branch_logits"])}
        named["ensemble_accuracy"] = outputs["ensemble_logits"]
        return named


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
    backbone, builder = _builders.cifar_resnet(depth)
    return _one(backbone, builder, num_classes, num_peers, input_shape, name, options)


def _one(backbone, builder, num_classes, num_peers, input_shape, name, options):
    return _builders.shared_trunk_model(
        NativeEnsembleModel, backbone, builder, num_classes, num_peers, input_shape, name, options,
        minimum=2, prefix="one",
    )
