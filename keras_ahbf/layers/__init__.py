"""Reusable Keras layers of keras_ahbf."""

from keras_ahbf.layers.adaptive_fusion import AdaptiveFusion
from keras_ahbf.layers.basic_block import BasicBlock
from keras_ahbf.layers.bottleneck import Bottleneck
from keras_ahbf.layers.callable_stage import CallableStage
from keras_ahbf.layers.cbam import CBAM
from keras_ahbf.layers.dense_block import DenseBlock
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.inverted_residual_block import InvertedResidualBlock
from keras_ahbf.layers.inverted_residual_stages import InvertedResidualStages
from keras_ahbf.layers.non_local_block import NonLocalBlock
from keras_ahbf.layers.repeated_block_stage import RepeatedBlockStage
from keras_ahbf.layers.residual_stage import ResidualStage
from keras_ahbf.layers.residual_stages import ResidualStages
from keras_ahbf.layers.squeeze_excitation import SqueezeExcitation
from keras_ahbf.layers.vgg_stage import VGGStage

__all__ = [
    "AdaptiveFusion",
    "BasicBlock",
    "Bottleneck",
    "CBAM",
    "CallableStage",
    "DenseBlock",
    "HierarchicalBranches",
    "InvertedResidualBlock",
    "InvertedResidualStages",
    "NonLocalBlock",
    "RepeatedBlockStage",
    "ResidualStage",
    "ResidualStages",
    "SqueezeExcitation",
    "VGGStage",
]
