"""Training recipes: configuration, learning-rate schedule, model and optimizer.

The paper's CIFAR recipe (spec section 4) is the default for CIFAR-10/100:

| option | CIFAR-10/100 | ImageNet | digits (demo) |
| --- | --- | --- | --- |
| backbone | resnet32 | resnet18_imagenet | resnet8 |
| branches B, aux | 4, 4 | 4, 1 | 4, 4 |
| epochs | 300 | 90 | 30 |
| batch size | 128 | 256 | 64 |
| SGD lr (momentum 0.9, Nesterov) | 0.1 | 0.1 | 0.1 |
| lr x0.1 at epochs | 150, 225 | 30, 60 | 15, 23 |
| weight decay (coupled L2) | 5e-4 | 1e-4 | 5e-4 |
| distillation ramp-up | 240 | 72 | 24 |

When the number of epochs is changed, the milestones and the ramp-up are
scaled in proportion (e.g. 30 CIFAR epochs: lr x0.1 at 15 and 23, ramp-up
24) unless they are given explicitly. The paper gives no ImageNet recipe:
the usual ResNet one is used, with the CIFAR ramp-up ratio (80 % of the
epochs).

Use `resolve_config` to get a complete `TrainConfig`, then `build_model`,
`compile_model` (or `build_optimizer`) and `model.fit`; the `keras-ahbf`
command (`keras_ahbf.cli`) is built on these functions.
"""

import dataclasses
import functools
import math
import re

import keras
from keras import ops

from keras_ahbf import models as ahbf_models
from keras_ahbf.layers import _utils

__all__ = [
    "KD_OPTIONS",
    "RECIPES",
    "MultiStepLR",
    "Recipe",
    "TrainConfig",
    "add_coupled_l2",
    "build_baseline",
    "build_model",
    "build_optimizer",
    "compile_baseline",
    "compile_model",
    "resolve_backbone",
    "resolve_config",
    "scale_epochs",
    "steps_per_epoch",
]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Default hyper-parameters of one data set (see the module table)."""

    backbone: str
    num_branches: int
    aux: int
    epochs: int
    batch_size: int
    lr: float
    milestones: tuple
    weight_decay: float
    rampup_epochs: int


RECIPES = {
    "cifar10": Recipe("resnet32", 4, 4, 300, 128, 0.1, (150, 225), 5e-4, 240),
    "cifar100": Recipe("resnet32", 4, 4, 300, 128, 0.1, (150, 225), 5e-4, 240),
    "imagenet2012": Recipe("resnet18_imagenet", 4, 1, 90, 256, 0.1, (30, 60), 1e-4, 72),
    "digits": Recipe("resnet8", 4, 4, 30, 64, 0.1, (15, 23), 5e-4, 24),
}

# `TrainConfig` fields passed to `OnlineKDModel` (through the builders).
KD_OPTIONS = (
    "temperature",
    "kd_weight",
    "lambda_ta",
    "lambda_branch",
    "rampup_epochs",
    "stop_teacher_gradient",
    "weight_decay",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run, fully resolved (no `None` left
    except `data_dir`, `train_limit` and `test_limit`).

    Build it with `resolve_config`, which fills the data set's recipe and
    checks the values. `to_dict()` / `TrainConfig(**d)` round-trip through
    JSON (the `keras-ahbf` command stores it as `config.json`).
    """

    dataset: str
    backbone: str
    num_branches: int
    aux: int
    fusion: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    milestones: tuple
    lr_decay: float
    weight_decay: float
    temperature: float
    kd_weight: float
    lambda_ta: float
    lambda_branch: float
    rampup_epochs: int
    stop_teacher_gradient: bool
    augment: bool
    seed: int
    data_dir: str = None
    train_limit: int = None
    test_limit: int = None

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["milestones"] = tuple(d.get("milestones", ()))
        return cls(**d)

    def kd_options(self):
        """The `OnlineKDModel` keyword arguments of this configuration."""
        return {name: getattr(self, name) for name in KD_OPTIONS}


def scale_epochs(value, epochs, base_epochs):
    """Scales an epoch count from a `base_epochs` recipe to `epochs`.

    Rounds half up: `floor(value * epochs / base_epochs + 0.5)`, so
    milestone 225 of 300 epochs becomes 23 of 30. Used for the milestones
    and the ramp-up.
    """
    return int(math.floor(value * epochs / base_epochs + 0.5))


def resolve_config(dataset, **options):
    """Fills a data set's recipe into the given options and checks them.

    Args:
        dataset: str. `"digits"`, `"cifar10"`, `"cifar100"` or
            `"imagenet2012"`.
        **options: any `TrainConfig` field; `None` means "the recipe's
            default". `milestones` and `rampup_epochs` scale with `epochs`
            when not given.

    Returns:
        A `TrainConfig`.

    Raises:
        ValueError: for an unknown data set or option, or a value out of
            range (the message names the option and the value).
        TypeError: for a value of the wrong type (e.g. a float `epochs`).

    Example:

    >>> config = resolve_config("cifar100", epochs=30)
    >>> config.milestones, config.rampup_epochs
    ((15, 23), 24)
    """
    if dataset not in RECIPES:
        raise ValueError(
            f"`dataset` must be one of {sorted(RECIPES)}. Received: dataset={dataset!r}"
        )
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"Unknown training option(s): {unknown}")
    recipe = RECIPES[dataset]
    opts = {k: v for k, v in options.items() if v is not None}

    def integer(name, default, minimum):
        return _utils.check_int(name, opts.get(name, default), minimum)

    def real(name, default, minimum, exclusive=False):
        return _utils.check_float(name, opts.get(name, default), minimum, exclusive)

    def optional(name):
        return None if name not in opts else _utils.check_int(name, opts[name], 1)

    epochs = integer("epochs", recipe.epochs, 1)
    if "milestones" in opts:
        milestones = [_utils.check_int("milestones", m, 1) for m in opts["milestones"]]
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(
                "`milestones` must be strictly increasing epochs. "
                f"Received: milestones={milestones}"
            )
    else:
        scaled = (scale_epochs(m, epochs, recipe.epochs) for m in recipe.milestones)
        milestones = sorted({m for m in scaled if 0 < m < epochs})
    rampup = scale_epochs(recipe.rampup_epochs, epochs, recipe.epochs)

    config = dict(
        dataset=dataset,
        backbone=opts.get("backbone", recipe.backbone),
        num_branches=integer("num_branches", recipe.num_branches, 2),
        aux=integer("aux", recipe.aux, 0),
        fusion=opts.get("fusion", "conv"),
        epochs=epochs,
        batch_size=integer("batch_size", recipe.batch_size, 1),
        lr=real("lr", recipe.lr, 0.0, exclusive=True),
        momentum=real("momentum", 0.9, 0.0),
        nesterov=bool(opts.get("nesterov", True)),
        milestones=tuple(milestones),
        lr_decay=real("lr_decay", 0.1, 0.0, exclusive=True),
        weight_decay=real("weight_decay", recipe.weight_decay, 0.0),
        temperature=real("temperature", 3.0, 0.0, exclusive=True),
        kd_weight=real("kd_weight", 1.5, 0.0),
        lambda_ta=real("lambda_ta", 2.0, 0.0),
        lambda_branch=real("lambda_branch", 4.0, 0.0),
        rampup_epochs=integer("rampup_epochs", rampup, 0),
        stop_teacher_gradient=bool(opts.get("stop_teacher_gradient", False)),
        augment=bool(opts.get("augment", True)),
        seed=integer("seed", 0, 0),
        data_dir=None if "data_dir" not in opts else str(opts["data_dir"]),
        train_limit=optional("train_limit"),
        test_limit=optional("test_limit"),
    )
    if config["momentum"] >= 1.0:
        raise ValueError(f"`momentum` must be < 1. Received: momentum={config['momentum']}")
    if config["nesterov"] and config["momentum"] == 0.0:
        raise ValueError("Nesterov momentum needs `momentum` > 0. Received: momentum=0.0")
    resolve_backbone(config["backbone"])  # Fails early on an unknown name.
    return TrainConfig(**config)


def steps_per_epoch(num_examples, batch_size, drop_remainder=False):
    """Number of batches per epoch (the last, partial one included)."""
    if drop_remainder:
        return max(1, num_examples // batch_size)
    return max(1, -(-num_examples // batch_size))


@keras.saving.register_keras_serializable(package="keras_ahbf")
class MultiStepLR(keras.optimizers.schedules.LearningRateSchedule):
    """Step decay at given epochs, as PyTorch's `MultiStepLR`.

    ```
    lr(step) = initial_learning_rate * gamma ** #{m in milestones : epoch >= m}
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
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        epoch = ops.floor(step / float(self.steps_per_epoch))
        lr = ops.convert_to_tensor(self.initial_learning_rate, "float32")
        for m in self.milestones:
            lr = ops.where(epoch >= float(m), lr * self.gamma, lr)
        return lr

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "milestones": list(self.milestones),
            "steps_per_epoch": self.steps_per_epoch,
            "gamma": self.gamma,
            "name": self.name,
        }


def resolve_backbone(name):
    """Returns the builder of a backbone name: `builder(**kwargs) -> OnlineKDModel`.

    Uses `keras_ahbf.models.get_builder` (every backbone of the package:
    `resnet8` ... `resnet110`, `resnet18_imagenet`, `vgg16`, `densenet40`,
    `mobilenetv2`, ...) when the package provides it, otherwise accepts
    `resnet<depth>` for the CIFAR ResNets.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
    """
    get_builder = getattr(ahbf_models, "get_builder", None)
    if get_builder is not None:
        try:
            return get_builder(name)
        except TypeError as e:
            raise ValueError(str(e)) from None
    match = re.fullmatch(r"resnet(\d+)", name.lower()) if isinstance(name, str) else None
    if not match:
        raise ValueError(
            "`backbone` must be 'resnet<depth>' (e.g. 'resnet32'). "
            f"Received: backbone={name!r}"
        )
    return functools.partial(ahbf_models.resnet_cifar, depth=int(match.group(1)))


def build_model(config, num_classes, input_shape):
    """Builds the `OnlineKDModel` of a configuration (uncompiled).

    Args:
        config: `TrainConfig`.
        num_classes: int. Number of classes.
        input_shape: tuple. `(height, width, channels)`.

    Returns:
        A built, uncompiled `OnlineKDModel`.

    Raises:
        ValueError: for an unknown backbone or invalid options.
    """
    builder = resolve_backbone(config.backbone)
    return builder(
        num_classes=num_classes,
        num_branches=config.num_branches,
        aux=config.aux,
        fusion=config.fusion,
        input_shape=tuple(input_shape),
        **config.kd_options(),
    )


def build_optimizer(config, steps):
    """SGD with Nesterov momentum and the `MultiStepLR` schedule.

    Weight decay is not set on the optimizer: it is the model's coupled L2
    (`OnlineKDModel(weight_decay=...)`), as PyTorch's SGD `weight_decay`.

    Args:
        config: `TrainConfig`.
        steps: int. Optimizer steps per epoch.

    Returns:
        A `keras.optimizers.SGD`.
    """
    schedule = MultiStepLR(
        config.lr, config.milestones, steps_per_epoch=steps, gamma=config.lr_decay
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


def add_coupled_l2(model, weight_decay):
    """Adds PyTorch-style coupled L2 weight decay to a plain Keras model.

    Sets a `keras.regularizers.L2(weight_decay / 2)` on every trainable
    variable (kernels, biases, BatchNorm scales and offsets), so the loss
    gains `0.5 * weight_decay * sum(w ** 2)` and the gradient
    `weight_decay * w`: what PyTorch's `SGD(weight_decay=...)` and
    `OnlineKDModel(weight_decay=...)` do. Call it before `compile`.

    Args:
        model: a built `keras.Model`.
        weight_decay: float (>= 0). 0 removes nothing and adds nothing.

    Returns:
        `model`.
    """
    weight_decay = _utils.check_float("weight_decay", weight_decay, 0.0)
    if weight_decay:
        regularizer = keras.regularizers.L2(weight_decay / 2.0)
        for variable in model.trainable_variables:
            variable.regularizer = regularizer
    return model


def build_baseline(config, num_classes, input_shape):
    """The target network alone, for a cross-entropy-only baseline.

    Builds the configuration's AHBF-OKD model (so, with the same seed, the
    same initial weights) and returns its `target_model()` (trunk + branch
    0, no other branch, no fusion) with the configuration's coupled L2
    weight decay (`add_coupled_l2`).

    Returns:
        A built, uncompiled functional `keras.Model` (images -> logits).
    """
    model = build_model(config, num_classes, input_shape)
    target = model.target_model(name=f"{config.backbone}_baseline")
    return add_coupled_l2(target, config.weight_decay)


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
