"""OKDDip (online knowledge distillation with diverse peers): `okddip_loss`, `OKDDipModel`, builders.

Chen, Mei, Wang, Feng and Chen, "Online Knowledge Distillation with Diverse
Peers", AAAI 2020 (arXiv:1912.00350); the authors' code is
https://github.com/DefangChen/OKDDip-AAAI2020 (`train_GL.py`,
`models/model_cifar/resnet_GL.py`). See `docs/methods.md`.
"""

import keras
from keras import ops

from keras_ahbf.config import OKDDIP
from keras_ahbf.config import PAPER
from keras_ahbf.layers import _utils
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.peer_attention import PeerAttention
from keras_ahbf.methods import _builders
from keras_ahbf.methods import _loss_utils
from keras_ahbf.methods.shared_trunk_model import SharedTrunkModel

__all__ = [
    "OKDDipModel",
    "okddip_from_backbone",
    "okddip_loss",
    "okddip_resnet_cifar",
]


def okddip_loss(
    logits,
    attention,
    labels,
    temperature: float = OKDDIP.temperature,
    kd_weight: float = OKDDIP.kd_weight,
    rampup_weight=1.0,
    stop_teacher_gradient: bool = OKDDIP.stop_teacher_gradient,
    sample_weight=None,
):
    """The two-level OKDDip loss of a group leader and `n` auxiliary peers.

    `logits[0]` is the group leader's (the deployed network), `logits[1:]`
    the `n = m - 1` auxiliary peers'. Auxiliary peer `a` is distilled from
    its own attention-weighted aggregate of the auxiliary peers' logits
    (first level), the leader from their plain mean (second level):

    ```
    t_a     = sum_b attention[:, a, b] * z_b            (a, b = 1 ... n)
    e       = 1/n * sum_b z_b
    kl_a    = T^2 * mean_batch KL(softmax(t_a / T) || softmax(z_a / T))
    kl_0    = T^2 * mean_batch KL(softmax(e / T)   || softmax(z_0 / T))
    ce_k    = mean_batch CE(y, z_k)                      (k = 0 ... n)
    total   = sum_k ce_k + rampup_weight * kd_weight * sum_k kl_k
    ```

    This is `train_GL.py` of the authors' code (`loss_true + CE(x_stu) +
    alpha * consistency_weight * (loss_group + KL(x_stu, mean))`, with
    `KL_Loss` at temperature `T`): the aggregation and the leader's
    ensemble are taken over logits, and the attention includes each peer's
    own prediction. The code detaches nothing: the gradient of `kl_a`
    reaches every auxiliary peer and the attention's projections, the one
    of `kl_0` reaches the auxiliary peers. With
    `stop_teacher_gradient=True` the peers' logits are detached inside
    `t_a` and `e`, but not the attention weights, so the attention still
    learns.

    Args:
        logits: list of `m >= 3` tensors `(batch, num_classes)`: the group
            leader first, then the auxiliary peers.
        attention: tensor `(batch, n, n)`, `n = m - 1`: row `a` holds
            auxiliary peer `a`'s weights over the auxiliary peers (e.g.
            `keras_ahbf.layers.PeerAttention`; rows sum to 1).
        labels: integer class ids `(batch,)` or `(batch, 1)`.
        temperature: float. Softmax temperature `T` (> 0; 3 in the code).
        kd_weight: float. Weight of the KL terms (>= 0; `alpha = 1`).
        rampup_weight: float or scalar tensor. A further factor of the KL
            terms (the ramp-up).
        stop_teacher_gradient: bool. Detach the peers' logits in the
            targets (False in the code).
        sample_weight: optional tensor `(batch,)`; each per-sample term is
            multiplied by it before the batch mean.

    Returns:
        dict of float32 tensors: `"ce_terms"` and `"kl_terms"` (lists of `m`
        scalars, leader first), `"ce"` and `"kd"` (their sums),
        `"kd_weighted"` (what distillation adds to the loss) and `"total"`.

    Raises:
        TypeError: if `logits` is not a list or tuple, or holds non-numeric
            tensors.
        ValueError: on fewer than 3 networks, logits that are not 2D
            tensors of one shape, an `attention` that is not `(batch, n,
            n)`, labels that do not match, or an option out of range.

    Example:

    >>> import numpy as np
    >>> z = [np.zeros((4, 3), "float32")] * 3
    >>> attention = np.full((4, 2, 2), 0.5, "float32")
    >>> terms = okddip_loss(z, attention, np.array([0, 1, 2, 0]))
    >>> round(float(terms["kd"]), 6)
    0.0
    """
    _loss_utils.check_options(temperature, kd_weight, rampup_weight, stop_teacher_gradient)
    stacked, one_hot, sample_weight, _ = _loss_utils.check_networks_logits(
        logits, labels, sample_weight, minimum=3, network="network",
        too_few="OKDDip needs a group leader and at least 2 auxiliary peers.",
    )
    num_aux = len(logits) - 1
    batch = stacked.shape[1]
    attention = ops.convert_to_tensor(attention)
    shape = tuple(attention.shape)
    if len(shape) != 3 or shape[1:] != (num_aux, num_aux) or (
        batch is not None and shape[0] is not None and shape[0] != batch
    ):
        raise ValueError(
            f"`attention` must be (batch, {num_aux}, {num_aux}) for {num_aux} "
            f"auxiliary peers and a batch of {batch}. Received: "
            f"attention.shape={shape}"
        )
    attention = ops.cast(attention, "float32")

    ce = _loss_utils.cross_entropy(stacked, one_hot[None])  # (m, batch)
    peers = ops.transpose(stacked[1:], (1, 0, 2))  # (batch, n, classes)
    teachers = ops.stop_gradient(peers) if stop_teacher_gradient else peers
    targets = ops.matmul(attention, teachers)  # (batch, n, classes)
    ensemble = ops.mean(teachers, axis=1)  # (batch, classes)
    log_p = ops.log_softmax(stacked / temperature, axis=-1)  # (m, batch, classes)
    kl_peers = _loss_utils.kl_divergence(
        ops.log_softmax(ops.transpose(targets, (1, 0, 2)) / temperature, axis=-1), log_p[1:]
    )  # (n, batch)
    kl_leader = _loss_utils.kl_divergence(ops.log_softmax(ensemble / temperature, axis=-1), log_p[0])
    kl = ops.concatenate([kl_leader[None], kl_peers], axis=0) * temperature**2
    return _loss_utils.named_terms(
        _loss_utils.weighted_means(ce, sample_weight),
        _loss_utils.weighted_means(kl, sample_weight),
        _loss_utils.kd_factor(kd_weight, rampup_weight),
    )


@keras.saving.register_keras_serializable(package="keras_ahbf")
class OKDDipModel(SharedTrunkModel):
    """A group leader and auxiliary peers on shared layers, trained by OKDDip.

    The networks share the trunk (the backbone's low-level layers) and each
    has its own copy of the last stage and classifier (`branches`, of
    `keras_ahbf.methods.shared_trunk_and_branches`), as in the authors'
    CIFAR code. Branch 0 is the group leader, the deployed network:
    `model(x)` runs the trunk and branch 0 only, and `target_model()`
    returns them as a plain network. Branches `1 ... m-1` are the
    auxiliary peers: a `PeerAttention` layer on their pooled features
    gives each its own weights over the auxiliary peers, and each is
    distilled from its weighted aggregate of their logits; the leader is
    distilled from their mean (`okddip_loss`).

    `fit` and `evaluate` report `loss`, `ce`, `kd`, `rampup_weight`,
    `kd_weighted`, `ce_peer_k` and `kl_peer_k` for every network, `l2` when
    `weight_decay > 0`, then `peer_0_accuracy` (the leader, the target),
    `peer_1_accuracy` ... (the auxiliary peers) and `ensemble_accuracy` (the
    mean of the auxiliary peers' logits, the leader's teacher).

    Args:
        trunk: `keras.Model` mapping images to the shared feature map.
        branches: `keras_ahbf.layers.HierarchicalBranches` with `m >= 3`
            branches on the trunk's output (the leader first).
        attention_reduction: int. The attention's query and key have
            `channels // attention_reduction` units (>= 1; 8 in the code).
        temperature: float. Softmax temperature `T` (> 0; 3 in the code).
        kd_weight: float. Weight of the KL terms (>= 0; 1 in the code).
        stop_teacher_gradient: bool. Detach the peers' logits in the
            targets (False, the code: see `okddip_loss`).
        rampup_epochs: int. Ramp-up of the KL weight in epochs (>= 0; 80
            in the code). With `R > 0` the weight is `exp(-5 (1 - t)^2)`
            (`"exp"`, the code's) or `t` (`"linear"`), `t = min(epoch, R) /
            R`; 0 means the full weight from the first step.
        rampup_shape: str. `"exp"` or `"linear"`.
        weight_decay: float. Coupled L2 weight decay (>= 0; see
            `OnlineDistillationModel`).
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Raises:
        TypeError: if `trunk` is not a Keras model or layer, or `branches`
            not a `HierarchicalBranches`.
        ValueError: on fewer than 3 branches or an option out of range.

    Example:

    ```python
    import keras_ahbf
    model = keras_ahbf.methods.okddip_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    model.fit(train_ds, epochs=300, validation_data=test_ds)
    model.target_model().save("resnet32_okddip.keras")
    ```

    Reference:
        Chen et al., "Online Knowledge Distillation with Diverse Peers",
        AAAI 2020 (arXiv:1912.00350); code:
        https://github.com/DefangChen/OKDDip-AAAI2020.
    """

    method_title = "OKDDip"

    def __init__(
        self,
        trunk,
        branches,
        *,
        attention_reduction: int = OKDDIP.attention_reduction,
        temperature: float = OKDDIP.temperature,
        kd_weight: float = OKDDIP.kd_weight,
        stop_teacher_gradient: bool = OKDDIP.stop_teacher_gradient,
        rampup_epochs: int = OKDDIP.rampup_epochs,
        rampup_shape: str = PAPER.rampup_shape,
        weight_decay: float = 0.0,
        **kwargs,
    ):
        if isinstance(branches, HierarchicalBranches) and branches.num_branches < 3:
            raise ValueError(
                "OKDDip needs a group leader and at least 2 auxiliary peers: "
                f"`branches` must have >= 3 branches. Received: "
                f"num_branches={branches.num_branches}"
            )
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
        self.attention_reduction = _utils.check_int(
            "attention_reduction", attention_reduction, 1
        )
        self.num_peers = self.num_branches
        self.attention = PeerAttention(
            reduction=self.attention_reduction, name="peer_attention",
            dtype=self.dtype_policy,
        )
        self._finish_init(self._trunk_input_shape())

    def _build_extra(self, trunk_shape):
        channels = self.branches.stages[0].compute_output_shape(trunk_shape)[-1]
        if not self.attention.built:
            self.attention.build((trunk_shape[0], self.num_peers - 1, channels))

    # ------------------------------------------------------------------- call
    def forward_all(self, inputs, training=None):
        """`{"branch_logits": [leader, peers...], "attention": (batch, n, n)}`."""
        shared = self.trunk(inputs, training=training)
        logits, pooled = [], []
        for b in range(self.num_peers):
            features, z = self.branches.call_branch(b, shared, training=training)
            logits.append(z)
            if b:
                pooled.append(ops.mean(features, axis=(1, 2)))
        attention = self.attention(ops.stack(pooled, axis=1))
        return {"branch_logits": logits, "attention": attention}

    # ------------------------------------------------------------ training
    def distillation_loss(self, y, outputs, sample_weight=None):
        """`okddip_loss` of the networks' logits, and its logged terms."""
        w = self.rampup_weight()
        terms = okddip_loss(
            outputs["branch_logits"],
            outputs["attention"],
            y,
            temperature=self.temperature,
            kd_weight=self.kd_weight,
            rampup_weight=w,
            stop_teacher_gradient=self.stop_teacher_gradient,
            sample_weight=sample_weight,
        )
        return self._loss_and_logs(terms, w)

    def accuracy_logits(self, outputs):
        logits = outputs["branch_logits"]
        named = {f"peer_{k}_accuracy": z for k, z in enumerate(logits)}
        peers = [ops.cast(z, "float32") for z in logits[1:]]
        named["ensemble_accuracy"] = ops.mean(ops.stack(peers, axis=0), axis=0)
        return named

    # -------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update({
            "attention_reduction": self.attention_reduction,
        })
        return config


# ---------------------------------------------------------------- builders


def okddip_from_backbone(backbone: str, num_classes: int = 100, num_peers: int = OKDDIP.num_peers,
                         input_shape=(32, 32, 3), name=None, **options):
    """An `OKDDipModel` of a named backbone: a leader and auxiliary peers on its trunk.

    Args:
        backbone: str. A name of `keras_ahbf.models.available_backbones()`
            (`resnet8` ... `resnet110`, `vgg16`, `densenet40`, ...).
        num_classes: int. Number of classes (>= 1).
        num_peers: int. Number of networks `m`, the group leader included
            (>= 3; 4 in the authors' CIFAR code: 3 auxiliary peers and the
            leader).
        input_shape: tuple. `(height, width, channels)`.
        name: str. Model name (default `"okddip_<backbone>"`).
        **options: `OKDDipModel` options (`attention_reduction`,
            `temperature`, `kd_weight`, `stop_teacher_gradient`,
            `rampup_epochs`, `rampup_shape`, `weight_decay`).

    Returns:
        An uncompiled, built `OKDDipModel`.

    Raises:
        ValueError: for an unknown backbone, `num_peers < 3` or invalid
            options.
    """
    return _okddip(backbone, None, num_classes, num_peers, input_shape, name, options)


def okddip_resnet_cifar(depth: int = 32, num_classes: int = 100, num_peers: int = OKDDIP.num_peers,
                        input_shape=(32, 32, 3), name=None, **options):
    """An `OKDDipModel` of CIFAR ResNet-`depth` branches on a shared trunk.

    The trunk is the ResNet's stem and first two stages, each branch its
    third stage and classifier (the authors' `resnet_GL.py`: `layer3_i`,
    `classifier3_i`); the leader alone is the plain CIFAR ResNet.

    Args:
        depth: int. One of 8, 14, 20, 32, 44, 56, 110.
        num_classes, num_peers, input_shape, name, **options: see
            `okddip_from_backbone`.

    Returns:
        An uncompiled, built `OKDDipModel`.

    Raises:
        ValueError: on an unsupported `depth`, `num_peers < 3` or invalid
            options.

    Example:

    ```python
    model = keras_ahbf.methods.okddip_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    ```
    """
    backbone, builder = _builders.cifar_resnet(depth)
    return _okddip(backbone, builder, num_classes, num_peers, input_shape, name, options)


def _okddip(backbone, builder, num_classes, num_peers, input_shape, name, options):
    return _builders.shared_trunk_model(
        OKDDipModel, backbone, builder, num_classes, num_peers, input_shape, name, options,
        minimum=3, prefix="okddip",
    )
