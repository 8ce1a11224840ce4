"""Collaborative learning with ILR sharing (CL-ILR): its loss, training model and builders.

Song and Chai, "Collaborative Learning for Deep Neural Networks", NeurIPS
2018 (arXiv:1805.11761). There is no official code; this follows the
paper and the reimplementation of the MCL-OKD repository
(https://github.com/winycg/MCL-OKD, `main_cifar_cl_ilr.py`,
`models/cl_ilr_resnet.py`), whose CIFAR-100 ResNet-32 number is the one
usually cited. See `docs/methods.md`.
"""

import keras
from keras import ops

from keras_ahbf.config import CL_ILR
from keras_ahbf.config import PAPER
from keras_ahbf.layers import _utils
from keras_ahbf.layers.gradient_scale import GradientScale
from keras_ahbf.losses import _check_number
from keras_ahbf.methods import _builders
from keras_ahbf.methods import _loss_utils
from keras_ahbf.methods.shared_trunk_model import SharedTrunkModel
from keras_ahbf.utils.validation import check_bool

__all__ = [
    "CollaborativeLearningModel",
    "cl_ilr_from_backbone",
    "cl_ilr_loss",
    "cl_ilr_resnet_cifar",
]


def cl_ilr_loss(
    logits,
    labels,
    temperature: float = CL_ILR.temperature,
    kd_weight: float = CL_ILR.kd_weight,
    ce_weight: float = CL_ILR.ce_weight,
    rampup_weight=1.0,
    stop_teacher_gradient: bool = CL_ILR.stop_teacher_gradient,
    sample_weight=None,
):
    """The collaborative-learning loss of `H` heads, as named terms.

    Each head learns from the labels and from the consensus of the other
    heads, the softened mean of their logits (Song and Chai, 2018, sec. 3;
    `main_cifar_cl_ilr.py` of MCL-OKD):

    ```
    t_h   = softmax((1 / (H - 1)) * sum_{j != h} z_j / T)     (detached)
    kl_h  = T^2 * mean_batch KL(t_h || softmax(z_h / T))
    ce_h  = mean_batch CE(y, z_h)
    total = ce_weight * sum_h ce_h + rampup_weight * kd_weight * sum_h kl_h
    ```

    The paper's per-head loss is `beta * J_hard + (1 - beta) * J_soft` with
    `beta = 0.5` and `T = 2`: `ce_weight = kd_weight = 0.5`. `J_soft` is
    the cross-entropy to the target, the KL divergence plus the target's
    entropy, a constant when the target is detached: the gradients are the
    same, and the KL divergence is 0 when the heads agree.

    Args:
        logits: list of `H >= 2` tensors `(batch, num_classes)`, one per
            head, head 0 (the deployed network) first.
        labels: integer class ids `(batch,)` or `(batch, 1)`.
        temperature: float. Softmax temperature `T` (> 0); 2 in the paper.
        kd_weight: float. Weight of the KL terms (>= 0); `1 - beta = 0.5`.
        ce_weight: float. Weight of the cross-entropy terms (>= 0);
            `beta = 0.5`.
        rampup_weight: float or scalar tensor. A further factor of the KL
            terms (1, none, in the paper).
        stop_teacher_gradient: bool. Detach the targets `t_h`.
        sample_weight: optional tensor `(batch,)`; each per-sample term is
            multiplied by it before the batch mean.

    Returns:
        dict of float32 tensors: `"ce_terms"` and `"kl_terms"` (lists of `H`
        scalars, `ce_h` and `kl_h`, unweighted), `"ce"` and `"kd"` (their
        sums), `"kd_weighted"` (`rampup_weight * kd_weight * kd`) and
        `"total"`.

    Raises:
        TypeError: if `logits` is not a list or tuple, or on non-numeric
            tensors.
        ValueError: on fewer than 2 heads, logits that are not 2D tensors of
            one shape, labels that do not match them, or an option out of
            range.

    Example:

    >>> import numpy as np
    >>> z = [np.ones((4, 3), "float32")] * 3
    >>> terms = cl_ilr_loss(z, np.array([0, 1, 2, 0]))
    >>> round(float(terms["kd"]), 6)
    0.0
    """
    _loss_utils.check_options(temperature, kd_weight, rampup_weight, stop_teacher_gradient)
    _check_number("ce_weight", ce_weight)
    stacked, one_hot, sample_weight, _ = _loss_utils.check_networks_logits(
        logits, labels, sample_weight, network="head"
    )
    num_heads = len(logits)
    ce = _loss_utils.weighted_means(_loss_utils.cross_entropy(stacked, one_hot[None]), sample_weight)
    # The mean of the other heads' logits: (sum of all - own) / (H - 1).
    others = (ops.sum(stacked, axis=0, keepdims=True) - stacked) / (num_heads - 1)
    if stop_teacher_gradient:
        others = ops.stop_gradient(others)
    log_t = ops.log_softmax(others / temperature, axis=-1)
    log_p = ops.log_softmax(stacked / temperature, axis=-1)
    kl = _loss_utils.kl_divergence(log_t, log_p) * temperature**2
    return _loss_utils.named_terms(
        ce,
        _loss_utils.weighted_means(kl, sample_weight),
        _loss_utils.kd_factor(kd_weight, rampup_weight),
        ce_weight=ce_weight,
    )


@keras.saving.register_keras_serializable(package="keras_ahbf")
class CollaborativeLearningModel(SharedTrunkModel):
    """CL-ILR: heads on shared layers, each distilled from the others' consensus.

    ```
    x_t = GradientScale(1 / H)(trunk(x))    identity forward, gradient / H backward
    z_h = head_h(x_t)                       h = 0 ... H-1 (identical copies of the last stage)
    ```

    trained with `cl_ilr_loss` (each head's cross-entropy and its KL
    divergence from the softened mean of the other heads' logits). The
    intermediate-level representation `x_t` is shared by the `H` heads;
    with `ilr=True` its gradient is *rescaled* by `1 / H` (the paper's
    backpropagation rescaling), so the shared layers are updated by the
    mean of the heads' gradients, as one network's would be, instead of
    their sum. Head 0 on the trunk is the deployed network (the plain
    backbone): `model(x)` / `predict` run only it and `target_model()`
    returns it.

    The defaults are the paper's `beta = 0.5`, `T = 2`, with the 4 heads
    split before the last stage (one level of sharing; MCL-OKD's
    reimplementation splits the 4 heads in a two-level hierarchy, 2 copies
    of stage 2 each holding 2 copies of stage 3, each split rescaled by
    1/2, which `shared_trunk_and_branches` does not build), the targets
    detached, no ramp-up.

    `fit` and `evaluate` report `loss`, `ce` and `kd` (the unweighted sums
    of the heads' cross-entropy and KL terms), `rampup_weight`,
    `kd_weighted` (what distillation adds to the loss), `ce_peer_k` and
    `kl_peer_k` for every head, `l2` when `weight_decay > 0`, then
    `peer_0_accuracy` (the target) ... `peer_{H-1}_accuracy` and
    `ensemble_accuracy` (the mean of the heads' probabilities, a teacher
    nobody deploys). Metrics passed to `compile(metrics=...)` are computed
    on head 0's logits.

    Args:
        trunk: `keras.Model`. The shared layers (images -> feature map).
        branches: `keras_ahbf.layers.HierarchicalBranches` of `H >= 2`
            heads (identical: `aux=0`).
        ilr: bool. Rescale the gradient into the shared layers by `1 / H`
            (True, the paper's CL-ILR; False gives plain multi-head
            collaborative learning).
        temperature: float. Softmax temperature `T` (> 0; 2).
        kd_weight: float. Weight of the KL terms (>= 0; `1 - beta = 0.5`).
        ce_weight: float. Weight of the cross-entropy terms (>= 0;
            `beta = 0.5`).
        stop_teacher_gradient: bool. Detach the targets (True).
        rampup_epochs: int. Ramp-up of the KL weight in epochs (>= 0; 0,
            none, the paper's). With `R > 0` the weight is
            `exp(-5 (1 - t)^2)` (`"exp"`) or `t` (`"linear"`),
            `t = min(epoch, R) / R`.
        rampup_shape: str. `"exp"` or `"linear"`.
        weight_decay: float. Coupled L2 weight decay (>= 0; see
            `OnlineDistillationModel`).
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Raises:
        TypeError: on a bad `trunk`, `branches`, `ilr` or
            `stop_teacher_gradient`.
        ValueError: on fewer than 2 heads or an option out of range.

    Example:

    ```python
    import keras_ahbf
    model = keras_ahbf.methods.cl_ilr_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    model.fit(train_ds, epochs=300, validation_data=test_ds)
    model.target_model().save("resnet32_cl_ilr.keras")
    ```

    Reference:
        Song and Chai, "Collaborative Learning for Deep Neural Networks",
        NeurIPS 2018; reimplementation followed:
        https://github.com/winycg/MCL-OKD.
    """

    method_title = "CL-ILR"

    def __init__(
        self,
        trunk,
        branches,
        *,
        ilr: bool = CL_ILR.ilr,
        temperature: float = CL_ILR.temperature,
        kd_weight: float = CL_ILR.kd_weight,
        ce_weight: float = CL_ILR.ce_weight,
        stop_teacher_gradient: bool = CL_ILR.stop_teacher_gradient,
        rampup_epochs: int = CL_ILR.rampup_epochs,
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
        self.ilr = check_bool("ilr", ilr)
        self.ce_weight = _utils.check_float("ce_weight", ce_weight, 0.0)
        self.gradient_scale = GradientScale(
            1.0 / self.num_branches if self.ilr else 1.0,
            name="ilr_gradient_scale",
            dtype=self.dtype_policy,
        )
        self._finish_init(self._trunk_input_shape())

    # ------------------------------------------------------------------- call
    def forward_all(self, inputs, training=None):
        """`{"branch_logits": [z_0, ..., z_{H-1}]}`, the shared features rescaled backward."""
        features = self.gradient_scale(self.trunk(inputs, training=training))
        _, logits = self.branches(features, training=training)
        return {"branch_logits": list(logits)}

    # ------------------------------------------------------------ training
    def distillation_loss(self, y, outputs, sample_weight=None):
        """`cl_ilr_loss` of the heads' logits, and its logged terms."""
        w = self.rampup_weight()
        terms = cl_ilr_loss(
            outputs["branch_logits"],
            y,
            temperature=self.temperature,
            kd_weight=self.kd_weight,
            ce_weight=self.ce_weight,
            rampup_weight=w,
            stop_teacher_gradient=self.stop_teacher_gradient,
            sample_weight=sample_weight,
        )
        return self._loss_and_logs(terms, w)

    def accuracy_logits(self, outputs):
        logits = outputs["branch_logits"]
        named = {f"peer_{k}_accuracy": z for k, z in enumerate(logits)}
        named["ensemble_accuracy"] = _loss_utils.ensemble_probabilities(logits)
        return named

    # -------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update({
            "ilr": self.ilr,
            "ce_weight": self.ce_weight,
        })
        return config


# ---------------------------------------------------------------- builders


def cl_ilr_from_backbone(backbone: str, num_classes: int = 100,
                         num_peers: int = CL_ILR.num_peers, input_shape=(32, 32, 3),
                         name=None, **options):
    """A `CollaborativeLearningModel` of a named backbone: `num_peers` heads on its shared layers.

    The shared layers are the backbone up to its last stage; each head is
    the last stage and a classifier, so shared layers + head 0 is the
    plain backbone.

    Args:
        backbone: str. A name of `keras_ahbf.models.available_backbones()`.
        num_classes: int. Number of classes (>= 1).
        num_peers: int. Number of heads `H` (>= 2; 4).
        input_shape: tuple. `(height, width, channels)`.
        name: str. Model name (default `"cl_ilr_<backbone>"`).
        **options: `CollaborativeLearningModel` options (`ilr`,
            `temperature`, `kd_weight`, `ce_weight`,
            `stop_teacher_gradient`, `rampup_epochs`, `rampup_shape`,
            `weight_decay`).

    Returns:
        An uncompiled, built `CollaborativeLearningModel`.

    Raises:
        ValueError: for an unknown backbone, `num_peers < 2` or invalid
            options.
    """
    return _cl_ilr(backbone, None, num_classes, num_peers, input_shape, name, options)


def cl_ilr_resnet_cifar(depth: int = 32, num_classes: int = 100,
                        num_peers: int = CL_ILR.num_peers, input_shape=(32, 32, 3),
                        name=None, **options):
    """A `CollaborativeLearningModel` of a CIFAR ResNet-`depth`.

    Args:
        depth: int. One of 8, 14, 20, 32, 44, 56, 110.
        num_classes, num_peers, input_shape, name, **options: see
            `cl_ilr_from_backbone`.

    Returns:
        An uncompiled, built `CollaborativeLearningModel`.

    Raises:
        ValueError: on an unsupported `depth`, `num_peers < 2` or invalid
            options.

    Example:

    ```python
    model = keras_ahbf.methods.cl_ilr_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    ```
    """
    backbone, builder = _builders.cifar_resnet(depth)
    return _cl_ilr(backbone, builder, num_classes, num_peers, input_shape, name, options)


def _cl_ilr(backbone, builder, num_classes, num_peers, input_shape, name, options):
    return _builders.shared_trunk_model(
        CollaborativeLearningModel, backbone, builder, num_classes, num_peers, input_shape, name, options,
        minimum=2, prefix="cl_ilr",
    )
