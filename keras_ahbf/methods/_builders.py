"""What the methods' builders (`<method>_resnet_cifar`, `<method>_from_backbone`) share."""

import functools

from keras_ahbf.layers import _utils
from keras_ahbf.methods.shared_trunk import shared_trunk_and_branches


def cifar_resnet(depth):
    """`("resnet<depth>", builder)`: the CIFAR ResNet builder with its `depth` bound.

    Raises:
        ValueError: on a `depth` that is not a positive int (an unsupported
            one is refused when the builder runs).
    """
    from keras_ahbf import models  # `models` imports OnlineKDModel, which imports this package.

    _utils.check_int("depth", depth, 1)
    return f"resnet{depth}", functools.partial(models.resnet_cifar, depth=depth)


def shared_trunk_model(cls, backbone, builder, num_classes, num_peers, input_shape, name,
                       options, *, minimum=2, prefix):
    """A `SharedTrunkModel` subclass `cls` on `num_peers` branches of a backbone.

    `num_peers` is checked (>= `minimum`); the model is named
    `name or "<prefix>_<backbone>"` and gets `options`.
    """
    num_peers = _utils.check_int("num_peers", num_peers, minimum)
    trunk, branches = shared_trunk_and_branches(
        backbone, num_classes, num_peers, input_shape, builder=builder
    )
    return cls(trunk, branches, name=name or f"{prefix}_{backbone}", **options)
