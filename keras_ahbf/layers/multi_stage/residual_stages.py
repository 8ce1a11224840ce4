"""Consecutive ResNet stages in one layer (e.g. stages 3 and 4)."""

import keras

from keras_ahbf.layers import _utils
from keras_ahbf.layers._arguments import int_list
from keras_ahbf.layers.stages.residual_stage import ResidualStage
from keras_ahbf.layers.stages.residual_stage import check_block


@keras.saving.register_keras_serializable(package="keras_ahbf")
class ResidualStages(keras.layers.Layer):
    """Several `ResidualStage`s in a row, with per-stage depths.

    ```
    y = stage_{S-1}( ... stage_1(stage_0(x)) ... )
    stage_s = ResidualStage(filters[s], depth[s], strides[s], block)
    ```

    The per-branch part of an ImageNet AHBF-OKD ResNet is stages 3 and 4:
    `ResidualStages(filters=[256, 512], depth=[2, 2], strides=[2, 2])` for
    ResNet-18. As the template of `HierarchicalBranches` the list-valued
    `depth` makes the extra blocks of deeper branches alternate between the
    two stages: stage 3 gets `aux * ceil(b / 2)`, stage 4 `aux * floor(b /
    2)`.

    Args:
        filters: list of int. Block width of each stage.
        depth: list of int. Number of blocks of each stage (>= 1).
        strides: int or list of int. Stride of each stage's first block.
        block: str. `"basic"` or `"bottleneck"`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.
        training: bool. Whether BatchNorm runs in training mode.

    Returns:
        Tensor of shape `(batch, height / prod(strides), width /
        prod(strides), filters[-1] * expansion)`.

    Raises:
        ValueError: on an unknown `block`, non-positive sizes or lists of
            different lengths.

    Example:

    >>> import numpy as np
    >>> stages = ResidualStages(filters=[32, 64], depth=[1, 2], strides=2)
    >>> tuple(stages(np.zeros((1, 16, 16, 16), "float32")).shape)
    (1, 4, 4, 64)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    def __init__(self, filters, depth, strides=2, block: str = "basic", **kwargs):
        super().__init__(**kwargs)
        self.block = check_block(block)
        self.depth = int_list("depth", depth, 1)
        count = len(self.depth)
        self.filters = int_list("filters", filters, 1, count)
        self.strides = int_list("strides", strides, 1, count)

    def _stage(self, s, name=None):
        return ResidualStage(
            self.filters[s], self.depth[s], strides=self.strides[s],
            block=self.block, name=name, dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        shape = tuple(input_shape)
        self.stages = []
        for s in range(len(self.depth)):
            stage = self._stage(s, name=f"stage_{s}")
            stage.build(shape)
            shape = stage.compute_output_shape(shape)
            self.stages.append(stage)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for stage in self.stages:
            x = stage(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for s in range(len(self.depth)):
            shape = self._stage(s).compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": list(self.filters),
                "depth": list(self.depth),
                "strides": list(self.strides),
                "block": self.block,
            }
        )
        return config
