"""`OnlineKDModel`: a `keras.Model` trained with the AHBF-OKD loss."""

import keras

from keras_ahbf import losses as ahbf_losses
from keras_ahbf.config import PAPER
from keras_ahbf.layers import _utils
from keras_ahbf.layers.adaptive_fusion import AdaptiveFusion
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.methods.online_distillation_model import OnlineDistillationModel
from keras_ahbf.utils.validation import check_bool


@keras.saving.register_keras_serializable(package="keras_ahbf")
class OnlineKDModel(OnlineDistillationModel):
    """A network with hierarchical branches trained by online distillation.

    The model runs a shared `trunk`, then `B` branches of increasing depth
    (`HierarchicalBranches`), then `B - 1` `AdaptiveFusion` modules that fuse
    the branches recursively:

    ```
    x_t = trunk(x);   (F_b, z_b) = branch_b(x_t)            b = 0 ... B-1
    (G_1, e_1) = Fuse_1(F_0, F_1, z_0, z_1)
    (G_m, e_m) = Fuse_m(G_{m-1}, F_m, e_{m-1}, z_m)         m = 2 ... B-1
    ```

    Training minimises `keras_ahbf.losses.ahbf_loss` (cross-entropy on every
    branch and fused output, plus the recursive teacher-assistant
    distillation terms weighted by the epoch ramp-up `w(epoch)`), computed
    in `compute_loss`, so the standard `fit` / `evaluate` loops of every
    Keras backend are used. The ramp-up epoch is held in a non-trainable
    variable advanced by `RampupCallback`, which `fit` adds by itself.

    In inference (`predict()`, `predict_on_batch`, `model(x)`, `model(x,
    training=False)`) the model returns only the target branch's logits,
    `(batch, num_classes)`, and runs only the trunk and branch 0.
    `model(x, training=True)`, `all_outputs(x)` and the training and test
    steps (`fit`, `evaluate`, `train_on_batch`, `test_on_batch`) compute
    the dict with the lists `"branch_logits"`, `"fused_logits"` and
    `"fusion_weights"`. `target_model()` returns trunk + branch 0 as a plain
    `keras.Model` for deployment. The shared machinery (ramp-up variable,
    compile, coupled L2, data checks, entry points) is
    `keras_ahbf.methods.OnlineDistillationModel`.

    `fit` and `evaluate` report `loss` (the total), `ce`, `kd_branch`,
    `kd_ta`, `rampup_weight`, `kd_weighted` (what distillation adds to the
    loss: `w * kd_weight * kd`), each cross-entropy term (`ce_branch_b`,
    `ce_ta_m`; unweighted), `l2` when `weight_decay > 0`, then
    `branch_0_accuracy` (the target) ... `branch_{B-1}_accuracy`,
    `ta_1_accuracy` ... `ta_{B-1}_accuracy` (the fused teacher assistants),
    and `fusion_m_weight`, the batch mean of the weight each fusion module
    gives its first input (the previous assistant). Metrics passed to
    `compile(metrics=...)` are computed on the target logits.

    Args:
        trunk: `keras.Model` or layer. The shared network, images to the
            feature map fed to every branch. A `keras.Model` with a known
            input shape lets the model build itself at construction.
        branches: `HierarchicalBranches`. The branches, target first.
        fusion: str or list of `B - 1` `AdaptiveFusion` layers. `"conv"`
            (the paper's plain fusion) builds default modules.
        temperature: float. Distillation temperature `T` (> 0).
        kd_weight: float. Weight of all distillation terms (>= 0).
        lambda_ta: float. Weight of the teacher-assistant terms (>= 0).
        lambda_branch: float. Weight of the branch terms (>= 0).
        rampup_epochs: int. Ramp-up length `R` in epochs (>= 0; 0 means the
            full weight 0.5 from the first epoch).
        stop_teacher_gradient: bool. Stop gradients through the teacher side
            of every KL term (the published code does not).
        rampup_shape: str. `"exp"` (the paper's `0.5 exp(-5 (1 - t)^2)`) or
            `"linear"` (`0.5 t`), `t = min(epoch, R) / R`.
        aux_ce_weight: float. Weight of the deeper branches' cross-entropy
            (>= 0; 1 in the paper).
        fused_ce_weight: float. Weight of the fused outputs' cross-entropy
            (>= 0; 1 in the paper).
        weight_decay: float. Coupled L2 weight decay on all trainable
            weights, BatchNorm and biases included, as PyTorch's SGD
            `weight_decay` (the paper uses 5e-4): `0.5 * weight_decay *
            sum(w ** 2)` is added to the loss, so its gradient
            `weight_decay * w` is added before momentum. (Keras' optimizer
            `weight_decay` argument instead decays the weights directly,
            decoupled from the gradient, like AdamW; do not use both.)
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Raises:
        ValueError: on a configuration outside the ranges above, fewer than 2
            branches, or a `fusion` list of the wrong length.

    Example:

    ```python
    import keras_ahbf
    model = keras_ahbf.models.resnet_cifar(depth=32, num_classes=100)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    model.fit(train_ds, epochs=300, validation_data=test_ds)
    model.target_model().save("resnet32.keras")
    ```

    Reference:
        Gong et al., "Adaptive Hierarchy-Branch Fusion for Online Knowledge
        Distillation", AAAI 2023.
    """

    NESTED_CONFIG = ("trunk", "branches", "fusion")
    target_metric = "branch_0_accuracy"
    method_title = "AHBF-OKD"

    def __init__(
        self,
        trunk,
        branches,
        fusion="conv",
        *,
        temperature: float = PAPER.temperature,
        kd_weight: float = PAPER.kd_weight,
        lambda_ta: float = PAPER.lambda_ta,
        lambda_branch: float = PAPER.lambda_branch,
        rampup_epochs: int = 240,
        stop_teacher_gradient: bool = PAPER.stop_teacher_gradient,
        weight_decay: float = 0.0,
        rampup_shape: str = PAPER.rampup_shape,
        aux_ce_weight: float = PAPER.aux_ce_weight,
        fused_ce_weight: float = PAPER.fused_ce_weight,
        **kwargs,
    ):
        super().__init__(
            rampup_epochs=rampup_epochs,
            rampup_shape=rampup_shape,
            weight_decay=weight_decay,
            **kwargs,
        )
        if not isinstance(trunk, keras.layers.Layer):
            raise TypeError(
                "`trunk` must be a Keras model or layer. "
                f"Received: trunk={trunk!r}"
            )
        if not isinstance(branches, HierarchicalBranches):
            raise TypeError(
                "`branches` must be a `keras_ahbf.layers.HierarchicalBranches`. "
                f"Received: branches={branches!r}"
            )
        if branches.num_branches < 2:
            raise ValueError(
                "Online distillation needs at least 2 branches; for a single "
                "network use `target_model()` or a plain Keras model. "
                f"Received: num_branches={branches.num_branches}"
            )
        self.temperature = _utils.check_float(
            "temperature", temperature, 0.0, exclusive=True
        )
        self.kd_weight = _utils.check_float("kd_weight", kd_weight, 0.0)
        self.lambda_ta = _utils.check_float("lambda_ta", lambda_ta, 0.0)
        self.lambda_branch = _utils.check_float("lambda_branch", lambda_branch, 0.0)
        self.stop_teacher_gradient = check_bool("stop_teacher_gradient", stop_teacher_gradient)
        self.aux_ce_weight = _utils.check_float("aux_ce_weight", aux_ce_weight, 0.0)
        self.fused_ce_weight = _utils.check_float("fused_ce_weight", fused_ce_weight, 0.0)

        self.trunk = trunk
        self.branches = branches
        self.num_branches = branches.num_branches
        self._fusion_name = fusion if isinstance(fusion, str) else None
        self.fusions = self._make_fusions(fusion)

        input_shape = getattr(trunk, "input_shape", None) if isinstance(
            trunk, keras.Model
        ) else None
        self._finish_init(input_shape)

    @property
    def num_classes(self) -> int:
        """Number of classes of every branch."""
        return self.branches.num_classes

    # ------------------------------------------------------------------ build
    def _make_fusions(self, fusion):
        levels = self.num_branches - 1
        if isinstance(fusion, str):
            attention = None if fusion == "conv" else fusion
            try:
                return [
                    AdaptiveFusion(
                        attention=attention,
                        return_weights=True,
                        name=f"fusion_{m}",
                        dtype=self.dtype_policy,
                    )
                    for m in range(1, levels + 1)
                ]
            except ValueError:
                raise ValueError(
                    "`fusion` must be 'conv' or a supported attention variant "
                    f"of `AdaptiveFusion`. Received: fusion={fusion!r}"
                ) from None
        if isinstance(fusion, (list, tuple)):
            if len(fusion) != levels or not all(
                isinstance(f, AdaptiveFusion) for f in fusion
            ):
                raise ValueError(
                    f"`fusion` must be a list of {levels} `AdaptiveFusion` "
                    f"layers (num_branches - 1). Received: fusion={fusion!r}"
                )
            if not all(f.return_weights for f in fusion):
                raise ValueError(
                    "The `AdaptiveFusion` layers passed as `fusion` must be "
                    "created with `return_weights=True`."
                )
            return list(fusion)
        raise TypeError(
            "`fusion` must be a string or a list of `AdaptiveFusion` layers. "
            f"Received: fusion={fusion!r}"
        )

    def _ce_term_names(self):
        """Metric names of the cross-entropy terms, in `ahbf_loss`'s order."""
        branches = [f"ce_branch_{b}" for b in range(self.num_branches)]
        return branches + [f"ce_ta_{m}" for m in range(1, self.num_branches)]

    def _make_metrics(self):
        mean = keras.metrics.Mean
        acc = keras.metrics.SparseCategoricalAccuracy
        names = ["ce", "kd_branch", "kd_ta", "rampup_weight", "kd_weighted"]
        trackers = {name: mean(name=name) for name in names + self._ce_term_names()}
        if self.weight_decay:
            trackers["l2"] = mean(name="l2")
        for b in range(self.num_branches):
            trackers[f"branch_{b}_accuracy"] = acc(name=f"branch_{b}_accuracy")
        for m in range(1, self.num_branches):
            trackers[f"ta_{m}_accuracy"] = acc(name=f"ta_{m}_accuracy")
        for m in range(1, self.num_branches):
            trackers[f"fusion_{m}_weight"] = mean(name=f"fusion_{m}_weight")
        return trackers

    def build(self, input_shape):
        trunk_shape = self._build_trunk_and_branches(input_shape)
        feats, logits = self.branches.compute_output_shape(trunk_shape)
        g_shape, e_shape = feats[0], logits[0]
        for fusion, f_shape, z_shape in zip(self.fusions, feats[1:], logits[1:]):
            shapes = [g_shape, f_shape, e_shape, z_shape]
            if not fusion.built:
                fusion.build(shapes)
            g_shape, e_shape, _ = fusion.compute_output_shape(shapes)
        self.built = True

    # ------------------------------------------------------------------- call
    def forward_target(self, inputs, training=None):
        """The target branch's logits: runs the trunk and branch 0 only."""
        x = self.trunk(inputs, training=training)
        return self.branches.call_branch(0, x, training=training)[1]

    def forward_all(self, inputs, training=None):
        """Every branch, fused output and fusion weight.

        Returns:
            dict with `"branch_logits"`, `"fused_logits"` (lists of
            `(batch, num_classes)` tensors) and `"fusion_weights"` (list of
            `(batch, 2)` tensors).
        """
        x = self.trunk(inputs, training=training)
        features, logits = self.branches(x, training=training)
        g, e = features[0], logits[0]
        fused, weights = [], []
        for fusion, f, z in zip(self.fusions, features[1:], logits[1:]):
            g, e, w = fusion([g, f, e, z], training=training)
            fused.append(e)
            weights.append(w)
        return {
            "branch_logits": logits,
            "fused_logits": fused,
            "fusion_weights": weights,
        }

    # ------------------------------------------------------------ training
    def rampup_weight(self):
        """The current ramp-up weight `w(epoch)` as a float32 tensor."""
        return ahbf_losses.rampup_weight(self.epoch, self.rampup_epochs, self.rampup_shape)

    def distillation_loss(self, y, outputs, sample_weight=None):
        """`keras_ahbf.losses.ahbf_loss` of the outputs, and its logged terms."""
        w = self.rampup_weight()
        terms = ahbf_losses.ahbf_loss(
            y,
            outputs["branch_logits"],
            outputs["fused_logits"],
            temperature=self.temperature,
            kd_weight=self.kd_weight,
            lambda_ta=self.lambda_ta,
            lambda_branch=self.lambda_branch,
            rampup_weight=w,
            stop_teacher_gradient=self.stop_teacher_gradient,
            aux_ce_weight=self.aux_ce_weight,
            fused_ce_weight=self.fused_ce_weight,
            sample_weight=sample_weight,
        )
        logged = {name: terms[name] for name in ("ce", "kd_branch", "kd_ta")}
        logged["rampup_weight"] = w
        # What distillation adds to the loss this step: w * kd_weight * kd.
        logged["kd_weighted"] = terms["total"] - terms["ce"]
        logged.update(zip(self._ce_term_names(), terms["ce_terms"]))
        return terms["total"], logged

    def accuracy_logits(self, outputs):
        named = {
            f"branch_{b}_accuracy": z for b, z in enumerate(outputs["branch_logits"])
        }
        named.update(
            (f"ta_{m}_accuracy", e)
            for m, e in enumerate(outputs["fused_logits"], start=1)
        )
        return named

    def output_statistics(self, outputs):
        return {
            f"fusion_{m}_weight": w[:, 0]
            for m, w in enumerate(outputs["fusion_weights"], start=1)
        }

    def target_logits(self, outputs):
        return outputs["branch_logits"][0]

    # --------------------------------------------------------------- export
    def target_model(self, name=None):
        """Returns the deployable target network: trunk + branch 0.

        The result is a plain functional `keras.Model` with no fusion layers
        and no deeper branches. It shares its layers (and so its weights)
        with this model: save it (`.save("target.keras")`) or clone it
        (`keras.models.clone_model`) to get an independent copy.

        Args:
            name: str. Name of the returned model (default:
                `"<model name>_target"`).

        Returns:
            A `keras.Model` mapping images to the target logits.
        """
        self._check_built()
        shape = self._input_shape_for_build[1:]
        inputs = keras.Input(shape=shape, name="images")
        x = self.trunk(inputs)
        features = self.branches.stages[0](x)
        pooled = keras.layers.GlobalAveragePooling2D(
            name="branch_0_pool", dtype=self.dtype_policy
        )(features)
        logits = self.branches.heads[0](pooled)
        return keras.Model(inputs, logits, name=name or f"{self.name}_target")

    # -------------------------------------------------------- serialization
    def get_config(self):
        fusion = self._fusion_name
        if fusion is None:
            fusion = [keras.saving.serialize_keras_object(f) for f in self.fusions]
        config = super().get_config()
        config.update({
            "trunk": keras.saving.serialize_keras_object(self.trunk),
            "branches": keras.saving.serialize_keras_object(self.branches),
            "fusion": fusion,
            "temperature": self.temperature,
            "kd_weight": self.kd_weight,
            "lambda_ta": self.lambda_ta,
            "lambda_branch": self.lambda_branch,
            "stop_teacher_gradient": self.stop_teacher_gradient,
            "aux_ce_weight": self.aux_ce_weight,
            "fused_ce_weight": self.fused_ce_weight,
        })
        return config
