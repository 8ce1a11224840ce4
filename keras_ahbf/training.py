"""Training: learning-rate schedule, model, optimizer and baseline builders.

The configuration itself (the paper's defaults, the data-set recipes, the
presets and `resolve_config`) lives in `keras_ahbf.config`, which imports
nothing heavy; its names are re-exported here. Use `resolve_config` to get a
complete `TrainConfig`, then `build_model`, `compile_model` (or
`build_optimizer`) and `model.fit`; the `keras-ahbf` command is built on
these functions.
"""


import importlib

import keras
from keras import ops

from keras_ahbf import config as _config
from keras_ahbf import models as ahbf_models
from keras_ahbf.config import KD_OPTIONS
from keras_ahbf.config import PRESETS
from keras_ahbf.config import RECIPES
from keras_ahbf.config import Preset
from keras_ahbf.config import Recipe
from keras_ahbf.config import TrainConfig
from keras_ahbf.config import scale_epochs
from keras_ahbf.layers import _utils

__all__ = [
    "KD_OPTIONS",
    "PRESETS",
    "RECIPES",
    "MultiStepLR",
    "Preset",
    "Recipe",
    "TrainConfig",
    "build_baseline",
    "build_model",
    "build_optimizer",
    "compile_baseline",
    "compile_model",
    "resolve_backbone",
    "resolve_config",
    "scale_epochs",
    "steps_per_epoch",
    "zero_init_residual",
]


def resolve_config(dataset, **options):
    """`keras_ahbf.config.resolve_config`, plus a check of the backbone name.

    `keras_ahbf.config` cannot look the backbone up (it imports no Keras);
    this does, so an unknown name fails here, before anything is built. See
    `keras_ahbf.config.resolve_config` for the arguments.

    Raises:
        ValueError: for an unknown data set, preset, option or backbone, or
            a value out of range, NaN or infinite.
        TypeError: for a value of the wrong type.
    """
    config = _config.resolve_config(dataset, **options)
    resolve_backbone(config.backbone)
    return config


def steps_per_epoch(num_examples, batch_size, drop_remainder=False):
    """Number of batches per epoch (the last, partial one included)."""
    if drop_remainder:
        return max(1, num_examples // batch_size)
    return max(1, -(-num_examples // batch_size))


@keras.saving.register_keras_serializable(package="keras_ahbf")
class MultiStepLR(keras.optimizers.schedules.LearningRateSchedule):
    """Step decay at given epochs, as PyTorch's `MultiStepLR`, with optional warm-up.

    ```
    lr(step) = initial_learning_rate * gamma ** #{m in milestones : epoch >= m}
               * min(1, (step + 1) / warmup_steps)        (warmup_steps > 0)
    epoch    = floor(step / steps_per_epoch)
    ```

    The optimizer's step counter drives it, so it is saved and restored with
    the optimizer (resuming a run continues the schedule) and it works with
    a plain `model.fit` on every backend.

    Args:
        initial_learning_rate: float. Learning rate before the first
            milestone (> 0).
        milestones: list of int. Epochs (0-based, strictly increasing) at
            whose start the rate is multiplied by `gamma`.
        steps_per_epoch: int. Optimizer steps per epoch (>= 1).
        gamma: float. Multiplicative factor (> 0), 0.1 by default.
        warmup_steps: int. Length of a linear warm-up from
            `initial_learning_rate / warmup_steps` (>= 0; 0, the default,
            means none, as in the paper).
        name: str. Name of the schedule.

    Example:

    ```python
    schedule = MultiStepLR(0.1, [150, 225], steps_per_epoch=391)
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    ```
    """

    def __init__(
        self,
        initial_learning_rate,
        milestones,
        steps_per_epoch,
        gamma=0.1,
        warmup_steps=0,
        name="MultiStepLR",
    ):
        self.initial_learning_rate = _utils.check_float(
            "initial_learning_rate", initial_learning_rate, 0.0, exclusive=True
        )
        milestones = [_utils.check_int("milestones", m, 0) for m in milestones]
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(
                "`milestones` must be strictly increasing. "
                f"Received: milestones={milestones}"
            )
        self.milestones = milestones
        self.steps_per_epoch = _utils.check_int("steps_per_epoch", steps_per_epoch, 1)
        self.gamma = _utils.check_float("gamma", gamma, 0.0, exclusive=True)
        self.warmup_steps = _utils.check_int("warmup_steps", warmup_steps, 0)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        epoch = ops.floor(step / float(self.steps_per_epoch))
        lr = ops.convert_to_tensor(self.initial_learning_rate, "float32")
        for m in self.milestones:
            lr = ops.where(epoch >= float(m), lr * self.gamma, lr)
        if self.warmup_steps:
            lr = lr * ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return lr

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "milestones": list(self.milestones),
            "steps_per_epoch": self.steps_per_epoch,
            "gamma": self.gamma,
            "warmup_steps": self.warmup_steps,
            "name": self.name,
        }


def resolve_backbone(name):
    """Returns the builder of a backbone name: `builder(**kwargs) -> OnlineKDModel`.

    Uses `keras_ahbf.models.get_builder` (every backbone of the package:
    `resnet8` ... `resnet110`, `resnet18_imagenet`, `vgg16`, `densenet40`,
    `mobilenetv2`, ...).

    Raises:
        ValueError: for an unknown name (the message lists the valid ones)
            or a name that is not a string.
    """
    try:
        return ahbf_models.get_builder(name)
    except TypeError as e:
        raise ValueError(str(e)) from None


def build_model(config, num_classes, input_shape):
    """Builds the training model of a configuration (uncompiled).

    `config.method` picks it: `"ahbf"` (the default) an `OnlineKDModel` of
    the backbone; any other method the model its `METHOD_SPECS` builder
    makes from the backbone (e.g. `"dml"`: a
    `keras_ahbf.methods.MutualLearningModel` of `config.num_peers` networks
    of the backbone).

    Args:
        config: `TrainConfig`.
        num_classes: int. Number of classes.
        input_shape: tuple. `(height, width, channels)`.

    Returns:
        A built, uncompiled `OnlineKDModel` (or the method's model).

    Raises:
        ValueError: for an unknown backbone, method or invalid options.
    """
    builder = resolve_backbone(config.backbone)
    method = getattr(config, "method", "ahbf")
    if method != "ahbf":
        spec = _config.METHOD_SPECS.get(method)
        if spec is None:
            raise ValueError(
                f"`method` must be one of {list(_config.METHODS)}. Received: method={method!r}"
            )
        module, function = spec.builder.split(":")
        build = getattr(importlib.import_module(module), function)
        model = build(config.backbone, num_classes, input_shape=tuple(input_shape),
                      **config.method_options())
        if config.zero_init_residual:
            zero_init_residual(model)
        return model
    model = builder(
        num_classes=num_classes,
        num_branches=config.num_branches,
        aux=config.aux,
        fusion=config.fusion,
        input_shape=tuple(input_shape),
        **config.kd_options(),
    )
    if config.zero_init_residual:
        zero_init_residual(model)
    return model


def zero_init_residual(model):
    """Sets the scale of the last BatchNorm of every residual block to zero.

    Each residual block then starts as the identity (its residual branch
    outputs zero), the "zero-gamma" trick of Goyal et al. (2017) used by
    torchvision's `zero_init_residual=True`. Applies to the `BasicBlock` and
    `Bottleneck` layers of `model` (trunk and every branch); other layers are
    left as they are.

    Args:
        model: a built Keras model or layer.

    Returns:
        The number of blocks changed.
    """
    from keras_ahbf.layers import BasicBlock  # Bottleneck subclasses it.

    changed = 0
    for layer in _all_layers(model):
        if isinstance(layer, BasicBlock):
            last_bn = getattr(layer, "bn3", None) or layer.bn2
            last_bn.gamma.assign(ops.zeros(last_bn.gamma.shape, last_bn.gamma.dtype))
            changed += 1
    return changed


def _all_layers(layer):
    """`layer` and every layer under it, through public attributes only:
    a Keras model's `layers`, the package's `stages` and `blocks` lists."""
    seen, stack, found = set(), [layer], []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        if isinstance(current, keras.Model):
            stack.extend(current.layers)
        for attribute in ("stages", "blocks"):
            stack.extend(getattr(current, attribute, None) or [])
    return found


def build_optimizer(config, steps):
    """SGD with Nesterov momentum and the `MultiStepLR` schedule.

    Keras' Nesterov SGD (`m = mu m - lr g; w += mu m - lr g`) and PyTorch's
    (`b = mu b + g; w -= lr (g + mu b)`) give the same iterates while the
    learning rate is constant (`m = -lr b`); after a learning-rate drop,
    Keras' velocity still carries the old rate for the few steps it takes
    momentum to decay (`tests/test_training.py` pins both).

    Weight decay is not set on the optimizer: it is the model's coupled L2
    (`OnlineKDModel(weight_decay=...)`, `BaselineModel(weight_decay=...)`),
    as PyTorch's SGD `weight_decay`.

    Args:
        config: `TrainConfig`.
        steps: int. Optimizer steps per epoch.

    Returns:
        A `keras.optimizers.SGD`.
    """
    schedule = MultiStepLR(
        config.lr, config.milestones, steps_per_epoch=steps, gamma=config.lr_decay,
        warmup_steps=config.warmup_epochs * steps,
    )
    return keras.optimizers.SGD(
        learning_rate=schedule, momentum=config.momentum, nesterov=config.nesterov
    )


def compile_model(model, config, steps, jit_compile=False, **kwargs):
    """Compiles `model` with `build_optimizer(config, steps)`.

    Args:
        model: `OnlineKDModel`.
        config: `TrainConfig`.
        steps: int. Optimizer steps per epoch.
        jit_compile: bool or `"auto"`. XLA compilation (see
            `keras.Model.compile`). On this kind of CPU XLA's convolutions
            are slower than TensorFlow's default path; JAX needs it (its
            non-jitted mode runs op by op).
        **kwargs: other `compile` arguments (`run_eagerly`, `metrics`, ...).

    Returns:
        `model`, compiled.
    """
    model.compile(
        optimizer=build_optimizer(config, steps), jit_compile=jit_compile, **kwargs
    )
    return model


def build_baseline(config, num_classes, input_shape):
    """The target network alone, for a cross-entropy-only baseline.

    Builds the configuration's AHBF-OKD model (so, with the same seed, the
    same initial weights) and returns its `target_model()` (trunk + branch
    0, no other branch, no fusion) as a `keras_ahbf.models.BaselineModel`
    with the configuration's coupled L2 weight decay: the same loss term,
    computed by the same function, as `OnlineKDModel(weight_decay=...)`.

    Returns:
        A built, uncompiled `BaselineModel` (images -> logits); its
        `target_model()` is the plain functional network.
    """
    model = build_model(config, num_classes, input_shape)
    target = model.target_model(name=f"{config.backbone}_baseline")
    return ahbf_models.BaselineModel(
        target.input, target.output, name=target.name, weight_decay=config.weight_decay
    )


def compile_baseline(model, config, steps, jit_compile=False, **kwargs):
    """Compiles a baseline with cross-entropy, accuracy and the recipe's SGD.

    The accuracy metric is named `branch_0_accuracy`, as the target branch's
    in `OnlineKDModel`, so logs of both compare directly. `**kwargs` go to
    `compile`.
    """
    model.compile(
        optimizer=build_optimizer(config, steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="branch_0_accuracy")],
        jit_compile=jit_compile,
        **kwargs,
    )
    return model
