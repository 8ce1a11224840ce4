"""Consecutive MobileNetV2 stages (optionally ending with the 1x1 head conv)."""

from typing import Optional

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers._arguments import int_list
from keras_ahbf.layers.blocks.inverted_residual_block import InvertedResidualBlock
from keras_ahbf.layers.fast_conv2d import FastConv2D


@keras.saving.register_keras_serializable(package="keras_ahbf")
class InvertedResidualStages(keras.layers.Layer):
    """One or more MobileNetV2 stages of `InvertedResidualBlock`s.

    Stage `s` has `depth[s]` blocks with `filters[s]` output channels and
    expansion `expansion[s]`; only its first block is strided
    (`strides[s]`). With `last_channels`, a final 1x1 convolution, BN and
    ReLU widen the output (MobileNetV2's 1280-channel layer):

    ```
    x = stage_{S-1}( ... stage_0(x))       stage_s = block^{depth[s]}, first one strided
    y = ReLU(BN(Conv1x1_{last_channels}(x)))      (if last_channels)
    ```

    As the template of `HierarchicalBranches` (with the list-valued
    `depth`), the extra blocks of deeper branches alternate between the
    stages, first stage first: the last three stages plus the 1280-channel
    convolution make an AHBF-OKD MobileNetV2 branch.

    Args:
        filters: int or list of int. Output channels of each stage.
        depth: int or list of int. Number of blocks of each stage (>= 1).
        strides: int or list of int. Stride of each stage's first block.
        expansion: int or list of int. Expansion factor of each stage.
        last_channels: int or None. Width of the final 1x1 convolution
            (`None`: no final convolution).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.
        training: bool. Whether BatchNorm runs in training mode.

    Returns:
        Tensor of shape `(batch, height / prod(strides), width /
        prod(strides), last_channels or filters[-1])`.

    Raises:
        ValueError: on non-positive sizes or lists of different lengths.

    Example:

    >>> import numpy as np
    >>> stages = InvertedResidualStages(
    ...     filters=[24, 32], depth=[2, 3], strides=[1, 2], expansion=6,
    ...     last_channels=64)
    >>> tuple(stages(np.zeros((1, 8, 8, 16), "float32")).shape)
    (1, 4, 4, 64)

    Reference:
        Sandler et al., "MobileNetV2: Inverted Residuals and Linear
        Bottlenecks", CVPR 2018.
    """

    def __init__(
        self,
        filters,
        depth,
        strides=1,
        expansion=6,
        last_channels: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.depth = int_list("depth", depth, 1)
        count = len(self.depth)
        self.filters = int_list("filters", filters, 1, count)
        self.strides = int_list("strides", strides, 1, count)
        self.expansion = int_list("expansion", expansion, 1, count)
        if last_channels is not None:
            last_channels = _utils.check_int("last_channels", last_channels, 1)
        self.last_channels = last_channels

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        shape = tuple(input_shape)
        self.blocks = []
        for s, (filters, depth, strides, expansion) in enumerate(
            zip(self.filters, self.depth, self.strides, self.expansion)
        ):
            for i in range(depth):
                block = InvertedResidualBlock(
                    filters,
                    strides=strides if i == 0 else 1,
                    expansion=expansion,
                    name=f"stage_{s}_block_{i}",
                    dtype=self.dtype_policy,
                )
                block.build(shape)
                shape = block.compute_output_shape(shape)
                self.blocks.append(block)
        self.last_conv = None
        if self.last_channels is not None:
            self.last_conv = FastConv2D(
                self.last_channels, 1, use_bias=False,
                kernel_initializer=_utils.conv_initializer(),
                name="last_conv", dtype=self.dtype_policy,
            )
            self.last_conv.build(shape)
            self.last_bn = _utils.batch_norm("last_bn", self.dtype_policy)
            self.last_bn.build(shape[:3] + (self.last_channels,))
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            x = block(x, training=training)
        if self.last_conv is not None:
            x = ops.relu(self.last_bn(self.last_conv(x), training=training))
        return x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for filters, strides in zip(self.filters, self.strides):
            shape = InvertedResidualBlock(filters, strides).compute_output_shape(shape)
        if self.last_channels is not None:
            shape = shape[:3] + (self.last_channels,)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": list(self.filters),
                "depth": list(self.depth),
                "strides": list(self.strides),
                "expansion": list(self.expansion),
                "last_channels": self.last_channels,
            }
        )
        return config
