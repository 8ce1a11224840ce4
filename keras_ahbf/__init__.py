"""keras_ahbf: online knowledge distillation with Adaptive Hierarchy-Branch
Fusion (AHBF-OKD, AAAI 2023) for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_ahbf import callbacks
from keras_ahbf import distribution
from keras_ahbf import layers
from keras_ahbf import losses
from keras_ahbf import models
from keras_ahbf import training
from keras_ahbf.callbacks import RampupCallback
from keras_ahbf.distribution import make_distribution
from keras_ahbf.losses import ahbf_loss
from keras_ahbf.online_kd_model import OnlineKDModel

__version__ = "0.1.0"

__all__ = [
    "OnlineKDModel",
    "RampupCallback",
    "ahbf_loss",
    "callbacks",
    "distribution",
    "layers",
    "losses",
    "make_distribution",
    "models",
    "training",
]
