"""Several consecutive stages in one layer, with a list-valued depth.

As the template of `HierarchicalBranches`, the extra blocks of deeper
branches alternate between the stages, first stage first (the paper's
ImageNet ResNets and CIFAR MobileNetV2). Single stages with one integer
depth are in `keras_ahbf.layers.stages`.
"""

from keras_ahbf.layers.multi_stage.inverted_residual_stages import (
    InvertedResidualStages,
)
from keras_ahbf.layers.multi_stage.residual_stages import ResidualStages

__all__ = ["InvertedResidualStages", "ResidualStages"]
