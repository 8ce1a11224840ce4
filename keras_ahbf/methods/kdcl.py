"""KDCL (knowledge distillation via collaborative learning): `kdcl_loss`, `KDCLModel`, builders.

Guo, Wang, Wu, Yu, Liang, Hu and Luo, "Online Knowledge Distillation via
Collaborative Learning", CVPR 2020 (pp. 11020-11029). The authors published
no code; this follows the paper (see `docs/methods.md` for what could be
checked against it and what is our choice).
"""

import keras
from keras import ops

from keras_ahbf.config import KDCL
from keras_ahbf.config import KDCL_ENSEMBLES
from keras_ahbf.config import PAPER
from keras_ahbf.layers import _utils
from keras_ahbf.methods import _builders
from keras_ahbf.methods import _loss_utils
from keras_ahbf.methods.dml import MutualLearningModel
from keras_ahbf.methods.dml import peer_network
from keras_ahbf.utils.validation import check_bool
from keras_ahbf.utils.validation import check_choice

__all__ = [
    "KDCLModel",
    "kdcl_from_backbone",
    "kdcl_loss",
    "kdcl_resnet_cifar",
    "kdcl_teacher_logits",
    "random_flip_and_translate",
]


def _teacher(stacked, one_hot, ce, ensemble):
    if ensemble == "minlogit":
        true_logit = ops.sum(stacked * one_hot[None], axis=-1, keepdims=True)
        return ops.min(stacked - true_logit, axis=0)
    if ensemble == "naive":
        return ops.mean(stacked, axis=0)
    # "best": per sample, the logits of the peer of the lowest cross-entropy.
    best = ops.one_hot(ops.argmin(ce, axis=0), ops.shape(stacked)[0], dtype="float32")
    return ops.sum(ops.transpose(best)[:, :, None] * stacked, axis=0)


def kdcl_teacher_logits(logits, labels, ensemble: str = KDCL.ensemble):
    """The KDCL ensemble teacher's logits, built from every peer's logits.

    ```
    "minlogit":  t[c] = min_k (z_k[c] - z_k[y])     (KDCL-MinLogit)
    "naive":     t    = 1/K * sum_k z_k             (the mean of the logits)
    "best":      t    = z_j, j = argmin_k CE(y, z_k), per sample
    ```

    MinLogit is the paper's: each peer's logits are shifted so that its
    logit of the true class `y` is 0 (a shift leaves its softmax
    unchanged), and the teacher takes, class by class, the smallest shifted
    logit over the peers: the least confusable value any peer gives each
    wrong class. `t[y] = 0`. The teacher is not detached here (see
    `kdcl_loss`).

    Args:
        logits: list of `K >= 2` tensors `(batch, num_classes)`.
        labels: integer class ids `(batch,)` or `(batch, 1)`.
        ensemble: str. `"minlogit"`, `"naive"` or `"best"`.

    Returns:
        A float32 tensor `(batch, num_classes)`.

    Raises:
        TypeError, ValueError: as `kdcl_loss`.

    Example:

    >>> import numpy as np
    >>> z = [np.array([[2.0, 0.0, 1.0]], "float32"), np.array([[0.0, 1.0, 3.0]], "float32")]
    >>> np.asarray(kdcl_teacher_logits(z, np.array([0]))).tolist()
    [[0.0, -2.0, -1.0]]
    """
    ensemble = check_choice("ensemble", ensemble, KDCL_ENSEMBLES)
    stacked, one_hot, _, _ = _loss_utils.check_networks_logits(
        logits, labels, too_few="KDCL needs at least 2 peers."
    )
    return _teacher(stacked, one_hot, _loss_utils.cross_entropy(stacked, one_hot[None]), ensemble)


def kdcl_loss(
    logits,
    labels,
    ensemble: str = KDCL.ensemble,
    temperature: float = KDCL.temperature,
    kd_weight: float = KDCL.kd_weight,
    rampup_weight=1.0,
    stop_teacher_gradient: bool = KDCL.stop_teacher_gradient,
    sample_weight=None,
):
    """The KDCL loss of `K` peers distilled by one ensemble teacher, as named terms.

    Every peer minimises its cross-entropy plus the KL divergence from the
    ensemble teacher's softened predictions to its own:

    ```
    t       = kdcl_teacher_logits(z_1 ... z_K, y, ensemble)
    kl_k    = T^2 * mean_batch KL(softmax(t / T) || softmax(z_k / T))
    ce_k    = mean_batch CE(y, z_k)
    total   = sum_k (ce_k + rampup_weight * kd_weight * kl_k)
    ```

    With `stop_teacher_gradient=True` (the default: the paper's teacher is
    a fixed target) `t` is a constant, so each peer is updated from its own
    loss only.

    Args:
        logits: list of `K >= 2` tensors `(batch, num_classes)`, one per
            peer, peer 0 (the deployed network) first.
        labels: integer class ids `(batch,)` or `(batch, 1)`.
        ensemble: str. The teacher: `"minlogit"` (default), `"naive"` or
            `"best"` (see `kdcl_teacher_logits`).
        temperature: float. Softmax temperature `T` (> 0).
        kd_weight: float. Weight of the KL terms (>= 0).
        rampup_weight: float or scalar tensor. A further factor of the KL
            terms (the ramp-up; none in the paper).
        stop_teacher_gradient: bool. Detach the teacher.
        sample_weight: optional tensor `(batch,)`; each per-sample term is
            multiplied by it before the batch mean.

    Returns:
        dict of float32 tensors: `"ce_terms"` and `"kl_terms"` (lists of `K`
        scalars), `"ce"` and `"kd"` (their sums), `"kd_weighted"` (what
        distillation adds to the loss) and `"total"`.

    Raises:
        TypeError: if `logits` is not a list or tuple, or holds non-numeric
            tensors.
        ValueError: on fewer than 2 peers, logits that are not 2D tensors of
            one shape, labels that do not match them, an unknown
            `ensemble`, or an option out of range.

    Example:

    >>> import numpy as np
    >>> z = [np.zeros((4, 3), "float32"), np.zeros((4, 3), "float32")]
    >>> terms = kdcl_loss(z, np.array([0, 1, 2, 0]), ensemble="naive")
    >>> round(float(terms["kd"]), 6)
    0.0
    """
    ensemble = check_choice("ensemble", ensemble, KDCL_ENSEMBLES)
    _loss_utils.check_options(temperature, kd_weight, rampup_weight, stop_teacher_gradient)
    stacked, one_hot, sample_weight, _ = _loss_utils.check_networks_logits(
        logits, labels, sample_weight, too_few="KDCL needs at least 2 peers."
    )
    ce = _loss_utils.cross_entropy(stacked, one_hot[None])  # (K, batch)
    teacher = _teacher(stacked, one_hot, ce, ensemble)
    if stop_teacher_gradient:
        teacher = ops.stop_gradient(teacher)
    log_q = ops.log_softmax(teacher / temperature, axis=-1)  # (batch, classes)
    log_p = ops.log_softmax(stacked / temperature, axis=-1)  # (K, batch, classes)
    kl = _loss_utils.kl_divergence(log_q[None], log_p) * temperature**2
    return _loss_utils.named_terms(
        _loss_utils.weighted_means(ce, sample_weight),
        _loss_utils.weighted_means(kl, sample_weight),
        _loss_utils.kd_factor(kd_weight, rampup_weight),
    )


def random_flip_and_translate(images, padding: int = KDCL.augmentation_padding, seed=None):
    """An independent random horizontal flip and translation of every image.

    Each image is flipped left-right with probability 1/2, then zero-padded
    by `padding` pixels on every side and cropped back to its size at a
    uniformly random offset (the CIFAR pad-and-crop), all with `keras.ops`
    and `keras.random`, so it runs on every backend and inside `jit`.

    Args:
        images: tensor `(batch, height, width, channels)` with known height
            and width.
        padding: int. The largest shift in pixels (>= 0; 0: flip only).
        seed: a `keras.random.SeedGenerator` (advanced by the call), an int
            or None.

    Returns:
        A tensor of the shape and dtype of `images`.

    Example:

    >>> import numpy as np, keras
    >>> x = np.ones((2, 8, 8, 3), "float32")
    >>> out = random_flip_and_translate(x, 0, seed=keras.random.SeedGenerator(1))
    >>> bool(np.all(np.asarray(out) == 1))
    True
    """
    padding = _utils.check_int("padding", padding, 0)
    shape = ops.shape(images)
    batch, height, width = shape[0], images.shape[1], images.shape[2]
    flip = keras.random.uniform((batch, 1, 1, 1), seed=seed) < 0.5
    images = ops.where(flip, ops.flip(images, axis=2), images)
    if not padding:
        return images
    padded = ops.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    size = 2 * padding + 1
    dy = keras.random.randint((batch,), 0, size, seed=seed)
    dx = keras.random.randint((batch,), 0, size, seed=seed)
    # One-hot row and column selections (batch, out, padded): a per-sample crop
    # as two batched matrix products.
    rows = ops.one_hot(ops.arange(height)[None, :] + dy[:, None], height + 2 * padding,
                       dtype=images.dtype)
    cols = ops.one_hot(ops.arange(width)[None, :] + dx[:, None], width + 2 * padding,
                       dtype=images.dtype)
    out = ops.einsum("bip,bpqc->biqc", rows, padded)
    return ops.einsum("bjq,biqc->bijc", cols, out)


@keras.saving.register_keras_serializable(package="keras_ahbf")
class KDCLModel(MutualLearningModel):
    """`K` peer networks trained by KDCL, each distilled by one ensemble teacher.

    The peers are independent networks, of any architectures mapping the
    same images to logits of the same classes (e.g. a ResNet-32 and a
    WRN-16-2, as in the paper). At every step one teacher is built from all
    peers' logits (`kdcl_teacher_logits`: MinLogit by default) and every
    peer minimises its cross-entropy plus the KL divergence from the
    teacher's softened predictions (`kdcl_loss`). Peer 0 is the deployed
    network: `model(x)` / `predict` run only it, `target_model()` returns
    it alone.

    Per-peer augmentation: in the paper every student sees its own random
    distortion of each image. The input pipeline augments each image once,
    so with `peer_augmentation=True` peers `1 ... K-1` additionally get an
    independent random flip and `augmentation_padding`-pixel translation
    of that image (`random_flip_and_translate`) in training steps; peer 0
    sees the pipeline's image, and evaluation and inference see the plain
    images. The randomness comes from a `keras.random.SeedGenerator` of
    this model (`seed`).

    `fit` and `evaluate` report `loss`, `ce`, `kd`, `rampup_weight`,
    `kd_weighted`, `ce_peer_k` and `kl_peer_k`, `l2` when
    `weight_decay > 0`, then `peer_0_accuracy` (the target) ...
    `peer_{K-1}_accuracy` and `ensemble_accuracy`: the mean of the peers'
    probabilities (the teacher itself uses the labels, so its accuracy is
    not a test accuracy).

    Args:
        peers: list of `K >= 2` distinct `keras.Model`s, peer 0 first.
        ensemble: str. The teacher: `"minlogit"` (default), `"naive"`
            (mean of the logits) or `"best"` (the lowest-loss peer per
            sample).
        peer_augmentation: bool. Augment the inputs of peers `k >= 1` in
            training (default True).
        augmentation_padding: int. Largest translation in pixels (>= 0).
        seed: int or None. Seed of the augmentation's `SeedGenerator`.
        temperature: float. Softmax temperature `T` (> 0).
        kd_weight: float. Weight of the KL terms (>= 0).
        stop_teacher_gradient: bool. Detach the teacher (default True).
        rampup_epochs: int. Ramp-up of the KL weight in epochs (>= 0; 0,
            none, by default; see `MutualLearningModel`).
        rampup_shape: str. `"exp"` or `"linear"`.
        weight_decay: float. Coupled L2 weight decay on every peer (>= 0).
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Raises:
        TypeError: if `peers` is not a list of `keras.Model`s, or a flag is
            not a bool.
        ValueError: on fewer than 2 peers, peers of different output
            shapes, an unknown `ensemble` or an option out of range.

    Example:

    ```python
    import keras_ahbf
    model = keras_ahbf.methods.kdcl_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    model.fit(train_ds, epochs=300, validation_data=test_ds)
    model.target_model().save("resnet32_kdcl.keras")
    ```

    Reference:
        Guo et al., "Online Knowledge Distillation via Collaborative
        Learning", CVPR 2020 (no official code).
    """

    method_title = "KDCL"

    def __init__(
        self,
        peers,
        *,
        ensemble: str = KDCL.ensemble,
        peer_augmentation: bool = KDCL.peer_augmentation,
        augmentation_padding: int = KDCL.augmentation_padding,
        seed=None,
        temperature: float = KDCL.temperature,
        kd_weight: float = KDCL.kd_weight,
        stop_teacher_gradient: bool = KDCL.stop_teacher_gradient,
        rampup_epochs: int = KDCL.rampup_epochs,
        rampup_shape: str = PAPER.rampup_shape,
        weight_decay: float = 0.0,
        **kwargs,
    ):
        if isinstance(peers, (list, tuple)) and len(peers) < 2:
            raise ValueError(
                f"KDCL needs at least 2 peers. Received: len(peers)={len(peers)}"
            )
        ensemble = check_choice("ensemble", ensemble, KDCL_ENSEMBLES)
        peer_augmentation = check_bool("peer_augmentation", peer_augmentation)
        augmentation_padding = _utils.check_int(
            "augmentation_padding", augmentation_padding, 0
        )
        seed = None if seed is None else _utils.check_int("seed", seed, 0)
        # `build` (run by `super().__init__`) creates the seed generator.
        object.__setattr__(self, "_augmentation_seed_value", seed)
        super().__init__(
            peers,
            temperature=temperature,
            kd_weight=kd_weight,
            stop_teacher_gradient=stop_teacher_gradient,
            rampup_epochs=rampup_epochs,
            rampup_shape=rampup_shape,
            weight_decay=weight_decay,
            **kwargs,
        )
        self.ensemble = ensemble
        self.peer_augmentation = peer_augmentation
        self.augmentation_padding = augmentation_padding
        self.seed = seed

    def build(self, input_shape):
        if getattr(self, "augmentation_seed", None) is None:
            self.augmentation_seed = keras.random.SeedGenerator(
                self._augmentation_seed_value, name="peer_augmentation_seed"
            )
        super().build(input_shape)

    # ------------------------------------------------------------------- call
    def forward_all(self, inputs, training=None):
        """Every peer's logits, peers `k >= 1` on their own augmented images in training."""
        augment = bool(training) and self.peer_augmentation
        logits = []
        for k, peer in enumerate(self.peers):
            images = inputs
            if augment and k:
                images = random_flip_and_translate(
                    inputs, self.augmentation_padding, seed=self.augmentation_seed
                )
            logits.append(peer(images, training=training))
        return {"peer_logits": logits}

    # ------------------------------------------------------------ training
    def distillation_loss(self, y, outputs, sample_weight=None):
        """`kdcl_loss` of the peers' logits, and its logged terms."""
        w = self.rampup_weight()
        terms = kdcl_loss(
            outputs["peer_logits"],
            y,
            ensemble=self.ensemble,
            temperature=self.temperature,
            kd_weight=self.kd_weight,
            rampup_weight=w,
            stop_teacher_gradient=self.stop_teacher_gradient,
            sample_weight=sample_weight,
        )
        return self._loss_and_logs(terms, w)

    # -------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update({
            "ensemble": self.ensemble,
            "peer_augmentation": self.peer_augmentation,
            "augmentation_padding": self.augmentation_padding,
            "seed": self.seed,
        })
        return config


# ---------------------------------------------------------------- builders


def kdcl_from_backbone(backbone, num_classes: int = 100, num_peers: int = KDCL.num_peers,
                       input_shape=(32, 32, 3), name=None, kdcl_ensemble=None, **options):
    """A `KDCLModel` of `num_peers` networks of a named backbone (or several).

    Args:
        backbone: str, or a list of `num_peers` names for peers of
            different architectures (peer 0 first). Names of
            `keras_ahbf.models.available_backbones()`.
        num_classes: int. Number of classes (>= 1).
        num_peers: int. Number of peers `K` (>= 2; 2 in the paper's CIFAR
            experiments). Must match the length of a list `backbone`.
        input_shape: tuple. `(height, width, channels)`.
        name: str. Model name (default `"kdcl_<backbone>"`).
        kdcl_ensemble: str or None. The command line's name of the model's
            `ensemble` option (give one of the two).
        **options: `KDCLModel` options (`ensemble`, `peer_augmentation`,
            `augmentation_padding`, `seed`, `temperature`, `kd_weight`,
            `stop_teacher_gradient`, `rampup_epochs`, `rampup_shape`,
            `weight_decay`).

    Returns:
        An uncompiled, built `KDCLModel`; peers named `peer_0` ...

    Raises:
        ValueError: for an unknown backbone, `num_peers < 2`, a list of
            backbones of another length, both `kdcl_ensemble` and
            `ensemble`, or invalid options.
    """
    return _kdcl(backbone, None, num_classes, num_peers, input_shape, name, kdcl_ensemble, options)


def kdcl_resnet_cifar(depth: int = 32, num_classes: int = 100, num_peers: int = KDCL.num_peers,
                      input_shape=(32, 32, 3), name=None, kdcl_ensemble=None, **options):
    """A `KDCLModel` of `num_peers` CIFAR ResNet-`depth`s.

    Args:
        depth: int. One of 8, 14, 20, 32, 44, 56, 110.
        num_classes, num_peers, input_shape, name, kdcl_ensemble, **options:
            see `kdcl_from_backbone`.

    Returns:
        An uncompiled, built `KDCLModel`.

    Raises:
        ValueError: on an unsupported `depth`, `num_peers < 2` or invalid
            options.

    Example:

    ```python
    model = keras_ahbf.methods.kdcl_resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    ```
    """
    backbone, builder = _builders.cifar_resnet(depth)
    return _kdcl(backbone, builder, num_classes, num_peers, input_shape, name,
                 kdcl_ensemble, options)


def _kdcl(backbone, builder, num_classes, num_peers, input_shape, name, kdcl_ensemble, options):
    num_peers = _utils.check_int("num_peers", num_peers, 2)
    if kdcl_ensemble is not None:
        if "ensemble" in options:
            raise ValueError(
                "Give `ensemble` or `kdcl_ensemble`, not both. Received: "
                f"ensemble={options['ensemble']!r}, kdcl_ensemble={kdcl_ensemble!r}"
            )
        options["ensemble"] = kdcl_ensemble
    if isinstance(backbone, (list, tuple)):
        if len(backbone) != num_peers:
            raise ValueError(
                "A list `backbone` needs one name per peer. Received: "
                f"backbone={list(backbone)} with num_peers={num_peers}"
            )
        names = list(backbone)
    else:
        names = [backbone] * num_peers
    peers = [
        peer_network(b, num_classes, input_shape, name=f"peer_{k}", builder=builder)
        for k, b in enumerate(names)
    ]
    label = "_".join(dict.fromkeys(names))
    return KDCLModel(peers, name=name or f"kdcl_{label}", **options)
