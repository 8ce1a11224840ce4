"""Model builders: backbones of the AHBF-OKD paper as `OnlineKDModel`s."""

from keras_ahbf.models.resnet_cifar import resnet_cifar
from keras_ahbf.models.resnet_cifar import resnet_cifar_trunk

__all__ = ["resnet_cifar", "resnet_cifar_trunk"]
