"""A stage of residual blocks: the unit whose depth branches vary."""

import keras

from keras_ahbf.layers import _utils
from keras_ahbf.layers._arguments import check_choice
from keras_ahbf.layers.blocks.basic_block import BasicBlock
from keras_ahbf.layers.blocks.bottleneck import Bottleneck

# The `block` argument of the ResNet stages (and of the CIFAR ResNets).
BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def check_block(block: str) -> str:
    """Returns `block` if it names a residual block (`BLOCKS`).

    Raises:
        ValueError: on an unknown block name.
    """
    return check_choice("block", block, BLOCKS)


@keras.saving.register_keras_serializable(package="keras_ahbf")
class ResidualStage(keras.layers.Layer):
    """A ResNet stage: `depth` residual blocks, the first one strided.

    ```
    y = block_{depth-1}( ... block_1( block_0_stride(x) ) ... )
    ```

    This is the layer `HierarchicalBranches` copies with an increasing
    `depth` to make the branches of a ResNet.

    Args:
        filters: int. Block width (`BasicBlock`: output channels;
            `Bottleneck`: a quarter of them).
        depth: int. Number of blocks (>= 1).
        strides: int. Stride of the first block.
        block: str. `"basic"` (`BasicBlock`) or `"bottleneck"`
            (`Bottleneck`).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.
        training: bool. Whether BatchNorm runs in training mode.

    Returns:
        Tensor of shape `(batch, height / strides, width / strides,
        filters * expansion)`.

    Raises:
        ValueError: on an unknown `block` or a non-positive size.

    Example:

    >>> import numpy as np
    >>> stage = ResidualStage(filters=64, depth=5, strides=2)
    >>> tuple(stage(np.zeros((2, 16, 16, 32), "float32")).shape)
    (2, 8, 8, 64)
    """

    def __init__(
        self,
        filters: int,
        depth: int,
        strides: int = 1,
        block: str = "basic",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.block = check_block(block)
        self.filters = _utils.check_int("filters", filters, 1)
        self.depth = _utils.check_int("depth", depth, 1)
        self.strides = _utils.check_int("strides", strides, 1)

    @property
    def output_channels(self) -> int:
        return self.filters * BLOCKS[self.block].expansion

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        shape = tuple(input_shape)
        self.blocks = []
        for i in range(self.depth):
            block = BLOCKS[self.block](
                self.filters,
                strides=self.strides if i == 0 else 1,
                name=f"block_{i}",
                dtype=self.dtype_policy,
            )
            block.build(shape)
            shape = block.compute_output_shape(shape)
            self.blocks.append(block)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        block = BLOCKS[self.block](self.filters, strides=self.strides)
        return block.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "depth": self.depth,
                "strides": self.strides,
                "block": self.block,
            }
        )
        return config
