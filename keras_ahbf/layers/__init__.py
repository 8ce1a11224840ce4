"""Reusable Keras layers of keras_ahbf."""

from keras_ahbf.layers.adaptive_fusion import AdaptiveFusion
from keras_ahbf.layers.basic_block import BasicBlock
from keras_ahbf.layers.bottleneck import Bottleneck
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.residual_stage import ResidualStage

__all__ = [
    "AdaptiveFusion",
    "BasicBlock",
    "Bottleneck",
    "HierarchicalBranches",
    "ResidualStage",
]
