"""`OnlineDistillationModel`: what every online-distillation training model shares."""

import threading

import keras
from keras import ops

from keras_ahbf.callbacks import RampupCallback
from keras_ahbf.config import PAPER
from keras_ahbf.config import RAMPUP_SHAPES
from keras_ahbf.data import validation
from keras_ahbf.distribution import scale_loss_for_distribution as _scale_loss_for_distribution
from keras_ahbf.distribution import tensorflow as tf_distribution
from keras_ahbf.layers import _utils
from keras_ahbf.weight_decay import coupled_l2

# The models whose train or test step is running, per thread (a
# `tf.distribute.MirroredStrategy` traces each replica's step in its own
# thread): inside a step, `call` returns all outputs.
_IN_STEP = threading.local()


def _deserialize(value):
    """A serialized Keras object (or a list of them) deserialized; else `value`."""
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    if isinstance(value, (list, tuple)):
        return [_deserialize(v) for v in value]
    return value


class OnlineDistillationModel(keras.Model):
    """Base class of the models trained by online knowledge distillation.

    An online-distillation model holds several networks (branches, peers)
    trained together, each distilled from the others, and deploys one of
    them (the *target*). This class holds what every method shares, so a
    method only says how its outputs are computed and what its loss is:

    - the call contract: `model(x)` and `model(x, training=False)` (so
      `predict`, `predict_on_batch`) return the target's logits `(batch,
      num_classes)` and run only the target network; `model(x,
      training=True)` and `all_outputs(x, training)` return the dict of all
      outputs (`forward_all`); inside the training and test steps (`fit`,
      `evaluate`, `train_on_batch`, `test_on_batch`) the model always
      computes all outputs;
    - the loss in `compute_loss` (the method's `distillation_loss`, plus the
      coupled L2 weight decay and the layers' own losses, scaled for the
      number of replicas) and the per-output metrics in `compute_metrics`
      (`accuracy_logits`, `output_statistics`; metrics passed to `compile`
      are computed on the target's logits), so the standard `fit` /
      `evaluate` loops of every backend are used;
    - the epoch ramp-up: a non-trainable `epoch` variable, `set_epoch`, and
      a `RampupCallback` that `fit` adds by itself;
    - `compile` (the loss is built in), the checks of NumPy arrays and
      `tf.data` datasets before the first step, the
      `MultiWorkerMirroredStrategy` workaround, `get_config` /
      `from_config` (nested objects named in `NESTED_CONFIG` are
      deserialized in `from_config`) and the build config.

    Subclasses implement `forward_target`, `forward_all`,
    `distillation_loss`, `accuracy_logits`, `target_logits`,
    `target_model`, `num_classes` and `_make_metrics`, create their layers
    in `__init__` and then call `_finish_init(input_shape)`; see
    `keras_ahbf.OnlineKDModel` (AHBF-OKD) and
    `keras_ahbf.methods.MutualLearningModel` (DML).

    Args:
        rampup_epochs: int. Ramp-up length `R` in epochs (>= 0).
        rampup_shape: str. `"exp"` or `"linear"` (see
            `keras_ahbf.losses.rampup_weight`).
        weight_decay: float. Coupled L2 weight decay on all trainable
            weights, BatchNorm and biases included, as PyTorch's SGD
            `weight_decay`: `0.5 * weight_decay * sum(w ** 2)` is added to
            the loss (>= 0). Do not combine it with the optimizer's
            (decoupled) `weight_decay`.
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Raises:
        ValueError: on a value outside the ranges above.
    """

    # Names of the `get_config` entries holding serialized Keras objects.
    NESTED_CONFIG = ()
    # The name of the target's accuracy metric.
    target_metric = "accuracy"
    # The method's short name, for messages ("AHBF-OKD", "DML", ...).
    method_title = "online distillation"

    def __init__(
        self,
        *,
        rampup_epochs: int = 0,
        rampup_shape: str = PAPER.rampup_shape,
        weight_decay: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rampup_epochs = _utils.check_int("rampup_epochs", rampup_epochs, 0)
        if rampup_shape not in RAMPUP_SHAPES:
            raise ValueError(
                f"`rampup_shape` must be one of {list(RAMPUP_SHAPES)}. "
                f"Received: rampup_shape={rampup_shape!r}"
            )
        self.rampup_shape = rampup_shape
        self.weight_decay = _utils.check_float("weight_decay", weight_decay, 0.0)
        self.epoch = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int32",
            trainable=False,
            name="epoch",
        )

    def _finish_init(self, input_shape=None):
        """Creates the metrics; builds the model when `input_shape` is known."""
        self._metric_trackers = self._make_metrics()
        if input_shape is not None and None not in tuple(input_shape)[1:]:
            self.build(tuple(input_shape))

    # ------------------------------------------------- what a method defines
    @property
    def num_classes(self) -> int:
        """Number of classes of the target's logits."""
        raise NotImplementedError

    def _make_metrics(self):
        """Returns the dict of metric trackers, in the order `fit` logs them.

        Must hold a `keras.metrics.Mean` named `"l2"` when `weight_decay > 0`,
        one per key of `distillation_loss`'s logged terms and
        `output_statistics`, and an accuracy per key of `accuracy_logits`.
        """
        raise NotImplementedError

    def forward_target(self, inputs, training=None):
        """The target's logits, running only the target network."""
        raise NotImplementedError

    def forward_all(self, inputs, training=None):
        """The dict of all outputs the loss and the metrics need."""
        raise NotImplementedError

    def distillation_loss(self, y, outputs, sample_weight=None):
        """Returns `(total, logged)`: the method's loss and named scalar terms."""
        raise NotImplementedError

    def accuracy_logits(self, outputs):
        """Returns `{metric name: logits or probabilities}` for the accuracies."""
        raise NotImplementedError

    def target_logits(self, outputs):
        """The target's logits in the dict of all outputs."""
        raise NotImplementedError

    def output_statistics(self, outputs):
        """Returns `{metric name: tensor}` averaged by `Mean` metrics (none by default)."""
        del outputs
        return {}

    def target_model(self, name=None):
        """The deployable target network as a plain `keras.Model`."""
        raise NotImplementedError

    # ------------------------------------------------------------------- call
    def _in_step(self):
        return id(self) in getattr(_IN_STEP, "models", ())

    def call(self, inputs, training=None, all_outputs=None):
        if all_outputs is None:
            all_outputs = bool(training) or self._in_step()
        if all_outputs:
            return self.forward_all(inputs, training=training)
        return self.forward_target(inputs, training=training)

    def all_outputs(self, inputs, training=False):
        """Returns the dict of all outputs (see `forward_all`).

        Args:
            inputs: a batch of images `(batch, height, width, channels)`.
            training: bool. Whether BatchNorm runs in training mode.
        """
        return self(inputs, training=training, all_outputs=True)

    def _step(self, step, *args, **kwargs):
        models = getattr(_IN_STEP, "models", None)
        if models is None:
            models = _IN_STEP.models = set()
        entered = id(self) not in models
        models.add(id(self))
        try:
            logs = step(*args, **kwargs)
        finally:
            if entered:
                models.discard(id(self))
        return tf_distribution.multi_worker_logs(self, logs)

    def train_step(self, *args, **kwargs):
        return self._step(super().train_step, *args, **kwargs)

    def test_step(self, *args, **kwargs):
        return self._step(super().test_step, *args, **kwargs)

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

    # ------------------------------------------------------------ training
    def set_epoch(self, epoch: int):
        """Sets the (0-based) epoch the ramp-up weight is computed from."""
        self.epoch.assign(int(epoch))

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Configures the model for training (see `keras.Model.compile`).

        `loss` must be left unset: the method's loss is built in. `metrics`
        are computed on the target's logits.
        """
        cls = type(self).__name__
        if loss is not None:
            raise ValueError(
                f"`{cls}` computes its distillation loss itself; do not pass "
                f"`loss` to `compile()`. Received: loss={loss!r}"
            )
        if "loss_weights" in kwargs and kwargs["loss_weights"] is not None:
            raise ValueError(
                f"`loss_weights` is not supported by `{cls}`; set the loss "
                "weights of the model instead."
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
                f"`{type(self).__name__}.compute_loss` needs all outputs, as "
                "returned by `model(x, training=True)` or `model.all_outputs(x)`."
            )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        del x
        self._check_outputs(y_pred)
        total, logged = self.distillation_loss(y, y_pred, sample_weight=sample_weight)
        trackers = self._metric_trackers
        if self.weight_decay:
            l2 = coupled_l2(self.trainable_variables, self.weight_decay)
            total = total + l2
            trackers["l2"].update_state(l2)
        extra = [ops.sum(ops.cast(loss, "float32")) for loss in self.losses]
        if extra:
            total = total + sum(extra[1:], extra[0])
        for name, value in logged.items():
            trackers[name].update_state(value)
        return _scale_loss_for_distribution(total)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if not isinstance(y_pred, dict):
            # The target's logits alone: Keras builds the `compile` metrics
            # on `model(x, training=False)` before the first step.
            return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        trackers = self._metric_trackers
        for name, logits in self.accuracy_logits(y_pred).items():
            trackers[name].update_state(y, logits, sample_weight=sample_weight)
        for name, value in self.output_statistics(y_pred).items():
            trackers[name].update_state(value)
        return super().compute_metrics(
            x, y, self.target_logits(y_pred), sample_weight=sample_weight
        )

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto",
            callbacks=None, **kwargs):
        """Trains the model (see `keras.Model.fit`).

        NumPy data and `tf.data` datasets are checked before the first step.
        A `RampupCallback` is added when `callbacks` holds none, so the
        ramp-up advances with a plain `fit`. Resume with `initial_epoch=` to
        continue the ramp-up where it stopped.
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
        """Evaluates every network of the model (see `keras.Model.evaluate`)."""
        self.check_array_data(x, y, "x", "y")
        self.check_dataset(x, "x")
        return super().evaluate(x, y, *args, **kwargs)

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
            num_classes=self.num_classes,
            x_name=x_name,
            y_name=y_name,
        )

    def _build_trunk_and_branches(self, input_shape):
        """Builds `self.trunk` and `self.branches` on images; returns the trunk's output shape.

        For the models made of a trunk and `HierarchicalBranches`
        (`OnlineKDModel`, `SharedTrunkModel`); records the input shape for
        `get_build_config` and `target_model`.

        Raises:
            ValueError: if `input_shape` is not `(batch, height, width,
                channels)`.
        """
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
        self._input_shape_for_build = input_shape
        return trunk_shape

    def _check_built(self):
        if not self.built:
            raise ValueError(
                "Build the model first (call it on a batch or call "
                "`model.build(input_shape)`)."
            )

    # -------------------------------------------------------- serialization
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "rampup_epochs": self.rampup_epochs,
            "rampup_shape": self.rampup_shape,
            "weight_decay": self.weight_decay,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls.NESTED_CONFIG:
            if key in config:
                config[key] = _deserialize(config[key])
        return cls(**config)

    def get_build_config(self):
        if not self.built:
            return None
        return {"input_shape": self._input_shape_for_build}

    def build_from_config(self, config):
        if config and not self.built:
            self.build(config["input_shape"])
