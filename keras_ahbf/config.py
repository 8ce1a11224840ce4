"""The training configuration: the paper's defaults, data-set recipes, presets.

This module is the one source of the published AHBF-OKD defaults: the model
(`OnlineKDModel`), the loss (`keras_ahbf.losses.ahbf_loss`), the command
line and the training recipes all read them from here. It imports nothing
heavy (no Keras, no backend), so the command line can resolve and check a
whole configuration before anything is built.

The paper's CIFAR recipe is the default for CIFAR-10/100:

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

Presets (`recipe=`) are named sets of options applied on top of the data
set's recipe; options given explicitly still win. `"paper"` is the
published method; see `PRESETS` and `docs/training.md` for the others.
"""

import dataclasses
import math

from keras_ahbf.utils.validation import check_bool
from keras_ahbf.utils.validation import check_choice
from keras_ahbf.utils.validation import check_float
from keras_ahbf.utils.validation import check_int


@dataclasses.dataclass(frozen=True)
class MethodDefaults:
    """The published AHBF-OKD loss options (`docs/method.md`, section 3)."""

    temperature: float = 3.0
    kd_weight: float = 1.5
    lambda_ta: float = 2.0
    lambda_branch: float = 4.0
    stop_teacher_gradient: bool = False
    rampup_shape: str = "exp"
    aux_ce_weight: float = 1.0
    fused_ce_weight: float = 1.0


PAPER = MethodDefaults()


@dataclasses.dataclass(frozen=True)
class DMLDefaults:
    """The published DML options (Zhang et al., CVPR 2018; `docs/methods.md`).

    Temperature 1 (plain softmax), every KL term weighted 1, the other
    peers' probabilities detached (each peer is updated from its own loss
    only), no ramp-up, two peers.
    """

    temperature: float = 1.0
    kd_weight: float = 1.0
    stop_teacher_gradient: bool = True
    rampup_epochs: int = 0
    num_peers: int = 2


DML = DMLDefaults()


@dataclasses.dataclass(frozen=True)
class ONEDefaults:
    """The ONE options of the authors' CIFAR code (Lan et al., NeurIPS 2018).

    `cifar_one.py` / `scripts/ONE_ResNet32.sh` of
    github.com/Lan1991Xu/ONE_NeurIPS2018: 3 branches on shared low-level
    layers, temperature 3, KL weight 1, the gated ensemble detached, and the
    sigmoid ramp-up `exp(-5 (1 - t)^2)` over 80 of the 300 epochs
    (`--consistency_rampup 80`; the paper mentions no ramp-up).
    """

    temperature: float = 3.0
    kd_weight: float = 1.0
    stop_teacher_gradient: bool = True
    rampup_epochs: int = 80
    num_peers: int = 3


ONE = ONEDefaults()


@dataclasses.dataclass(frozen=True)
class CLILRDefaults:
    """The CL-ILR options (Song and Chai, NeurIPS 2018; no official code).

    As the paper's `beta = 0.5`, `T = 2` and the MCL-OKD reimplementation
    (github.com/winycg/MCL-OKD, `main_cifar_cl_ilr.py`): 4 heads, each
    head's loss `0.5 * CE + 0.5 * T^2 KL(target || head)` (`ce_weight` and
    `kd_weight` 0.5), the target the softened mean of the other heads'
    logits, detached, no ramp-up, the gradient into the shared layers
    rescaled by 1/4 (`ilr`).
    """

    temperature: float = 2.0
    kd_weight: float = 0.5
    stop_teacher_gradient: bool = True
    rampup_epochs: int = 0
    num_peers: int = 4
    ce_weight: float = 0.5
    ilr: bool = True


CL_ILR = CLILRDefaults()


@dataclasses.dataclass(frozen=True)
class OKDDipDefaults:
    """The OKDDip options of the authors' CIFAR code (Chen et al., AAAI 2020).

    `train_GL.py` of github.com/DefangChen/OKDDip-AAAI2020: 4 branches on
    shared low-level layers (3 auxiliary peers and the group leader),
    temperature 3, distillation weight 1 (`alpha`), nothing detached (the
    attention projections learn through the distillation terms), the
    sigmoid ramp-up `exp(-5 (1 - t)^2)` over 80 epochs (`--length 80`),
    query/key projections of `channels // 8` units (`factor=8`).
    """

    temperature: float = 3.0
    kd_weight: float = 1.0
    stop_teacher_gradient: bool = False
    rampup_epochs: int = 80
    num_peers: int = 4
    attention_reduction: int = 8


OKDDIP = OKDDipDefaults()

# `TrainConfig.kdcl_ensemble` values: how KDCL builds its teacher's logits.
KDCL_ENSEMBLES = ("minlogit", "naive", "best")


@dataclasses.dataclass(frozen=True)
class KDCLDefaults:
    """The KDCL options (Guo et al., CVPR 2020; no official code).

    Two peers, the MinLogit ensemble teacher, detached, distillation weight
    1, no ramp-up, temperature 2, and an independent random flip and
    4-pixel translation of every peer's input but peer 0's (see
    `keras_ahbf.methods.kdcl`; docs/methods.md says which of these could be
    checked against the paper).
    """

    temperature: float = 2.0
    kd_weight: float = 1.0
    stop_teacher_gradient: bool = True
    rampup_epochs: int = 0
    num_peers: int = 2
    ensemble: str = "minlogit"
    peer_augmentation: bool = True
    augmentation_padding: int = 4


KDCL = KDCLDefaults()


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One training method of `TrainConfig.method` (the `--method` option).

    The command line, `keras_ahbf.training.build_model`, the run summary
    and the plots read a method's name, defaults and builder from here, so
    adding a method is one entry of `METHOD_SPECS` (and its module).

    Attributes:
        name: str. The `--method` value.
        title: str. What the method is, for messages ("deep mutual
            learning (DML)").
        short: str. Its short name ("DML").
        builder: str. `"module:function"`, imported only when a model is
            built: `function(backbone, num_classes, input_shape=..., **kw)`
            with `kw` the shared options of `PEER_MODEL_OPTIONS` and the
            method's own `options`.
        defaults: the method's published options (temperature, kd_weight,
            stop_teacher_gradient, rampup_epochs of the 300-epoch CIFAR
            recipe, scaled with `epochs`, and num_peers).
        options: tuple of str. The `TrainConfig` fields the method reads
            beyond the shared ones; refused with every other method.
        network_word: str. What its networks are called in messages
            ("peers", "branches").
    """

    name: str
    title: str
    short: str
    builder: str
    defaults: object
    options: tuple = ("num_peers",)
    network_word: str = "peers"


# The shared options every peer-based method's builder takes.
PEER_MODEL_OPTIONS = (
    "temperature",
    "kd_weight",
    "stop_teacher_gradient",
    "rampup_epochs",
    "rampup_shape",
    "weight_decay",
)

# Every method but AHBF-OKD (whose options are `KD_OPTIONS`), by `--method` name.
METHOD_SPECS = {
    "dml": MethodSpec(
        name="dml",
        title="deep mutual learning (DML)",
        short="DML",
        builder="keras_ahbf.methods.dml:dml_from_backbone",
        defaults=DML,
    ),
    "one": MethodSpec(
        name="one",
        title="on-the-fly native ensemble (ONE)",
        short="ONE",
        builder="keras_ahbf.methods.one:one_from_backbone",
        defaults=ONE,
        options=("num_peers",),
        network_word="branches",
    ),
    "cl-ilr": MethodSpec(
        name="cl-ilr",
        title="collaborative learning with ILR sharing (CL-ILR)",
        short="CL-ILR",
        builder="keras_ahbf.methods.cl_ilr:cl_ilr_from_backbone",
        defaults=CL_ILR,
        options=("num_peers",),
        network_word="heads",
    ),
    "okddip": MethodSpec(
        name="okddip",
        title="online knowledge distillation with diverse peers (OKDDip)",
        short="OKDDip",
        builder="keras_ahbf.methods.okddip:okddip_from_backbone",
        defaults=OKDDIP,
        options=("num_peers",),
        network_word="branches",
    ),
    "kdcl": MethodSpec(
        name="kdcl",
        title="knowledge distillation via collaborative learning (KDCL)",
        short="KDCL",
        builder="keras_ahbf.methods.kdcl:kdcl_from_backbone",
        defaults=KDCL,
        options=("num_peers", "kdcl_ensemble"),
    ),
}

# The training methods of `TrainConfig.method` (the `--method` option).
METHODS = ("ahbf", *METHOD_SPECS)
# Options only AHBF-OKD uses: refused when given with another method.
AHBF_ONLY_OPTIONS = (
    "num_branches",
    "aux",
    "fusion",
    "lambda_ta",
    "lambda_branch",
    "aux_ce_weight",
    "fused_ce_weight",
    "baseline",
)
# Options only the peer-based methods use: refused with a method not reading them.
PEER_OPTIONS = tuple(sorted({o for spec in METHOD_SPECS.values() for o in spec.options}))

# Ramp-up shapes of the distillation weight w(epoch), t = min(epoch, R) / R:
# "exp" is the paper's 0.5 * exp(-5 (1 - t)^2); "linear" is 0.5 * t.
RAMPUP_SHAPES = ("exp", "linear")

# `fusion` values: the plain fusion of the paper, or an attention variant of
# `keras_ahbf.layers.AdaptiveFusion` (its `ATTENTION_LAYERS`).
FUSIONS = ("conv", "se", "cbam", "nonlocal")
# Largest `seed`: `keras.utils.set_random_seed` seeds NumPy, which takes 32 bits.
MAX_SEED = 2**32 - 1


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


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named set of training options applied over a data set's recipe.

    Attributes:
        description: str. One line for `--help` and `config.json`.
        options: dict. `TrainConfig` field values; an explicit option given
            to `resolve_config` (or on the command line) overrides them.
    """

    description: str
    options: dict


PRESETS = {
    "paper": Preset("the published method and recipe (default)", {}),
    "short": Preset(
        "short CPU budgets: 2 branches, aux 2, the rest the paper's (the best "
        "structure of the search in docs/results.md)",
        {"num_branches": 2, "aux": 2},
    ),
}
"""Named presets. `"short"` is the best recipe of the short-budget search on
CIFAR-100 (ResNet-8, 10,000 images, 10 epochs, chosen on a validation split;
docs/results.md, "A short-budget recipe"): fewer, shallower branches than the
paper's 4 branches with aux 4, whose deep branches learn too slowly in a short
run to teach the target. Every other lever of that search (ramp-up length,
stopped teacher gradients, the distillation weight, temperature, lambdas,
cross-entropy weights, zero-initialised residuals, warm-up) did not help."""

# `TrainConfig` fields passed to `OnlineKDModel` (through the builders).
KD_OPTIONS = (
    "temperature",
    "kd_weight",
    "lambda_ta",
    "lambda_branch",
    "rampup_epochs",
    "rampup_shape",
    "stop_teacher_gradient",
    "aux_ce_weight",
    "fused_ce_weight",
    "weight_decay",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run, fully resolved.

    Build it with `resolve_config`, which fills the data set's recipe and
    the preset and checks the values. `to_dict()` / `from_dict()`
    round-trip through JSON (the `keras-ahbf` command stores it as
    `config.json`). Fields added after the first release have defaults, so
    older `config.json` files still load.
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
    recipe: str = "paper"
    baseline: bool = False
    rampup_shape: str = PAPER.rampup_shape
    aux_ce_weight: float = PAPER.aux_ce_weight
    fused_ce_weight: float = PAPER.fused_ce_weight
    zero_init_residual: bool = False
    warmup_epochs: int = 0
    validation_split: float = 0.0
    method: str = "ahbf"
    num_peers: int = DML.num_peers
    kdcl_ensemble: str = KDCL.ensemble

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

    def method_options(self):
        """The keyword arguments of the method's builder (`METHOD_SPECS`), not AHBF-OKD's."""
        spec = METHOD_SPECS[self.method]
        return {name: getattr(self, name) for name in (*PEER_MODEL_OPTIONS, *spec.options)}


def scale_epochs(value, epochs, base_epochs):
    """Scales an epoch count from a `base_epochs` recipe to `epochs`.

    Rounds half up: `floor(value * epochs / base_epochs + 0.5)`, so
    milestone 225 of 300 epochs becomes 23 of 30. Used for the milestones
    and the ramp-up.
    """
    return int(math.floor(value * epochs / base_epochs + 0.5))


def _milestones(opts, epochs, recipe):
    if "milestones" in opts:
        milestones = [check_int("milestones", m, 1) for m in opts["milestones"]]
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(
                "`milestones` must be strictly increasing epochs. "
                f"Received: milestones={milestones}"
            )
        return tuple(milestones)
    scaled = (scale_epochs(m, epochs, recipe.epochs) for m in recipe.milestones)
    return tuple(sorted({m for m in scaled if 0 < m < epochs}))


def resolve_config(dataset, **options):
    """Fills a data set's recipe and a preset into the given options; checks them.

    Args:
        dataset: str. `"digits"`, `"cifar10"`, `"cifar100"` or
            `"imagenet2012"`.
        **options: any `TrainConfig` field; `None` means "the default".
            `recipe` names a preset of `PRESETS` (default `"paper"`), whose
            options apply where none is given. `milestones` and
            `rampup_epochs` scale with `epochs` when neither the options nor
            the preset give them. `method` (`METHODS`, default `"ahbf"`)
            picks the training method; its published defaults fill the
            distillation options (`METHOD_SPECS[method].defaults`, e.g.
            `DML`: temperature 1, weight 1, detached peers, no ramp-up). The
            options of AHBF-OKD alone (`AHBF_ONLY_OPTIONS`) are refused with
            another method, and each method's own options (`num_peers`, ...)
            with a method that does not read them.

    Returns:
        A `TrainConfig`.

    Raises:
        ValueError: for an unknown data set, preset or option, or a value out
            of range, NaN or infinite (the message names the option and the
            value).
        TypeError: for a value of the wrong type (e.g. a float `epochs`).

    Example:

    >>> config = resolve_config("cifar100", epochs=30)
    >>> config.milestones, config.rampup_epochs
    ((15, 23), 24)
    >>> resolve_config("cifar100", epochs=30, recipe="paper").recipe
    'paper'
    """
    if dataset not in RECIPES:
        raise ValueError(
            f"`dataset` must be one of {sorted(RECIPES)}. Received: dataset={dataset!r}"
        )
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"Unknown training option(s): {unknown}")
    method = check_choice("method", options.get("method") or "ahbf", METHODS)
    explicit = {k for k, v in options.items() if v is not None and v is not False}
    spec = METHOD_SPECS.get(method)
    if spec is None:
        foreign = PEER_OPTIONS
    else:
        foreign = AHBF_ONLY_OPTIONS + tuple(o for o in PEER_OPTIONS if o not in spec.options)
    for name in foreign:
        if name in explicit:
            raise ValueError(
                f"`{name}` is not an option of method={method!r} "
                f"(see docs/methods.md). Received: {name}={options[name]!r}"
            )
    defaults = PAPER if spec is None else spec.defaults
    recipe_name = options.get("recipe") or "paper"
    check_choice("recipe", recipe_name, PRESETS)
    opts = dict(PRESETS[recipe_name].options)
    opts.update({k: v for k, v in options.items() if v is not None})
    opts["recipe"] = recipe_name
    recipe = RECIPES[dataset]

    def integer(name, default, minimum):
        return check_int(name, opts.get(name, default), minimum)

    def real(name, default, minimum, exclusive=False, maximum=None, exclusive_maximum=False):
        return check_float(
            name, opts.get(name, default), minimum, exclusive, maximum, exclusive_maximum
        )

    def flag(name, default):
        return check_bool(name, opts.get(name, default))

    def optional(name):
        return None if name not in opts else check_int(name, opts[name], 1)

    epochs = integer("epochs", recipe.epochs, 1)
    rampup = scale_epochs(recipe.rampup_epochs, epochs, recipe.epochs)
    if spec is not None:  # The method's ramp-up, of a 300-epoch CIFAR recipe.
        rampup = scale_epochs(spec.defaults.rampup_epochs, epochs, RECIPES["cifar10"].epochs)
    config = dict(
        dataset=dataset,
        backbone=opts.get("backbone", recipe.backbone),
        num_branches=integer("num_branches", recipe.num_branches, 2),
        aux=integer("aux", recipe.aux, 0),
        fusion=check_choice("fusion", opts.get("fusion", "conv"), FUSIONS),
        epochs=epochs,
        batch_size=integer("batch_size", recipe.batch_size, 1),
        lr=real("lr", recipe.lr, 0.0, exclusive=True),
        momentum=real("momentum", 0.9, 0.0, maximum=1.0, exclusive_maximum=True),
        nesterov=flag("nesterov", True),
        milestones=_milestones(opts, epochs, recipe),
        lr_decay=real("lr_decay", 0.1, 0.0, exclusive=True),
        weight_decay=real("weight_decay", recipe.weight_decay, 0.0),
        temperature=real("temperature", defaults.temperature, 0.0, exclusive=True),
        kd_weight=real("kd_weight", defaults.kd_weight, 0.0),
        lambda_ta=real("lambda_ta", PAPER.lambda_ta, 0.0),
        lambda_branch=real("lambda_branch", PAPER.lambda_branch, 0.0),
        rampup_epochs=integer("rampup_epochs", rampup, 0),
        stop_teacher_gradient=flag("stop_teacher_gradient", defaults.stop_teacher_gradient),
        augment=flag("augment", True),
        seed=check_int("seed", opts.get("seed", 0), 0, MAX_SEED),
        data_dir=None if "data_dir" not in opts else str(opts["data_dir"]),
        train_limit=optional("train_limit"),
        test_limit=optional("test_limit"),
        recipe=recipe_name,
        baseline=flag("baseline", False),
        rampup_shape=check_choice(
            "rampup_shape", opts.get("rampup_shape", PAPER.rampup_shape), RAMPUP_SHAPES
        ),
        aux_ce_weight=real("aux_ce_weight", PAPER.aux_ce_weight, 0.0),
        fused_ce_weight=real("fused_ce_weight", PAPER.fused_ce_weight, 0.0),
        zero_init_residual=flag("zero_init_residual", False),
        warmup_epochs=integer("warmup_epochs", 0, 0),
        validation_split=real("validation_split", 0.0, 0.0, maximum=1.0, exclusive_maximum=True),
        method=method,
        num_peers=integer("num_peers", getattr(defaults, "num_peers", DML.num_peers), 2),
        kdcl_ensemble=check_choice(
            "kdcl_ensemble", opts.get("kdcl_ensemble", KDCL.ensemble), KDCL_ENSEMBLES
        ),
    )
    if method == "okddip" and config["num_peers"] < 3:
        raise ValueError(
            "OKDDip needs `num_peers` >= 3 (the group leader and at least 2 "
            f"auxiliary peers). Received: num_peers={config['num_peers']}"
        )
    if config["nesterov"] and config["momentum"] == 0.0:
        raise ValueError("Nesterov momentum needs `momentum` > 0. Received: momentum=0.0")
    if config["warmup_epochs"] > epochs:
        raise ValueError(
            "`warmup_epochs` must be <= `epochs`. Received: "
            f"warmup_epochs={config['warmup_epochs']} with epochs={epochs}"
        )
    if not isinstance(config["backbone"], str) or not config["backbone"]:
        raise ValueError(f"`backbone` must be a name. Received: backbone={config['backbone']!r}")
    return TrainConfig(**config)
