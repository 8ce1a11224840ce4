"""Online-distillation methods behind one interface (see `docs/methods.md`).

- `OnlineDistillationModel`: the base class every method's training model
  subclasses (call contract, loss and metrics hooks, ramp-up, coupled L2,
  data checks, serialization). `keras_ahbf.OnlineKDModel` (AHBF-OKD) is one.
- DML (deep mutual learning, Zhang et al., CVPR 2018): `dml_loss`,
  `MutualLearningModel`, `dml_resnet_cifar`, `dml_from_backbone`.
"""

from keras_ahbf.config import METHODS
from keras_ahbf.methods.dml import MutualLearningModel
from keras_ahbf.methods.dml import dml_from_backbone
from keras_ahbf.methods.dml import dml_loss
from keras_ahbf.methods.dml import dml_resnet_cifar
from keras_ahbf.methods.dml import peer_network
from keras_ahbf.methods.online_distillation_model import OnlineDistillationModel


__all__ = [
    "METHODS",
    "MutualLearningModel",
    "OnlineDistillationModel",
    "dml_from_backbone",
    "dml_loss",
    "dml_resnet_cifar",
    "peer_network",
]
