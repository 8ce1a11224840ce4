"""OKDDip (online knowledge distillation with diverse peers): `okddip_loss`, `OKDDipModel`, builders.

Chen, Mei, Wang, Feng and Chen, "Online Knowledge Distillation with Diverse
Peers", AAAI 2020 (arXiv:1912.00350); the authors' code is
https://github.com/DefangChen/OKDDip-AAAI2020 (`train_GL.py`,
`models/model_cifar/resnet_GL.py`). See `docs/methods.md`.
"""

import functools

import keras
from keras import ops

from keras_ahbf import losses as ahbf_losses
from keras_ahbf.config import OKDDIP
from keras_ahbf.config import PAPER
from keras_ahbf.layers import _utils
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.peer_attention import PeerAttention
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
    "OKDDipModel",
    "okddip_from_backbone",
    "okddip_loss",
    "okddip_resnet_cifar",
]


def _kl(log_q, log_p):
    """`KL(q || p)` per sample from log-probabilities `(..., classes)`."""
    return ops.sum(ops.exp(log_q) * (log_q - log_p), axis=-1)


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
        scalars, leader first), `"ce"` and `"kd"` (their sums) and
        `"total"`.

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
    if not isinstance(logits, (list, tuple)):
        raise TypeError(
            "`logits` must be a list of logits tensors, the group leader's "
            f"first. Received: logits of type {type(logits).__name__}"
        )
    if len(logits) < 3:
        raise ValueError(
            "OKDDip needs a group leader and at least 2 auxiliary peers. "
            f"Received: len(logits)={len(logits)}"
        )
    _check_number("temperature", temperature, positive=True)
    _check_number("kd_weight", kd_weight)
    _check_number("rampup_weight", rampup_weight)
    _check_bool("stop_teacher_gradient", stop_teacher_gradient)
    checked, shapes = [], []
    for i, tensor in enumerate(logits):
        tensor, shape = _check_logits(f"logits[{i}]", tensor)
        checked.append(ops.cast(tensor, "float32"))
        shapes.append((f"logits[{i}]", shape))
    batch, num_classes = _merge_shapes(shapes, what="All networks' logits")
    labels = _check_labels(labels, batch, num_classes)
    sample_weight = _check_sample_weight(sample_weight, batch)
    num_aux = len(checked) - 1
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

    stacked = ops.stack(checked, axis=1)  # (batch, m, classes)
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    one_hot = ops.one_hot(labels, ops.shape(stacked)[-1], dtype="float32")
    ce = -ops.sum(one_hot[:, None, :] * ops.log_softmax(stacked, axis=-1), axis=-1)
    peers = stacked[:, 1:, :]  # (batch, n, classes)
    teachers = ops.stop_gradient(peers) if stop_teacher_gradient else peers
    targets = ops.matmul(attention, teachers)  # (batch, n, classes)
    ensemble = ops.mean(teachers, axis=1)  # (batch, classes)
    log_p = ops.log_softmax(stacked / temperature, axis=-1)
    kl_peers = _kl(ops.log_softmax(targets / temperature, axis=-1), log_p[:, 1:, :])
    kl_leader = _kl(ops.log_softmax(ensemble / temperature, axis=-1), log_p[:, 0, :])
    kl = ops.concatenate([kl_leader[:, None], kl_peers], axis=1) * temperature**2
    if sample_weight is not None:
        weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        ce, kl = ce * weight, kl * weight
    ce_vector = ops.mean(ce, axis=0)
    kl_vector = ops.mean(kl, axis=0)
    ce_sum, kd = ops.sum(ce_vector), ops.sum(kl_vector)
    weight = kd_weight
    if not isinstance(rampup_weight, (int, float)) or rampup_weight != 1.0:
        weight = ops.cast(rampup_weight, "float32") * kd_weight
    return {
        "ce_terms": [ce_vector[k] for k in range(num_aux + 1)],
        "kl_terms": [kl_vector[k] for k in range(num_aux + 1)],
        "ce": ce_sum,
        "kd": kd,
        "total": ce_sum + weight * kd,
    }


@keras.saving.register_keras_serializable(package="keras_ahbf")
class OKDDipModel(OnlineDistillationModel):
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
        TypeError: if `trunk` is not a `keras.Model` or `branches` not a
            `HierarchicalBranches`.
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

    NESTED_CONFIG = ("trunk", "branches")
    target_metric = "peer_0_accuracy"
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
        super().__init__(
            rampup_epochs=rampup_epochs,
            rampup_shape=rampup_shape,
            weight_decay=weight_decay,
            **kwargs,
        )
        if not isinstance(trunk, keras.Model):
            raise TypeError(
                "`trunk` must be a Keras model mapping images to the shared "
                f"feature map. Received: trunk={trunk!r}"
            )
        if not isinstance(branches, HierarchicalBranches):
            raise TypeError(
                "`branches` must be a `keras_ahbf.layers.HierarchicalBranches`. "
                f"Received: branches={branches!r}"
            )
        if branches.num_branches < 3:
            raise ValueError(
                "OKDDip needs a group leader and at least 2 auxiliary peers: "
                f"`branches` must have >= 3 branches. Received: "
                f"num_branches={branches.num_branches}"
            )
        self.temperature = _utils.check_float(
            "temperature", temperature, 0.0, exclusive=True
        )
        self.kd_weight = _utils.check_float("kd_weight", kd_weight, 0.0)
        self.stop_teacher_gradient = check_bool("stop_teacher_gradient", stop_teacher_gradient)
        self.attention_reduction = _utils.check_int(
            "attention_reduction", attention_reduction, 1
        )
        self.trunk = trunk
        self.branches = branches
        self.num_peers = branches.num_branches
        self.attention = PeerAttention(
            reduction=self.attention_reduction, name="peer_attention",
            dtype=self.dtype_policy,
        )
        input_shape = getattr(trunk, "input_shape", None)
        try:
            input_shape = tuple(input_shape) if input_shape is not None else None
        except TypeError:  # A trunk with several inputs.
            input_shape = None
        self._finish_init(input_shape)

    @property
    def num_classes(self):
        """Number of classes of the branches' logits."""
        return self.branches.num_classes

    def _make_metrics(self):
        mean = keras.metrics.Mean
        acc = keras.metrics.SparseCategoricalAccuracy
        names = ["ce", "kd", "rampup_weight", "kd_weighted"]
        names += [f"ce_peer_{k}" for k in range(self.num_peers)]
        names += [f"kl_peer_{k}" for k in range(self.num_peers)]
        trackers = {name: mean(name=name) for name in names}
        if self.weight_decay:
            trackers["l2"] = mean(name="l2")
        for name in self._accuracy_names():
            trackers[name] = acc(name=name)
        return trackers

    def _accuracy_names(self):
        return [f"peer_{k}_accuracy" for k in range(self.num_peers)] + ["ensemble_accuracy"]

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                "`OKDDipModel` expects images of shape (batch, height, width, "
                f"channels). Received: input_shape={input_shape}"
            )
        if not self.trunk.built:
            self.trunk.build(input_shape)
        shared = tuple(self.trunk.compute_output_shape(input_shape))
        if not self.branches.built:
            self.branches.build(shared)
        channels = self.branches.stages[0].compute_output_shape(shared)[-1]
        if not self.attention.built:
            self.attention.build((input_shape[0], self.num_peers - 1, channels))
        self._input_shape_for_build = input_shape
        self.built = True

    # ------------------------------------------------------------------- call
    def forward_target(self, inputs, training=None):
        """The group leader's logits (the trunk and branch 0 only)."""
        shared = self.trunk(inputs, training=training)
        return self.branches.call_branch(0, shared, training=training)[1]

    def forward_all(self, inputs, training=None):
        """`{"peer_logits": [leader, peers...], "attention": (batch, n, n)}`."""
        shared = self.trunk(inputs, training=training)
        logits, pooled = [], []
        for b in range(self.num_peers):
            features, z = self.branches.call_branch(b, shared, training=training)
            logits.append(z)
            if b:
                pooled.append(ops.mean(features, axis=(1, 2)))
        attention = self.attention(ops.stack(pooled, axis=1))
        return {"peer_logits": logits, "attention": attention}

    # ------------------------------------------------------------ training
    def rampup_weight(self):
        """The factor of the KL terms this epoch, in [0, 1] (1 without ramp-up).

        `exp(-5 (1 - t)^2)` with the `"exp"` shape: the code's
        `get_current_consistency_weight`, i.e. twice
        `keras_ahbf.losses.rampup_weight`.
        """
        if not self.rampup_epochs:
            return ops.convert_to_tensor(1.0, "float32")
        return 2.0 * ahbf_losses.rampup_weight(
            self.epoch, self.rampup_epochs, self.rampup_shape
        )

    def distillation_loss(self, y, outputs, sample_weight=None):
        """`okddip_loss` of the networks' logits, and its logged terms."""
        w = self.rampup_weight()
        terms = okddip_loss(
            outputs["peer_logits"],
            outputs["attention"],
            y,
            temperature=self.temperature,
            kd_weight=self.kd_weight,
            rampup_weight=w,
            stop_teacher_gradient=self.stop_teacher_gradient,
            sample_weight=sample_weight,
        )
        logged = {"ce": terms["ce"], "kd": terms["kd"], "rampup_weight": w,
                  "kd_weighted": terms["total"] - terms["ce"]}
        for k in range(self.num_peers):
            logged[f"ce_peer_{k}"] = terms["ce_terms"][k]
            logged[f"kl_peer_{k}"] = terms["kl_terms"][k]
        return terms["total"], logged

    def accuracy_logits(self, outputs):
        logits = outputs["peer_logits"]
        named = {f"peer_{k}_accuracy": z for k, z in enumerate(logits)}
        peers = [ops.cast(z, "float32") for z in logits[1:]]
        named["ensemble_accuracy"] = ops.mean(ops.stack(peers, axis=0), axis=0)
        return named

    def target_logits(self, outputs):
        return outputs["peer_logits"][0]

    # --------------------------------------------------------------- export
    def target_model(self, name=None):
        """Returns the deployable group leader: trunk + branch 0.

        A plain functional `keras.Model` (images -> logits) sharing its
        layers and weights with this model (save or clone it for an
        independent copy); no auxiliary peer and no attention.

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

    # -------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update({
            "trunk": keras.saving.serialize_keras_object(self.trunk),
            "branches": keras.saving.serialize_keras_object(self.branches),
            "attention_reduction": self.attention_reduction,
            "temperature": self.temperature,
            "kd_weight": self.kd_weight,
            "stop_teacher_gradient": self.stop_teacher_gradient,
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
    from keras_ahbf import models

    _utils.check_int("depth", depth, 1)
    builder = functools.partial(models.resnet_cifar, depth=depth)
    return _okddip(f"resnet{depth}", builder, num_classes, num_peers, input_shape, name, options)


def _okddip(backbone, builder, num_classes, num_peers, input_shape, name, options):
    num_peers = _utils.check_int("num_peers", num_peers, 3)
    trunk, branches = shared_trunk_and_branches(
        backbone, num_classes, num_peers, input_shape, builder=builder
    )
    return OKDDipModel(trunk, branches, name=name or f"okddip_{backbone}", **options)
