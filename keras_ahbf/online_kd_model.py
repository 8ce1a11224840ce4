"""`OnlineKDModel`: a `keras.Model` trained with the AHBF-OKD loss."""

import keras
from keras import ops

from keras_ahbf import losses as ahbf_losses
from keras_ahbf.callbacks import RampupCallback
from keras_ahbf.config import PAPER
from keras_ahbf.config import RAMPUP_SHAPES
from keras_ahbf.data import validation
from keras_ahbf.distribution import scale_loss_for_distribution as _scale_loss_for_distribution
from keras_ahbf.distribution import tensorflow as tf_distribution
from keras_ahbf.layers import _utils
from keras_ahbf.layers.adaptive_fusion import AdaptiveFusion
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches


def _sum_of_squares(variables):
    """`sum_w sum(w ** 2)` over a list of weights, in float32."""
    squares = [ops.sum(ops.square(ops.cast(v, "float32"))) for v in variables]
    return ops.sum(ops.stack(squares))


@keras.saving.register_keras_serializable(package="keras_ahbf")
class OnlineKDModel(keras.Model):
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

    In inference (`predict()`, `model(x)`, `model(x, training=False)`) the
    model returns only the target branch's logits, `(batch, num_classes)`,
    and runs only the trunk and branch 0. In training (and in `evaluate`) it
    returns a dict with the lists `"branch_logits"`, `"fused_logits"` and
    `"fusion_weights"`. `target_model()` returns trunk + branch 0 as a plain
    `keras.Model` for deployment.

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
        super().__init__(**kwargs)
        if isinstance(trunk, dict):
            trunk = keras.saving.deserialize_keras_object(trunk)
        if isinstance(branches, dict):
            branches = keras.saving.deserialize_keras_object(branches)
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
        self.rampup_epochs = _utils.check_int("rampup_epochs", rampup_epochs, 0)
        if not isinstance(stop_teacher_gradient, bool):
            raise TypeError(
                "`stop_teacher_gradient` must be a bool. Received: "
                f"stop_teacher_gradient={stop_teacher_gradient!r}"
            )
        self.stop_teacher_gradient = stop_teacher_gradient
        self.weight_decay = _utils.check_float("weight_decay", weight_decay, 0.0)
        if rampup_shape not in RAMPUP_SHAPES:
            raise ValueError(
                f"`rampup_shape` must be one of {list(RAMPUP_SHAPES)}. "
                f"Received: rampup_shape={rampup_shape!r}"
            )
        self.rampup_shape = rampup_shape
        self.aux_ce_weight = _utils.check_float("aux_ce_weight", aux_ce_weight, 0.0)
        self.fused_ce_weight = _utils.check_float("fused_ce_weight", fused_ce_weight, 0.0)

        self.trunk = trunk
        self.branches = branches
        self.num_branches = branches.num_branches
        self._fusion_name = fusion if isinstance(fusion, str) else None
        self.fusions = self._make_fusions(fusion)
        self._return_all_outputs = False

        self.epoch = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int32",
            trainable=False,
            name="epoch",
        )
        self._metric_trackers = self._make_metrics()

        input_shape = getattr(trunk, "input_shape", None) if isinstance(
            trunk, keras.Model
        ) else None
        if input_shape is not None and None not in input_shape[1:]:
            self.build(tuple(input_shape))

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
            fusion = [
                keras.saving.deserialize_keras_object(f) if isinstance(f, dict) else f
                for f in fusion
            ]
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
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                "`OnlineKDModel` expects images of shape (batch, height, "
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
        feats, logits = self.branches.compute_output_shape(trunk_shape)
        g_shape, e_shape = feats[0], logits[0]
        for fusion, f_shape, z_shape in zip(self.fusions, feats[1:], logits[1:]):
            shapes = [g_shape, f_shape, e_shape, z_shape]
            if not fusion.built:
                fusion.build(shapes)
            g_shape, e_shape, _ = fusion.compute_output_shape(shapes)
        self._input_shape_for_build = input_shape
        self.built = True

    # ------------------------------------------------------------------- call
    def call(self, inputs, training=None):
        x = self.trunk(inputs, training=training)
        if not training and not self._return_all_outputs:
            return self.branches.call_branch(0, x, training=training)[1]
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

    def all_outputs(self, inputs, training=False):
        """Returns the dict of all branch, fused and weight outputs.

        Args:
            inputs: a batch of images `(batch, height, width, channels)`.
            training: bool. Whether BatchNorm runs in training mode.

        Returns:
            dict with `"branch_logits"`, `"fused_logits"` (lists of
            `(batch, num_classes)` tensors) and `"fusion_weights"` (list of
            `(batch, 2)` tensors).
        """
        previous = self._return_all_outputs
        self._return_all_outputs = True
        try:
            return self(inputs, training=training)
        finally:
            self._return_all_outputs = previous

    # ------------------------------------------------------------ training
    def rampup_weight(self):
        """The current ramp-up weight `w(epoch)` as a float32 tensor."""
        return ahbf_losses.rampup_weight(self.epoch, self.rampup_epochs, self.rampup_shape)

    def set_epoch(self, epoch: int):
        """Sets the (0-based) epoch the ramp-up weight is computed from."""
        self.epoch.assign(int(epoch))

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Configures the model for training (see `keras.Model.compile`).

        `loss` must be left unset: the AHBF loss is built in. `metrics` are
        computed on the target branch's logits.
        """
        if loss is not None:
            raise ValueError(
                "`OnlineKDModel` computes the AHBF-OKD loss itself; do not "
                f"pass `loss` to `compile()`. Received: loss={loss!r}"
            )
        if "loss_weights" in kwargs and kwargs["loss_weights"] is not None:
            raise ValueError(
                "`loss_weights` is not supported by `OnlineKDModel`; set "
                "`kd_weight`, `lambda_ta` and `lambda_branch` instead."
            )
        super().compile(optimizer=optimizer, loss=None, **kwargs)

    def compile_from_config(self, config):
        """Re-compiles a loaded model with its saved optimizer and metrics."""
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        config.pop("loss_weights", None)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _check_outputs(self, y_pred):
        if not isinstance(y_pred, dict):
            raise ValueError(
                "`OnlineKDModel.compute_loss` needs all branch outputs, "
                "as returned by `model(x, training=True)` or "
                "`model.all_outputs(x)`."
            )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        del x
        self._check_outputs(y_pred)
        w = self.rampup_weight()
        terms = ahbf_losses.ahbf_loss(
            y,
            y_pred["branch_logits"],
            y_pred["fused_logits"],
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
        total = terms["total"]
        if self.weight_decay:
            l2 = 0.5 * self.weight_decay * _sum_of_squares(self.trainable_variables)
            total = total + l2
            self._metric_trackers["l2"].update_state(l2)
        extra = [ops.sum(ops.cast(loss, "float32")) for loss in self.losses]
        if extra:
            total = total + sum(extra[1:], extra[0])
        trackers = self._metric_trackers
        for name in ("ce", "kd_branch", "kd_ta"):
            trackers[name].update_state(terms[name])
        trackers["rampup_weight"].update_state(w)
        # What distillation adds to the loss this step: w * kd_weight * kd.
        trackers["kd_weighted"].update_state(terms["total"] - terms["ce"])
        for name, term in zip(self._ce_term_names(), terms["ce_terms"]):
            trackers[name].update_state(term)
        return _scale_loss_for_distribution(total)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self._check_outputs(y_pred)
        for b, z in enumerate(y_pred["branch_logits"]):
            self._metric_trackers[f"branch_{b}_accuracy"].update_state(
                y, z, sample_weight=sample_weight
            )
        for m, e in enumerate(y_pred["fused_logits"], start=1):
            self._metric_trackers[f"ta_{m}_accuracy"].update_state(
                y, e, sample_weight=sample_weight
            )
        for m, w in enumerate(y_pred["fusion_weights"], start=1):
            self._metric_trackers[f"fusion_{m}_weight"].update_state(w[:, 0])
        return super().compute_metrics(
            x, y, y_pred["branch_logits"][0], sample_weight=sample_weight
        )

    # ---- tf.distribute.MultiWorkerMirroredStrategy support ---------------
    # Keras 3's TensorFlow trainer fails under MultiWorkerMirroredStrategy
    # (keras-team/keras#20585); the workaround is in
    # `keras_ahbf.distribution.tensorflow` and inert unless a multi-worker
    # strategy is active (on every other backend too).

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        iterator, data_batch = tf_distribution.symbolic_build_inputs(
            self, iterator, data_batch
        )
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, *args, **kwargs):
        logs = super().train_step(*args, **kwargs)
        return tf_distribution.multi_worker_logs(self, logs)

    def test_step(self, *args, **kwargs):
        logs = super().test_step(*args, **kwargs)
        return tf_distribution.multi_worker_logs(self, logs)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto",
            callbacks=None, **kwargs):
        """Trains the model (see `keras.Model.fit`).

        A `RampupCallback` is added when `callbacks` holds none, so the
        distillation ramp-up advances with a plain `fit`. Resume with
        `initial_epoch=` to continue the ramp-up where it stopped.
        """
        self.check_array_data(x, y, "x", "y")
        self.check_dataset(x, "x")
        validation_data = kwargs.get("validation_data")
        self.check_dataset(validation_data, "validation_data")
        if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2:
            self.check_array_data(
                validation_data[0], validation_data[1],
                "validation_data[0]", "validation_data[1]",
            )
        callbacks = list(callbacks or [])
        if not any(isinstance(c, RampupCallback) for c in callbacks):
            callbacks.insert(0, RampupCallback())
        return super().fit(
            x=x, y=y, batch_size=batch_size, epochs=epochs, verbose=verbose,
            callbacks=callbacks, **kwargs,
        )

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Evaluates every branch and assistant (see `keras.Model.evaluate`)."""
        self.check_array_data(x, y, "x", "y")
        self.check_dataset(x, "x")
        args = (x, y) + args
        previous = self._return_all_outputs
        self._return_all_outputs = True
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self._return_all_outputs = previous

    def check_dataset(self, x, name="x"):
        """Validates a batched `tf.data.Dataset` from its `element_spec`.

        Runs before the first step, so a bad dataset is refused with the
        argument's name instead of failing inside the compiled step (on JAX,
        a step that raises also leaves the model's variables unusable).
        Other inputs are ignored; TensorFlow is not imported for them. The
        checks are `keras_ahbf.data.validation.check_batch_dataset`.

        Raises:
            ValueError: on a dataset that does not yield `(images, labels)`
                batches, images that are not `(batch, height, width,
                channels)` of the model's input shape (channels-first
                included), labels that are not one class id per image
                (one-hot labels included), or an empty dataset.
        """
        expected = tuple(self._input_shape_for_build[1:]) if self.built else None
        validation.check_batch_dataset(x, name, image_shape=expected)

    def check_array_data(self, x, y, x_name="x", y_name="y"):
        """Validates NumPy images and labels before any training step.

        Datasets and generators are passed through unchecked (the loaders of
        `keras_ahbf.data` validate what they read). The checks are
        `keras_ahbf.data.validation.check_model_arrays`.

        Raises:
            ValueError: on empty data, images that are not
                `(batch, height, width, channels)` of the model's input shape
                (channels-first included), NaN or infinite pixels, labels
                that are not integers in `[0, num_classes)` of shape `(N,)`
                or `(N, 1)`, or a different number of images and labels.
            TypeError: on non-numeric images or labels.
        """
        expected = tuple(self._input_shape_for_build[1:]) if self.built else None
        validation.check_model_arrays(
            x,
            y,
            image_shape=expected,
            num_classes=self.branches.num_classes,
            x_name=x_name,
            y_name=y_name,
        )

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
        if not self.built:
            raise ValueError(
                "Build the model first (call it on a batch or call "
                "`model.build(input_shape)`)."
            )
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
        return {
            "name": self.name,
            "trainable": self.trainable,
            "trunk": keras.saving.serialize_keras_object(self.trunk),
            "branches": keras.saving.serialize_keras_object(self.branches),
            "fusion": fusion,
            "temperature": self.temperature,
            "kd_weight": self.kd_weight,
            "lambda_ta": self.lambda_ta,
            "lambda_branch": self.lambda_branch,
            "rampup_epochs": self.rampup_epochs,
            "stop_teacher_gradient": self.stop_teacher_gradient,
            "weight_decay": self.weight_decay,
            "rampup_shape": self.rampup_shape,
            "aux_ce_weight": self.aux_ce_weight,
            "fused_ce_weight": self.fused_ce_weight,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        if not self.built:
            return None
        return {"input_shape": self._input_shape_for_build}

    def build_from_config(self, config):
        if config and not self.built:
            self.build(config["input_shape"])
