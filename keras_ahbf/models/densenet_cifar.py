"""CIFAR DenseNets (DenseNet-40 / DenseNet-100, k = 12) with hierarchical branches."""

import math

import keras

from keras_ahbf.layers import _utils
from keras_ahbf.layers.blocks.dense_block import DenseBlock
from keras_ahbf.layers.fast_conv2d import FastConv2D
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.models._arguments import check_branch_arguments
from keras_ahbf.models._arguments import check_input_shape
from keras_ahbf.online_kd_model import OnlineKDModel


def densenet_layers(depth, bottleneck=True):
    """Layers per dense block `L` of a 3-block CIFAR DenseNet of `depth`.

    `depth = 6 L + 4` with bottlenecks (two convolutions per layer) and
    `3 L + 4` without.
    """
    _utils.check_int("depth", depth, 1)
    per_layer = 6 if bottleneck else 3
    if depth < per_layer + 4 or (depth - 4) % per_layer:
        form = "6L+4" if bottleneck else "3L+4"
        raise ValueError(
            f"With bottleneck={bottleneck}, `depth` must be of the form {form} "
            f"with L >= 1 (e.g. 40 or 100). Received: depth={depth}"
        )
    return (depth - 4) // per_layer


def densenet_cifar_trunk(
    depth=40,
    growth_rate=12,
    bottleneck=True,
    compression=0.5,
    num_init_features=None,
    dropout_rate=0.0,
    input_shape=(32, 32, 3),
    name="trunk",
):
    """The shared trunk of a CIFAR DenseNet: stem and dense blocks 1-2.

    ```
    Conv3x3(c0) -> DenseBlock(L) -> transition -> DenseBlock(L) -> transition
    transition(x) = AvgPool2x2(Conv1x1_{floor(compression * C)}(ReLU(BN(x))))
    ```

    Args: as `densenet_cifar`; `name`: str, name of the returned model.

    Returns:
        A functional `keras.Model` (images -> stride-4 feature map).
    """
    layers = densenet_layers(depth, bottleneck)
    _utils.check_int("growth_rate", growth_rate, 1)
    compression = _utils.check_float("compression", compression, 0.0, exclusive=True)
    if compression > 1.0:
        raise ValueError(
            f"`compression` must be in (0, 1]. Received: compression={compression}"
        )
    if num_init_features is None:
        num_init_features = 2 * growth_rate if bottleneck else 16
    _utils.check_int("num_init_features", num_init_features, 1)
    input_shape = check_input_shape(
        input_shape, 4, "A CIFAR DenseNet", "halves the image twice"
    )
    inputs = keras.Input(shape=input_shape, name="images")
    x = FastConv2D(
        num_init_features, 3, padding="same", use_bias=False,
        kernel_initializer=_utils.conv_initializer(), name="stem_conv",
    )(inputs)
    channels = num_init_features
    for i in (1, 2):
        block = DenseBlock(
            growth_rate, layers, bottleneck=bottleneck,
            dropout_rate=dropout_rate, name=f"block_{i}",
        )
        x = block(x)
        channels = block.output_channels(channels)
        channels = int(math.floor(channels * compression))
        x = _utils.batch_norm(f"transition_{i}_bn", None)(x)
        x = keras.layers.ReLU(name=f"transition_{i}_relu")(x)
        x = FastConv2D(
            channels, 1, use_bias=False,
            kernel_initializer=_utils.conv_initializer(),
            name=f"transition_{i}_conv",
        )(x)
        x = keras.layers.AveragePooling2D(2, name=f"transition_{i}_pool")(x)
    return keras.Model(inputs, x, name=name)


def densenet_cifar(
    depth: int = 40,
    growth_rate: int = 12,
    num_classes: int = 100,
    num_branches: int = 4,
    aux: int = 4,
    fusion="conv",
    bottleneck: bool = True,
    compression: float = 0.5,
    num_init_features=None,
    dropout_rate: float = 0.0,
    input_shape=(32, 32, 3),
    name=None,
    **kd_options,
):
    """Builds an AHBF-OKD CIFAR DenseNet as an uncompiled `OnlineKDModel`.

    Shared trunk: a 3x3 stem convolution and dense blocks 1 and 2, each
    followed by a transition (BN-ReLU-Conv1x1 with `compression`, 2x2
    average pooling). Per branch: dense block 3 with `L + b * aux` layers
    ending with BN-ReLU (`DenseBlock(final_bn_relu=True)`), global average
    pooling and a Dense classifier. Branch `b` outputs `C + (L + b * aux) *
    growth_rate` channels, so the fusion modules join maps of different
    widths (`Conv1x1: C_{m-1} + C_m -> C_m`).

    The defaults follow the paper's code (`densenetd40k12`,
    `densenetd100k12`): bottleneck layers (DenseNet-BC), compression 0.5,
    `2 * growth_rate` stem channels, `L = (depth - 4) / 6` (6 for
    DenseNet-40, 16 for DenseNet-100). Trunk + branch 0 is that DenseNet
    (`model.target_model()`).

    | depth | L | target params (100 classes) | AHBF model (B=4, aux=4) |
    | --- | --- | --- | --- |
    | 40 | 6 | 188,092 | 1,071,046 |
    | 100 | 16 | 800,032 | 3,464,716 |

    Args:
        depth: int. `6L + 4` (bottleneck) or `3L + 4` (no bottleneck).
        growth_rate: int. Channels added per layer `k`.
        num_classes: int. Number of classes (>= 1).
        num_branches: int. Number of branches `B` (>= 2).
        aux: int. Extra layers per branch level (>= 0).
        fusion: str or list. `"conv"`, `"se"`, `"cbam"`, `"nonlocal"` or a
            list of `AdaptiveFusion` layers.
        bottleneck: bool. Use 1x1 bottleneck convolutions (DenseNet-BC).
        compression: float. Channel reduction of the transitions, `(0, 1]`.
        num_init_features: int or None. Stem channels (default
            `2 * growth_rate` with bottlenecks, 16 without).
        dropout_rate: float. Dropout after each 3x3 convolution.
        input_shape: tuple. `(height, width, channels)`.
        name: str. Model name (default `"ahbf_densenet<depth>"`).
        **kd_options: `OnlineKDModel` options.

    Returns:
        An uncompiled, built `OnlineKDModel`.

    Raises:
        ValueError: on a `depth` of the wrong form, `num_branches < 2`,
            `aux < 0`, `num_classes < 1` or bad sizes.

    Example:

    ```python
    model = keras_ahbf.models.densenet_cifar(40, growth_rate=12, num_classes=100)
    ```
    """
    check_branch_arguments(num_branches, aux, num_classes)
    layers = densenet_layers(depth, bottleneck)
    trunk = densenet_cifar_trunk(
        depth, growth_rate, bottleneck, compression, num_init_features,
        dropout_rate, input_shape,
    )
    branches = HierarchicalBranches(
        DenseBlock(
            growth_rate, layers, bottleneck=bottleneck,
            dropout_rate=dropout_rate, final_bn_relu=True,
        ),
        num_branches=num_branches,
        aux=aux,
        num_classes=num_classes,
        depth_key="num_layers",
        name="branches",
    )
    return OnlineKDModel(
        trunk, branches, fusion, name=name or f"ahbf_densenet{depth}", **kd_options
    )
