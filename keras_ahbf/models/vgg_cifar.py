"""CIFAR VGG-16 / VGG-19 with hierarchical branches."""

import keras

from keras_ahbf.layers._arguments import check_rate
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.stages.vgg_stage import VGGStage
from keras_ahbf.models._arguments import check_branch_arguments
from keras_ahbf.models._arguments import check_input_shape
from keras_ahbf.online_kd_model import OnlineKDModel

# depth -> convolutions in each of the 256- and 512-channel stages.
VGG_DEPTHS = {16: 3, 19: 4}


def _convs_per_stage(depth):
    if isinstance(depth, bool) or depth not in VGG_DEPTHS:
        raise ValueError(
            f"`depth` must be one of {sorted(VGG_DEPTHS)}. Received: depth={depth!r}"
        )
    return VGG_DEPTHS[depth]


def vgg_cifar_trunk(depth=16, input_shape=(32, 32, 3), name="trunk"):
    """The shared trunk of a CIFAR VGG: its first four conv stages.

    ```
    [64 x2, pool] -> [128 x2, pool] -> [256 x n, pool] -> [512 x n, pool]    (n = 3 / 4)
    ```

    Args:
        depth: int. 16 or 19.
        input_shape: tuple. `(height, width, channels)`, at least 32x32.
        name: str. Name of the returned model.

    Returns:
        A functional `keras.Model` (images -> stride-16, 512-channel map).
    """
    n = _convs_per_stage(depth)
    input_shape = check_input_shape(
        input_shape, 32, "A CIFAR VGG", "halves the image five times"
    )
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for i, (filters, convs) in enumerate(((64, 2), (128, 2), (256, n), (512, n)), 1):
        x = VGGStage(filters, convs, name=f"stage_{i}")(x)
    return keras.Model(inputs, x, name=name)


def vgg_cifar(
    depth: int = 16,
    num_classes: int = 100,
    num_branches: int = 4,
    aux: int = 4,
    fusion="conv",
    dropout: float = 0.5,
    input_shape=(32, 32, 3),
    name=None,
    **kd_options,
):
    """Builds an AHBF-OKD CIFAR VGG as an uncompiled `OnlineKDModel`.

    Shared trunk: the first four conv stages (64, 128, 256, 512 channels,
    each ending with a 2x2 max-pool). Per branch: the last 512-channel
    stage with `n + b * aux` Conv-BN-ReLU units (`n` = 3 for VGG-16, 4 for
    VGG-19) and max-pool, global average pooling (of a 1x1 map at 32x32
    input) and the published classifier `Dense(512) - ReLU - Dropout -
    Dense(512) - ReLU - Dropout - Dense(num_classes)`. Trunk + branch 0 is
    the CIFAR VGG of the paper's code (`model.target_model()`).

    With 100 classes, 4 branches and `aux=4`, VGG-16 has 96,517,602
    trainable parameters (15,299,748 in the target network).

    Args:
        depth: int. 16 or 19.
        num_classes: int. Number of classes (>= 1).
        num_branches: int. Number of branches `B` (>= 2).
        aux: int. Extra convolutions per branch level (>= 0).
        fusion: str or list. `"conv"`, `"se"`, `"cbam"`, `"nonlocal"` or a
            list of `AdaptiveFusion` layers.
        dropout: float. Dropout rate of the classifier (the published AHBF
            code uses 0.5).
        input_shape: tuple. `(height, width, channels)`, at least 32x32.
        name: str. Model name (default `"ahbf_vgg<depth>"`).
        **kd_options: `OnlineKDModel` options.

    Returns:
        An uncompiled, built `OnlineKDModel`.

    Raises:
        ValueError: on an unsupported `depth`, `num_branches < 2`,
            `aux < 0`, `num_classes < 1`, a bad `dropout` or `input_shape`.

    Example:

    ```python
    model = keras_ahbf.models.vgg_cifar(16, num_classes=100, weight_decay=5e-4)
    ```
    """
    check_branch_arguments(num_branches, aux, num_classes)
    n = _convs_per_stage(depth)
    dropout = check_rate("dropout", dropout)
    trunk = vgg_cifar_trunk(depth, input_shape)
    branches = HierarchicalBranches(
        VGGStage(512, n),
        num_branches=num_branches,
        aux=aux,
        num_classes=num_classes,
        depth_key="num_convs",
        head_hidden_units=[512, 512],
        head_dropout=dropout,
        name="branches",
    )
    return OnlineKDModel(
        trunk, branches, fusion, name=name or f"ahbf_vgg{depth}", **kd_options
    )
