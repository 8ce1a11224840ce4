"""The shared trunk and identical branches of the shared-trunk methods (ONE, CL-ILR, OKDDip)."""

__all__ = ["shared_trunk_and_branches"]


def shared_trunk_and_branches(backbone: str, num_classes: int, num_branches: int,
                              input_shape=(32, 32, 3), builder=None):
    """A backbone's shared low-level layers and `num_branches` identical high-level branches.

    The AHBF-OKD model of the backbone with `aux=0` holds exactly this: a
    trunk (the backbone up to its last stage) and `num_branches` copies of
    the last stage, each with its own classifier, every branch the depth of
    the target network (branch 0 on the trunk is the plain backbone). The
    methods that share low-level layers between their networks (ONE, CL-ILR,
    OKDDip) take these two parts and add their own gate or aggregator.

    Args:
        backbone: str. A name of `keras_ahbf.models.available_backbones()`.
        num_classes: int. Number of classes of every branch.
        num_branches: int. Number of branches (>= 1).
        input_shape: tuple. `(height, width, channels)`.
        builder: callable or None. A builder of `keras_ahbf.models`
            (`resnet_cifar`, ...) with its fixed arguments bound; default
            `keras_ahbf.models.get_builder(backbone)`.

    Returns:
        `(trunk, branches)`: a built functional `keras.Model` (images -> the
        shared feature map) and a built `keras_ahbf.layers.HierarchicalBranches`
        (`branches(x)` -> `(feature maps, logits)`, lists of `num_branches`;
        `branches.call_branch(b, x)` runs branch `b` alone). Every call gives
        new layers and new initial weights.

    Raises:
        ValueError: for an unknown backbone or invalid arguments.

    Example:

    >>> trunk, branches = shared_trunk_and_branches("resnet8", 10, 3, (8, 8, 3))
    >>> branches.num_branches, [s.depth for s in branches.stages]
    (3, [1, 1, 1])
    """
    from keras_ahbf import models  # `models` imports OnlineKDModel, which imports this package.

    builder = builder or models.get_builder(backbone)
    model = builder(num_classes=num_classes, num_branches=num_branches, aux=0,
                    input_shape=tuple(input_shape))
    return model.trunk, model.branches
