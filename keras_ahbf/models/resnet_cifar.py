"""CIFAR ResNets (ResNet-8 ... ResNet-110) with hierarchical branches."""

import keras

from keras_ahbf.layers import _utils
from keras_ahbf.layers.fast_conv2d import FastConv2D
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.stages.residual_stage import ResidualStage
from keras_ahbf.layers.stages.residual_stage import check_block
from keras_ahbf.models._arguments import check_branch_arguments
from keras_ahbf.models._arguments import check_input_shape
from keras_ahbf.online_kd_model import OnlineKDModel

SUPPORTED_DEPTHS = (8, 14, 20, 32, 44, 56, 110)


def resnet_cifar_blocks(depth, block=None):
    """Returns `(block, blocks_per_stage)` for a CIFAR ResNet depth.

    Depths `6n + 2` use `n` `BasicBlock`s per stage; 110 uses 12
    `Bottleneck`s per stage ([12, 12, 12], as in the paper's code), unless
    `block` is given: then `n = (depth - 2) / 6` for `"basic"` and
    `(depth - 2) / 9` for `"bottleneck"`.
    """
    _utils.check_int("depth", depth, 1)
    if block is None:
        if depth not in SUPPORTED_DEPTHS:
            raise ValueError(
                f"`depth` must be one of {SUPPORTED_DEPTHS} (or pass `block=` "
                f"for other 6n+2 / 9n+2 depths). Received: depth={depth}"
            )
        block = "bottleneck" if depth == 110 else "basic"
        if block == "bottleneck":
            return block, 12
    check_block(block)
    layers_per_block = 2 if block == "basic" else 3
    if depth < 2 or (depth - 2) % (3 * layers_per_block) != 0:
        form = "6n+2" if block == "basic" else "9n+2"
        raise ValueError(
            f"With block={block!r}, `depth` must be of the form {form} with "
            f"n >= 1. Received: depth={depth}"
        )
    return block, (depth - 2) // (3 * layers_per_block)


def resnet_cifar_trunk(depth=32, block=None, input_shape=(32, 32, 3), name="trunk"):
    """The shared trunk of a CIFAR ResNet: stem, stage 1 and stage 2.

    ```
    conv3x3(16) + BN + ReLU -> stage1 (16 * e channels) -> stage2 (32 * e, stride 2)
    ```

    Args:
        depth: int. ResNet depth (see `resnet_cifar`).
        block: str or None. `"basic"`, `"bottleneck"` or `None` (by depth).
        input_shape: tuple. `(height, width, channels)`.
        name: str. Name of the returned model.

    Returns:
        A functional `keras.Model`.
    """
    block, n = resnet_cifar_blocks(depth, block)
    input_shape = check_input_shape(input_shape)
    inputs = keras.Input(shape=input_shape, name="images")
    x = FastConv2D(
        16, 3, padding="same", use_bias=False,
        kernel_initializer=_utils.conv_initializer(), name="stem_conv",
    )(inputs)
    x = _utils.batch_norm("stem_bn", None)(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = ResidualStage(16, n, strides=1, block=block, name="stage_1")(x)
    x = ResidualStage(32, n, strides=2, block=block, name="stage_2")(x)
    return keras.Model(inputs, x, name=name)


def resnet_cifar(
    depth: int = 32,
    num_classes: int = 100,
    num_branches: int = 4,
    aux: int = 4,
    fusion="conv",
    block=None,
    input_shape=(32, 32, 3),
    name=None,
    **kd_options,
):
    """Builds an AHBF-OKD CIFAR ResNet as an uncompiled `OnlineKDModel`.

    The trunk (stem, stages 1 and 2) is shared; each branch `b` has its own
    stage 3 (64 * expansion channels, stride 2) with `n + b * aux` blocks,
    global average pooling and a Dense classifier. Trunk + branch 0 is
    exactly the plain ResNet-`depth`: `model.target_model()` returns it.

    | depth | block | blocks per stage `n` |
    | --- | --- | --- |
    | 8, 14, 20, 32, 44, 56 | `BasicBlock` | `(depth - 2) / 6` |
    | 110 | `Bottleneck` | 12 (as the paper's code) |

    With 100 classes, 4 branches and `aux=4`, ResNet-32 has 3,354,418
    trainable parameters (472,756 in the target network).

    Args:
        depth: int. One of 8, 14, 20, 32, 44, 56, 110 (other `6n+2` /
            `9n+2` depths with an explicit `block`).
        num_classes: int. Number of classes (>= 1).
        num_branches: int. Number of branches `B` (>= 2).
        aux: int. Extra blocks per branch level (>= 0).
        fusion: str or list. Fusion modules (see `OnlineKDModel`).
        block: str or None. `"basic"` or `"bottleneck"`; `None` picks by
            depth as in the table.
        input_shape: tuple. `(height, width, channels)`, channels-last.
        name: str. Model name (default `"ahbf_resnet<depth>"`).
        **kd_options: `OnlineKDModel` options: `temperature`, `kd_weight`,
            `lambda_ta`, `lambda_branch`, `rampup_epochs`,
            `stop_teacher_gradient`, `weight_decay`.

    Returns:
        An uncompiled, built `OnlineKDModel`.

    Raises:
        ValueError: on an unsupported `depth`, `num_branches < 2`,
            `aux < 0`, `num_classes < 1`, channels-first `input_shape` or
            invalid distillation options.

    Example:

    ```python
    model = keras_ahbf.models.resnet_cifar(32, num_classes=100, weight_decay=5e-4)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    ```
    """
    check_branch_arguments(num_branches, aux, num_classes)
    block, n = resnet_cifar_blocks(depth, block)
    trunk = resnet_cifar_trunk(depth, block, input_shape)
    branches = HierarchicalBranches(
        ResidualStage(64, n, strides=2, block=block),
        num_branches=num_branches,
        aux=aux,
        num_classes=num_classes,
        name="branches",
    )
    return OnlineKDModel(
        trunk, branches, fusion, name=name or f"ahbf_resnet{depth}", **kd_options
    )
