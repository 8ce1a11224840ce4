"""Model builders: backbones of the AHBF-OKD paper as `OnlineKDModel`s.

Every builder returns an uncompiled, built `OnlineKDModel`;
`model.target_model()` is the plain single network (the baseline;
`BaselineModel` trains it alone with the same coupled L2).
`build_backbone(name, **kwargs)` builds one by name (what the
`keras-ahbf` command uses) and `from_backbone` turns any functional Keras
network into an AHBF-OKD model.
"""

import functools

from keras_ahbf.models.baseline_model import BaselineModel
from keras_ahbf.models.custom_backbone import from_backbone
from keras_ahbf.models.densenet_cifar import densenet_cifar
from keras_ahbf.models.densenet_cifar import densenet_cifar_trunk
from keras_ahbf.models.mobilenet_v2_cifar import mobilenet_v2_cifar
from keras_ahbf.models.mobilenet_v2_cifar import mobilenet_v2_cifar_trunk
from keras_ahbf.models.resnet_cifar import SUPPORTED_DEPTHS as _CIFAR_RESNET_DEPTHS
from keras_ahbf.models.resnet_cifar import resnet_cifar
from keras_ahbf.models.resnet_cifar import resnet_cifar_trunk
from keras_ahbf.models.resnet_imagenet import IMAGENET_RESNETS as _IMAGENET_DEPTHS
from keras_ahbf.models.resnet_imagenet import resnet_imagenet
from keras_ahbf.models.resnet_imagenet import resnet_imagenet_trunk
from keras_ahbf.models.vgg_cifar import VGG_DEPTHS as _VGG_DEPTHS
from keras_ahbf.models.vgg_cifar import vgg_cifar
from keras_ahbf.models.vgg_cifar import vgg_cifar_trunk


def _registry():
    names = {}
    for depth in _CIFAR_RESNET_DEPTHS:
        names[f"resnet{depth}"] = (resnet_cifar, {"depth": depth})
    for depth in sorted(_IMAGENET_DEPTHS):
        names[f"resnet{depth}_imagenet"] = (resnet_imagenet, {"depth": depth})
    for depth in sorted(_VGG_DEPTHS):
        names[f"vgg{depth}"] = (vgg_cifar, {"depth": depth})
    for depth in (40, 100):
        names[f"densenet{depth}"] = (densenet_cifar, {"depth": depth, "growth_rate": 12})
    names["mobilenetv2"] = (mobilenet_v2_cifar, {})
    return names


BACKBONES = _registry()
"""Backbone name -> `(builder, fixed keyword arguments)`."""

# Spellings accepted besides the canonical names (after lower-casing and
# removing "-" and spaces).
_ALIASES = {
    "mobilenet_v2": "mobilenetv2",
    "mobilenetv2_cifar": "mobilenetv2",
    "densenet40_k12": "densenet40",
    "densenet100_k12": "densenet100",
    "densenet40k12": "densenet40",
    "densenet100k12": "densenet100",
}


def available_backbones():
    """The names `build_backbone` accepts, sorted."""
    return sorted(BACKBONES)


def _canonical(name):
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string. Received: name={name!r}")
    key = name.strip().lower().replace("-", "").replace(" ", "")
    return _ALIASES.get(key, key)


def get_builder(name: str):
    """Returns the builder of a backbone name, with its fixed arguments bound.

    Names (case-insensitive, `-` ignored): `resnet8` ... `resnet110` (CIFAR
    ResNets), `resnet18_imagenet`, `resnet34_imagenet`,
    `resnet50_imagenet`, `vgg16`, `vgg19`, `densenet40`, `densenet100`
    (growth rate 12) and `mobilenetv2`.

    Args:
        name: str. A backbone name (see `available_backbones()`).

    Returns:
        A callable `builder(**kwargs) -> OnlineKDModel` (a
        `functools.partial` of `resnet_cifar`, `resnet_imagenet`,
        `vgg_cifar`, `densenet_cifar` or `mobilenet_v2_cifar`).

    Raises:
        ValueError: on an unknown name; the message lists the valid ones.
    """
    key = _canonical(name)
    if key not in BACKBONES:
        hint = ""
        if key in ("resnet18", "resnet34", "resnet50"):
            hint = f" (the ImageNet ResNet is {key + '_imagenet'!r})"
        raise ValueError(
            f"Unknown backbone {name!r}{hint}. Valid names: "
            f"{', '.join(available_backbones())}. Received: name={name!r}"
        )
    builder, fixed = BACKBONES[key]
    return functools.partial(builder, **fixed)


def build_backbone(name: str, **kwargs):
    """Builds the AHBF-OKD model of a backbone name.

    `build_backbone("resnet32", num_classes=100)` is
    `resnet_cifar(depth=32, num_classes=100)`; see `get_builder` for the
    names. Keyword arguments go to the builder (`num_classes`,
    `num_branches`, `aux`, `fusion`, `input_shape`, distillation options,
    ...).

    Args:
        name: str. A backbone name (see `available_backbones()`).
        **kwargs: arguments of the builder.

    Returns:
        An uncompiled, built `OnlineKDModel`.

    Raises:
        ValueError: on an unknown name (listing the valid ones) or invalid
            builder arguments.
    """
    return get_builder(name)(**kwargs)


__all__ = [
    "BACKBONES",
    "BaselineModel",
    "available_backbones",
    "build_backbone",
    "densenet_cifar",
    "densenet_cifar_trunk",
    "from_backbone",
    "get_builder",
    "mobilenet_v2_cifar",
    "mobilenet_v2_cifar_trunk",
    "resnet_cifar",
    "resnet_cifar_trunk",
    "resnet_imagenet",
    "resnet_imagenet_trunk",
    "vgg_cifar",
    "vgg_cifar_trunk",
]
