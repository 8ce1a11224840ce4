"""Deep mutual learning (DML): `dml_loss`, `MutualLearningModel` and its builders.

Zhang, Xiang, Hospedales and Lu, "Deep Mutual Learning", CVPR 2018
(arXiv:1706.00384); the authors' code is
https://github.com/YingZhangDUT/Deep-Mutual-Learning (`train_models.py`).
See `docs/methods.md`.
"""

import keras
from keras import ops

from keras_ahbf.config import DML
from keras_ahbf.config import PAPER
from keras_ahbf.layers import _utils
from keras_ahbf.methods import _builders
from keras_ahbf.methods import _loss_utils
from keras_ahbf.methods.peer_distillation_model import PeerDistillationModel

__all__ = [
    "MutualLearningModel",
    "dml_from_backbone",
    "dml_loss",
    "dml_resnet_cifar",
    "peer_network",
]


def dml_loss(
    logits,
    labels,
    temperature: float = DML.temperature,
    kd_weight: float = DML.kd_weight,
    rampup_weight=1.0,
    stop_teacher_gradient: bool = DML.stop_teacher_gradient,
    sample_weight=None,
):
    """The deep mutual learning loss of `K` peers, as named terms.

    Peer `k` minimises its cross-entropy plus the mean KL divergence from
    every other peer's predictions to its own (Zhang et al., 2018, eq. 10):

    ```
    p_k     = softmax(z_k / T)
    kl_k    = T^2 / (K - 1) * sum_{l != k} mean_batch KL(p_l || p_k)
    ce_k    = mean_batch CE(y, z_k)
    total   = sum_k (ce_k + rampup_weight * kd_weight * kl_k)
    ```

    The paper uses `T = 1` (plain softmax; `T^2` is then 1). With
    `stop_teacher_gradient=True` (the default) `p_l` is a constant in
    `kl_k`, so the gradient of `total` with respect to peer `k`'s weights is
    the gradient of peer `k`'s own loss `ce_k + kd_weight * kl_k`: one step
    on `total` updates every peer as if each had its own optimizer, from the
    same batch (the *simultaneous* update). The authors' code computes each
    peer's loss with its own variable list (so the others are constants
    too), but updates the peers one after another, each with a fresh
    forward pass (Algorithm 1's alternating order); it also sums the KL
    terms instead of averaging them, which is the same for `K = 2`.

    Args:
        logits: list of `K >= 2` tensors `(batch, num_classes)`, one per peer,
            peer 0 (the deployed network) first.
        labels: integer class ids `(batch,)` or `(batch, 1)`.
        temperature: float. Softmax temperature `T` (> 0); 1 in the paper.
        kd_weight: float. Weight of the KL terms (>= 0); 1 in the paper.
        rampup_weight: float or scalar tensor. A further factor of the KL
            terms (the ramp-up; 1, none, in the paper).
        stop_teacher_gradient: bool. Detach the other peers' probabilities.
        sample_weight: optional tensor `(batch,)`; each per-sample term is
            multiplied by it before the batch mean.

    Returns:
        dict of float32 tensors: `"ce_terms"` and `"kl_terms"` (lists of `K`
        scalars, `ce_k` and `kl_k`), `"ce"` and `"kd"` (their sums),
        `"kd_weighted"` (what distillation adds to the loss) and `"total"`.

    Raises:
        TypeError: if `logits` is not a list or tuple, or holds non-numeric
            tensors.
        ValueError: on fewer than 2 peers, logits that are not 2D tensors of
            one shape, labels that do not match them, or an option out of
            range.

    Example:

    >>> import numpy as np
    >>> z = [np.zeros((4, 3), "float32"), np.ones((4, 3), "float32")]
    >>> terms = dml_loss(z, np.array([0, 1, 2, 0]))
    >>> round(float(terms["kd"]), 6)
    0.0
    """
    _loss_utils.check_options(temperature, kd_weight, rampup_weight, stop_teacher_gradient)
    stacked, one_hot, sample_weight, _ = _loss_utils.check_networks_logits(
        logits, labels, sample_weight, too_few="Deep mutual learning needs at least 2 peers."
    )
    num_peers = len(logits)
    ce = _loss_utils.cross_entropy(stacked, one_hot[None])  # (K, batch)
    log_p = ops.log_softmax(stacked / temperature, axis=-1)
    log_q = ops.stop_gradient(log_p) if stop_teacher_gradient else log_p
    kl = []
    for k in range(num_peers):
        pairs = [_loss_utils.kl_divergence(log_q[l], log_p[k]) for l in range(num_peers) if l != k]
        kl.append(ops.sum(ops.stack(pairs, axis=0), axis=0))
    kl = ops.stack(kl, axis=0) * (temperature**2 / (num_peers - 1))  # (K, batch)
    return _loss_utils.named_terms(
        _loss_utils.weighted_means(ce, sample_weight),
        _loss_utils.weighted_means(kl, sample_weight),
        _loss_utils.kd_factor(kd_weight, rampup_weight),
    )


@keras.saving.register_keras_serializable(package="keras_ahbf")
class MutualLearningModel(PeerDistillationModel):
    """`K` peer networks trained by deep mutual learning (DML).

    Every peer is an independent network (usually the same architecture
    with a different initialisation) trained on the same batches with its
    cross-entropy plus the KL divergence from the other peers' predictions
    to its own (`dml_loss`). Peer 0 is the deployed network:
    `model(x)` / `predict` return its logits and run only it, and
    `target_model()` returns it alone. The peers are updated simultaneously
    from one forward pass, with the other peers detached (see `dml_loss`).

    `fit` and `evaluate` report `loss` (the total over the peers), `ce`,
    `kd` (the sums of the peers' cross-entropy and KL terms),
    `rampup_weight`, `kd_weighted` (what distillation adds to the loss),
    `ce_peer_k` and `kl_peer_k` for every peer, `l2` when
    `weight_decay > 0`, then `peer_0_accuracy` (the target) ...
    `peer_{K-1}_accuracy` and `ensemble_accuracy` (the mean of the peers'
    probabilities, a teacher nobody deploys). Metrics passed to
    `compile(metrics=...)` are computed on peer 0's logits.

    Args:
        peers: list of `K >= 2` `keras.Model`s mapping the same images to
            logits of the same number of classes, peer 0 first. Models with
            a known input shape let this model build itself.
        temperature: float. Softmax temperature `T` of the KL terms (> 0;
            1 in the paper).
        kd_weight: float. Weight of the KL terms (>= 0; 1 in the paper).
        stop_teacher_gradient: bool. Detach the other peers' probabilities
            in every KL term (the default, and the authors' code).
        rampup_epochs: int. Ramp-up of the KL weight in epochs (>= 0; 0, the
            paper's choice, means the full weight from the first step).
            With `R > 0` the weight is the AHBF-OKD curve rescaled to end at
            1: `exp(-5 (1 - t)^2)` (`"exp"`) or `t` (`"linear"`),
            `t = min(epoch, R) / R`.
        rampup_shape: str. `"exp"` or `"linear"`.
        weight_decay: float. Coupled L2 weight decay on every peer (>= 0;
            see `OnlineDistillationModel`).
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Raises:
        TypeError: if `peers` is not a list of `keras.Model`s.
        ValueError: on fewer than 2 peers, peers of different output
            shapes, or an option out of range.

    Example:

    ```python
    import keras_ahbf
    model = keras_ahbf.methods.dml_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    model.fit(train_ds, epochs=300, validation_data=test_ds)
    model.target_model().save("resnet32_dml.keras")
    ```

    Reference:
        Zhang et al., "Deep Mutual Learning", CVPR 2018; code:
        https://github.com/YingZhangDUT/Deep-Mutual-Learning.
    """

    NESTED_CONFIG = ("peers",)
    method_title = "DML"

    def __init__(
        self,
        peers,
        *,
        temperature: float = DML.temperature,
        kd_weight: float = DML.kd_weight,
        stop_teacher_gradient: bool = DML.stop_teacher_gradient,
        rampup_epochs: int = DML.rampup_epochs,
        rampup_shape: str = PAPER.rampup_shape,
        weight_decay: float = 0.0,
        **kwargs,
    ):
        super().__init__(
            temperature=temperature,
            kd_weight=kd_weight,
            stop_teacher_gradient=stop_teacher_gradient,
            rampup_epochs=rampup_epochs,
            rampup_shape=rampup_shape,
            weight_decay=weight_decay,
            **kwargs,
        )
        if not isinstance(peers, (list, tuple)) or not all(
            isinstance(p, keras.Model) for p in peers
        ):
            raise TypeError(
                "`peers` must be a list of Keras models. "
                f"Received: peers={peers!r}"
            )
        if len(peers) < 2:
            raise ValueError(
                "Deep mutual learning needs at least 2 peers. "
                f"Received: len(peers)={len(peers)}"
            )
        if len({id(p) for p in peers}) != len(peers):
            raise ValueError(
                "`peers` must be distinct models (one network cannot be its "
                "own peer). Received: the same model more than once."
            )
        self.peers = list(peers)
        self.num_peers = len(self.peers)
        self._num_classes = None
        input_shape = getattr(self.peers[0], "input_shape", None)
        try:
            input_shape = tuple(input_shape) if input_shape is not None else None
        except TypeError:  # A model with several inputs.
            input_shape = None
        self._finish_init(input_shape)

    @property
    def num_classes(self):
        """Number of classes of the peers' logits (None before build)."""
        return self._num_classes

    def network_count(self):
        return self.num_peers

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                "`MutualLearningModel` expects images of shape (batch, height, "
                f"width, channels). Received: input_shape={input_shape}"
            )
        shapes = []
        for peer in self.peers:
            if not peer.built:
                peer.build(input_shape)
            spec = peer.compute_output_spec(
                keras.KerasTensor(input_shape, dtype=self.compute_dtype)
            )
            shapes.append(tuple(spec.shape))
        if len(shapes[0]) != 2 or any(s[1:] != shapes[0][1:] for s in shapes):
            raise ValueError(
                "Every peer must map the images to logits (batch, num_classes) "
                f"of one shape. Received: peer output shapes {shapes}"
            )
        self._num_classes = shapes[0][-1]
        self._input_shape_for_build = input_shape
        self.built = True

    # ------------------------------------------------------------------- call
    def forward_target(self, inputs, training=None):
        """Peer 0's logits (only peer 0 runs)."""
        return self.peers[0](inputs, training=training)

    def forward_all(self, inputs, training=None):
        """Every peer's logits: `{"peer_logits": [z_0, ..., z_{K-1}]}`."""
        return {"peer_logits": [peer(inputs, training=training) for peer in self.peers]}

    # ------------------------------------------------------------ training
    def distillation_loss(self, y, outputs, sample_weight=None):
        """`dml_loss` of the peers' logits, and its logged terms."""
        w = self.rampup_weight()
        terms = dml_loss(
            outputs["peer_logits"],
            y,
            temperature=self.temperature,
            kd_weight=self.kd_weight,
            rampup_weight=w,
            stop_teacher_gradient=self.stop_teacher_gradient,
            sample_weight=sample_weight,
        )
        return self._loss_and_logs(terms, w)

    def accuracy_logits(self, outputs):
        logits = outputs["peer_logits"]
        named = {f"peer_{k}_accuracy": z for k, z in enumerate(logits)}
        named["ensemble_accuracy"] = _loss_utils.ensemble_probabilities(logits)
        return named

    def target_logits(self, outputs):
        return outputs["peer_logits"][0]

    # --------------------------------------------------------------- export
    def target_model(self, name=None):
        """Returns the deployable network: peer 0 alone.

        A functional `keras.Model` wrapping peer 0 (images -> logits); it
        shares peer 0's layers and weights with this model (save or clone it
        for an independent copy).

        Args:
            name: str. Name of the returned model (default
                `"<model name>_target"`).

        Returns:
            A `keras.Model`.
        """
        self._check_built()
        inputs = keras.Input(shape=self._input_shape_for_build[1:], name="images")
        outputs = self.peers[0](inputs)
        return keras.Model(inputs, outputs, name=name or f"{self.name}_target")

    # -------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update({
            "peers": [keras.saving.serialize_keras_object(p) for p in self.peers],
        })
        return config


# ---------------------------------------------------------------- builders


def peer_network(backbone: str, num_classes: int, input_shape=(32, 32, 3), name=None,
                 builder=None):
    """One network of a backbone of `keras_ahbf.models`, alone.

    The target network of the backbone's AHBF-OKD model (trunk + branch 0,
    the plain network: `resnet32` is the plain CIFAR ResNet-32), built
    fresh, so every call gives new initial weights.

    Args:
        backbone: str. A name of `keras_ahbf.models.available_backbones()`.
        num_classes: int. Number of classes.
        input_shape: tuple. `(height, width, channels)`.
        name: str. Name of the returned model.
        builder: callable or None. A builder of `keras_ahbf.models`
            (`resnet_cifar`, ...) with its fixed arguments bound; default
            `keras_ahbf.models.get_builder(backbone)`.

    Returns:
        A built functional `keras.Model` (images -> logits).

    Raises:
        ValueError: for an unknown backbone or invalid arguments.
    """
    from keras_ahbf import models  # Imports `OnlineKDModel`, which imports this package.

    builder = builder or models.get_builder(backbone)
    # Two branches with no extra block: the cheapest model holding the target.
    model = builder(num_classes=num_classes, num_branches=2, aux=0,
                    input_shape=tuple(input_shape))
    return model.target_model(name=name or f"{backbone}_peer")


def dml_from_backbone(backbone: str, num_classes: int = 100, num_peers: int = DML.num_peers,
                      input_shape=(32, 32, 3), name=None, **options):
    """A `MutualLearningModel` of `num_peers` networks of a named backbone.

    Args:
        backbone: str. A name of `keras_ahbf.models.available_backbones()`
            (`resnet8` ... `resnet110`, `vgg16`, `densenet40`, ...).
        num_classes: int. Number of classes (>= 1).
        num_peers: int. Number of peers `K` (>= 2; 2 in the paper's CIFAR
            experiments).
        input_shape: tuple. `(height, width, channels)`.
        name: str. Model name (default `"dml_<backbone>"`).
        **options: `MutualLearningModel` options (`temperature`,
            `kd_weight`, `stop_teacher_gradient`, `rampup_epochs`,
            `rampup_shape`, `weight_decay`).

    Returns:
        An uncompiled, built `MutualLearningModel`; peers named `peer_0` ...

    Raises:
        ValueError: for an unknown backbone, `num_peers < 2` or invalid
            options.
    """
    return _dml(backbone, None, num_classes, num_peers, input_shape, name, options)


def dml_resnet_cifar(depth: int = 32, num_classes: int = 100, num_peers: int = DML.num_peers,
                     input_shape=(32, 32, 3), name=None, **options):
    """A `MutualLearningModel` of `num_peers` CIFAR ResNet-`depth`s.

    Each peer is the plain CIFAR ResNet of `keras_ahbf.models.resnet_cifar`
    (the target network of AHBF-OKD: with 100 classes, ResNet-32 has
    472,756 trainable parameters).

    Args:
        depth: int. One of 8, 14, 20, 32, 44, 56, 110.
        num_classes, num_peers, input_shape, name, **options: see
            `dml_from_backbone`.

    Returns:
        An uncompiled, built `MutualLearningModel`.

    Raises:
        ValueError: on an unsupported `depth`, `num_peers < 2` or invalid
            options.

    Example:

    ```python
    model = keras_ahbf.methods.dml_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    ```
    """
    backbone, builder = _builders.cifar_resnet(depth)
    return _dml(backbone, builder, num_classes, num_peers, input_shape, name, options)


def _dml(backbone, builder, num_classes, num_peers, input_shape, name, options):
    num_peers = _utils.check_int("num_peers", num_peers, 2)
    peers = [
        peer_network(backbone, num_classes, input_shape, name=f"peer_{k}", builder=builder)
        for k in range(num_peers)
    ]
    return MutualLearningModel(peers, name=name or f"dml_{backbone}", **options)
