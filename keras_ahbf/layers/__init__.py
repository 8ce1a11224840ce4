"""Reusable Keras layers of keras_ahbf.

Layout (one class per module, named after it):

- `adaptive_fusion.AdaptiveFusion`: the fusion module of AHBF-OKD.
- `hierarchical_branches.HierarchicalBranches`: branches of increasing
  depth copied from a template stage.
- `gradient_scale.GradientScale`: identity forward, gradient scaled
  backward (the backpropagation rescaling of CL-ILR).
- `peer_attention.PeerAttention`: per-peer self-attention weights over
  peers (the aggregation of OKDDip).
- `attention/`: `SqueezeExcitation`, `CBAM`, `NonLocalBlock` (the
  attention variants of the fusion module).
- `blocks/`: `BasicBlock`, `Bottleneck`, `InvertedResidualBlock`,
  `DenseBlock`.
- `stages/`: templates with one integer depth: `ResidualStage`,
  `VGGStage`, `RepeatedBlockStage`, `CallableStage`.
- `multi_stage/`: templates with one depth per stage: `ResidualStages`,
  `InvertedResidualStages`.

Every public layer is importable from `keras_ahbf.layers`; the method is
described in `docs/method.md`.
"""

from keras_ahbf.layers.adaptive_fusion import AdaptiveFusion
from keras_ahbf.layers.attention.cbam import CBAM
from keras_ahbf.layers.attention.non_local_block import NonLocalBlock
from keras_ahbf.layers.attention.squeeze_excitation import SqueezeExcitation
from keras_ahbf.layers.blocks.basic_block import BasicBlock
from keras_ahbf.layers.blocks.bottleneck import Bottleneck
from keras_ahbf.layers.blocks.dense_block import DenseBlock
from keras_ahbf.layers.blocks.inverted_residual_block import InvertedResidualBlock
from keras_ahbf.layers.fast_conv2d import FastConv2D
from keras_ahbf.layers.fused_batch_normalization import FusedBatchNormalization
from keras_ahbf.layers.gradient_scale import GradientScale
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.multi_stage.inverted_residual_stages import (
    InvertedResidualStages,
)
from keras_ahbf.layers.multi_stage.residual_stages import ResidualStages
from keras_ahbf.layers.peer_attention import PeerAttention
from keras_ahbf.layers.stages.callable_stage import CallableStage
from keras_ahbf.layers.stages.repeated_block_stage import RepeatedBlockStage
from keras_ahbf.layers.stages.residual_stage import ResidualStage
from keras_ahbf.layers.stages.vgg_stage import VGGStage

__all__ = [
    "AdaptiveFusion",
    "BasicBlock",
    "Bottleneck",
    "CBAM",
    "CallableStage",
    "DenseBlock",
    "FastConv2D",
    "FusedBatchNormalization",
    "GradientScale",
    "HierarchicalBranches",
    "InvertedResidualBlock",
    "InvertedResidualStages",
    "NonLocalBlock",
    "PeerAttention",
    "RepeatedBlockStage",
    "ResidualStage",
    "ResidualStages",
    "SqueezeExcitation",
    "VGGStage",
]
