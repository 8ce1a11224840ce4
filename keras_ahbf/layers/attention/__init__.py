"""Attention blocks: the attention variants of `AdaptiveFusion`."""

from keras_ahbf.layers.attention.cbam import CBAM
from keras_ahbf.layers.attention.non_local_block import NonLocalBlock
from keras_ahbf.layers.attention.squeeze_excitation import SqueezeExcitation

__all__ = ["CBAM", "NonLocalBlock", "SqueezeExcitation"]
