"""Building blocks of the backbones (ResNet, MobileNetV2, DenseNet)."""

from keras_ahbf.layers.blocks.basic_block import BasicBlock
from keras_ahbf.layers.blocks.bottleneck import Bottleneck
from keras_ahbf.layers.blocks.dense_block import DenseBlock
from keras_ahbf.layers.blocks.inverted_residual_block import InvertedResidualBlock

__all__ = ["BasicBlock", "Bottleneck", "DenseBlock", "InvertedResidualBlock"]
