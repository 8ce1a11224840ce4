"""ImageNet ResNets (ResNet-18 / 34 / 50) with hierarchical branches."""

import keras

from keras_ahbf.layers import _utils
from keras_ahbf.layers.fast_conv2d import FastConv2D
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.multi_stage.residual_stages import ResidualStages
from keras_ahbf.layers.stages.residual_stage import ResidualStage
from keras_ahbf.models._arguments import check_branch_arguments
from keras_ahbf.models._arguments import check_input_shape
from keras_ahbf.online_kd_model import OnlineKDModel

# depth -> (block, blocks per stage 1..4), as torchvision.
IMAGENET_RESNETS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}


def _imagenet_config(depth):
    if isinstance(depth, bool) or depth not in IMAGENET_RESNETS:
        raise ValueError(
            f"`depth` must be one of {sorted(IMAGENET_RESNETS)}. "
            f"Received: depth={depth!r}"
        )
    return IMAGENET_RESNETS[depth]


def resnet_imagenet_trunk(depth=18, input_shape=(224, 224, 3), name="trunk"):
    """The shared trunk of an ImageNet ResNet: stem, stage 1 and stage 2.

    ```
    Conv7x7/2(64) + BN + ReLU -> MaxPool3x3/2 -> stage1 (64 * e ch) -> stage2 (128 * e ch, stride 2)
    ```

    The stem pads as PyTorch does (3 pixels before the 7x7 convolution, 1
    before the max-pool), so feature maps align with torchvision's.

    Args:
        depth: int. 18, 34 or 50.
        input_shape: tuple. `(height, width, channels)`.
        name: str. Name of the returned model.

    Returns:
        A functional `keras.Model` (images -> stride-8 feature map).
    """
    block, (n1, n2, _, _) = _imagenet_config(depth)
    input_shape = check_input_shape(input_shape, 32, "An ImageNet ResNet")
    inputs = keras.Input(shape=input_shape, name="images")
    x = keras.layers.ZeroPadding2D(3, name="stem_pad")(inputs)
    x = FastConv2D(
        64, 7, strides=2, use_bias=False,
        kernel_initializer=_utils.conv_initializer(), name="stem_conv",
    )(x)
    x = _utils.batch_norm("stem_bn", None)(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    # Zero padding equals PyTorch's -inf padding here: the input is >= 0.
    x = keras.layers.ZeroPadding2D(1, name="pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    x = ResidualStage(64, n1, strides=1, block=block, name="stage_1")(x)
    x = ResidualStage(128, n2, strides=2, block=block, name="stage_2")(x)
    return keras.Model(inputs, x, name=name)


def resnet_imagenet(
    depth: int = 18,
    num_classes: int = 1000,
    num_branches: int = 4,
    aux: int = 1,
    fusion="conv",
    input_shape=(224, 224, 3),
    name=None,
    **kd_options,
):
    """Builds an AHBF-OKD ImageNet ResNet as an uncompiled `OnlineKDModel`.

    Shared trunk: the 7x7 stem, max-pool, stages 1 and 2. Per branch:
    stages 3 and 4 (one `ResidualStages` layer), global average pooling and
    a Dense classifier. Branch `b`'s extra blocks alternate between the two
    stages, as in the paper's code: stage 3 gets `aux * ceil(b / 2)` extra
    blocks, stage 4 `aux * floor(b / 2)`. Trunk + branch 0 is exactly the
    torchvision ResNet-`depth` (`model.target_model()`).

    | depth | blocks per stage | target params (1000 classes) | AHBF model (B=4, aux=1) |
    | --- | --- | --- | --- |
    | 18 | 2, 2, 2, 2 (basic) | 11,689,512 | 60,453,362 |
    | 34 | 3, 4, 6, 3 (basic) | 21,797,672 | 98,891,506 |
    | 50 | 3, 4, 6, 3 (bottleneck) | 25,557,032 | 136,483,826 |

    (trainable parameters, counted as PyTorch does; the AHBF counts include
    the 3 fusion modules at 512 * expansion channels.)

    Args:
        depth: int. 18, 34 or 50.
        num_classes: int. Number of classes (>= 1).
        num_branches: int. Number of branches `B` (>= 2).
        aux: int. Extra blocks per branch level (>= 0).
        fusion: str or list. `"conv"`, `"se"`, `"cbam"`, `"nonlocal"` or a
            list of `AdaptiveFusion` layers (see `OnlineKDModel`).
        input_shape: tuple. `(height, width, channels)`, channels-last, at
            least 32x32 (parameter counts do not depend on it).
        name: str. Model name (default `"ahbf_resnet<depth>_imagenet"`).
        **kd_options: `OnlineKDModel` options (`temperature`, `kd_weight`,
            `lambda_ta`, `lambda_branch`, `rampup_epochs`,
            `stop_teacher_gradient`, `weight_decay`).

    Returns:
        An uncompiled, built `OnlineKDModel`.

    Raises:
        ValueError: on an unsupported `depth`, `num_branches < 2`,
            `aux < 0`, `num_classes < 1`, a bad `input_shape` or invalid
            distillation options.

    Example:

    ```python
    model = keras_ahbf.models.resnet_imagenet(18, weight_decay=1e-4)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9))
    resnet18 = model.target_model()   # the plain ResNet-18
    ```
    """
    check_branch_arguments(num_branches, aux, num_classes)
    block, (_, _, n3, n4) = _imagenet_config(depth)
    trunk = resnet_imagenet_trunk(depth, input_shape)
    branches = HierarchicalBranches(
        ResidualStages(filters=[256, 512], depth=[n3, n4], strides=[2, 2], block=block),
        num_branches=num_branches,
        aux=aux,
        num_classes=num_classes,
        name="branches",
    )
    return OnlineKDModel(
        trunk, branches, fusion,
        name=name or f"ahbf_resnet{depth}_imagenet", **kd_options,
    )
