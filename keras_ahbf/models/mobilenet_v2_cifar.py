"""CIFAR MobileNetV2 with hierarchical branches."""

import keras

from keras_ahbf.layers import _utils
from keras_ahbf.layers.fast_conv2d import FastConv2D
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.multi_stage.inverted_residual_stages import InvertedResidualStages
from keras_ahbf.models._arguments import check_branch_arguments
from keras_ahbf.models._arguments import check_input_shape
from keras_ahbf.online_kd_model import OnlineKDModel

# (expansion or None for `expansion`, channels, blocks, stride) as in the
# CIFAR MobileNetV2 of the paper's (and CRD's) code.
TRUNK_STAGES = ((1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2))
BRANCH_STAGES = ((None, 96, 3, 1), (None, 160, 3, 2), (None, 320, 1, 1))


def _width(channels, width_multiplier):
    return max(1, int(channels * width_multiplier))


def _check_width(width_multiplier):
    return _utils.check_float("width_multiplier", width_multiplier, 0.0, exclusive=True)


def mobilenet_v2_cifar_trunk(
    width_multiplier=0.5, expansion=6, input_shape=(32, 32, 3), name="trunk"
):
    """The shared trunk of a CIFAR MobileNetV2: stem and the first 4 stages.

    ```
    Conv3x3/2(32w) + BN + ReLU -> stages (t, c, n, s) = (1, 16, 1, 1), (6, 24, 2, 1),
                                                        (6, 32, 3, 2), (6, 64, 4, 2)
    ```
    (channels `c` scaled by the width multiplier `w`, `t = expansion`).

    Args: as `mobilenet_v2_cifar`; `name`: str, name of the returned model.

    Returns:
        A functional `keras.Model` (images -> stride-8 feature map).
    """
    width_multiplier = _check_width(width_multiplier)
    _utils.check_int("expansion", expansion, 1)
    input_shape = check_input_shape(input_shape)
    inputs = keras.Input(shape=input_shape, name="images")
    x = FastConv2D(
        _width(32, width_multiplier), 3, strides=2, padding="same", use_bias=False,
        kernel_initializer=_utils.conv_initializer(), name="stem_conv",
    )(inputs)
    x = _utils.batch_norm("stem_bn", None)(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = InvertedResidualStages(
        filters=[_width(c, width_multiplier) for _, c, _, _ in TRUNK_STAGES],
        depth=[n for _, _, n, _ in TRUNK_STAGES],
        strides=[s for _, _, _, s in TRUNK_STAGES],
        expansion=[t or expansion for t, _, _, _ in TRUNK_STAGES],
        name="stages_1_4",
    )(x)
    return keras.Model(inputs, x, name=name)


def mobilenet_v2_cifar(
    num_classes: int = 100,
    num_branches: int = 4,
    aux: int = 4,
    fusion="conv",
    width_multiplier: float = 0.5,
    expansion: int = 6,
    input_shape=(32, 32, 3),
    name=None,
    **kd_options,
):
    """Builds an AHBF-OKD CIFAR MobileNetV2 as an uncompiled `OnlineKDModel`.

    Shared trunk: the stride-2 stem and the 16-, 24-, 32- and 64-channel
    stages (x `width_multiplier`). Per branch: the 96-, 160- (stride 2) and
    320-channel stages and the 1x1 convolution to 1280 channels (one
    `InvertedResidualStages` layer), global average pooling and a Dense
    classifier. Branch `b`'s extra blocks alternate between its three
    stages, first stage first, `aux` at a time (the paper's code): with
    `aux=4`, branches 0-3 have (3, 3, 1), (7, 3, 1), (7, 7, 1), (7, 7, 5)
    blocks. Each branch runs its *own* deeper stages (the published code
    builds them but runs branch 0's 96- and 160-channel stages in every
    branch, so only the 320-channel stage differed). Trunk + branch 0 is the
    CIFAR MobileNetV2 of the paper's code (`mobile_half` at the default
    width 0.5), `model.target_model()`.

    With 100 classes, 4 branches and `aux=4` (width 0.5) the model has
    15,221,858 trainable parameters (812,836 in the target network); most
    of them are in the three 1280-channel fusion modules.

    Args:
        num_classes: int. Number of classes (>= 1).
        num_branches: int. Number of branches `B` (>= 2).
        aux: int. Extra blocks per branch level (>= 0).
        fusion: str or list. `"conv"`, `"se"`, `"cbam"`, `"nonlocal"` or a
            list of `AdaptiveFusion` layers.
        width_multiplier: float. Channel multiplier `w` (0.5 in the paper's
            code; the 1280-channel layer is scaled only when `w > 1`).
        expansion: int. Expansion factor `t` of the inverted residual
            blocks (the first stage always uses 1).
        input_shape: tuple. `(height, width, channels)`.
        name: str. Model name (default `"ahbf_mobilenetv2"`).
        **kd_options: `OnlineKDModel` options.

    Returns:
        An uncompiled, built `OnlineKDModel`.

    Raises:
        ValueError: on `num_branches < 2`, `aux < 0`, `num_classes < 1`, a
            non-positive `width_multiplier` or `expansion`, or a bad
            `input_shape`.

    Example:

    ```python
    model = keras_ahbf.models.mobilenet_v2_cifar(num_classes=100)
    ```
    """
    check_branch_arguments(num_branches, aux, num_classes)
    width_multiplier = _check_width(width_multiplier)
    trunk = mobilenet_v2_cifar_trunk(width_multiplier, expansion, input_shape)
    last = _width(1280, width_multiplier) if width_multiplier > 1.0 else 1280
    branches = HierarchicalBranches(
        InvertedResidualStages(
            filters=[_width(c, width_multiplier) for _, c, _, _ in BRANCH_STAGES],
            depth=[n for _, _, n, _ in BRANCH_STAGES],
            strides=[s for _, _, _, s in BRANCH_STAGES],
            expansion=expansion,
            last_channels=last,
        ),
        num_branches=num_branches,
        aux=aux,
        num_classes=num_classes,
        name="branches",
    )
    return OnlineKDModel(
        trunk, branches, fusion, name=name or "ahbf_mobilenetv2", **kd_options
    )
