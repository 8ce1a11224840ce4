"""Stages with one integer depth: templates of `HierarchicalBranches`.

Each branch of an AHBF-OKD model is a copy of such a stage with a larger
depth (`ResidualStage(depth=)`, `VGGStage(num_convs=)`,
`RepeatedBlockStage(depth=)`, `CallableStage(depth=)`; `DenseBlock`'s
`num_layers` in `keras_ahbf.layers.blocks` serves too). Templates with one
depth per stage are in `keras_ahbf.layers.multi_stage`.
"""

from keras_ahbf.layers.stages.callable_stage import CallableStage
from keras_ahbf.layers.stages.repeated_block_stage import RepeatedBlockStage
from keras_ahbf.layers.stages.residual_stage import ResidualStage
from keras_ahbf.layers.stages.vgg_stage import VGGStage

__all__ = ["CallableStage", "RepeatedBlockStage", "ResidualStage", "VGGStage"]
