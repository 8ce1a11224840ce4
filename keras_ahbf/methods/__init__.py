"""Online-distillation methods behind one interface (see `docs/methods.md`).

- `OnlineDistillationModel`: the base class every method's training model
  subclasses (call contract, loss and metrics hooks, ramp-up, coupled L2,
  data checks, serialization). `keras_ahbf.OnlineKDModel` (AHBF-OKD) is one.
- `PeerDistillationModel`: the base of the peer methods below (temperature,
  distillation weight, ramp-up, one cross-entropy and one KL term per
  network, per-network metrics); `SharedTrunkModel`, its subclass for the
  methods whose networks share low-level layers (ONE, CL-ILR, OKDDip).
- DML (deep mutual learning, Zhang et al., CVPR 2018): `dml_loss`,
  `MutualLearningModel`, `dml_resnet_cifar`, `dml_from_backbone`.
- OKDDip (diverse peers, Chen et al., AAAI 2020): `okddip_loss`,
  `OKDDipModel`, `okddip_resnet_cifar`, `okddip_from_backbone`.
- KDCL (collaborative learning, Guo et al., CVPR 2020): `kdcl_loss`,
  `kdcl_teacher_logits`, `KDCLModel`, `kdcl_resnet_cifar`,
  `kdcl_from_backbone`, `random_flip_and_translate`.
- ONE (on-the-fly native ensemble, Lan et al., NeurIPS 2018): `one_loss`,
  `NativeEnsembleGate`, `NativeEnsembleModel`, `one_resnet_cifar`,
  `one_from_backbone`.
- CL-ILR (collaborative learning, Song and Chai, NeurIPS 2018):
  `cl_ilr_loss`, `CollaborativeLearningModel`, `cl_ilr_resnet_cifar`,
  `cl_ilr_from_backbone`.
- `shared_trunk_and_branches`: the shared low-level layers and identical
  branches of a backbone, for the methods whose networks share a trunk.
"""

from keras_ahbf.config import METHODS
from keras_ahbf.methods.cl_ilr import CollaborativeLearningModel
from keras_ahbf.methods.cl_ilr import cl_ilr_from_backbone
from keras_ahbf.methods.cl_ilr import cl_ilr_loss
from keras_ahbf.methods.cl_ilr import cl_ilr_resnet_cifar
from keras_ahbf.methods.dml import MutualLearningModel
from keras_ahbf.methods.dml import dml_from_backbone
from keras_ahbf.methods.dml import dml_loss
from keras_ahbf.methods.dml import dml_resnet_cifar
from keras_ahbf.methods.dml import peer_network
from keras_ahbf.methods.kdcl import KDCLModel
from keras_ahbf.methods.kdcl import kdcl_from_backbone
from keras_ahbf.methods.kdcl import kdcl_loss
from keras_ahbf.methods.kdcl import kdcl_resnet_cifar
from keras_ahbf.methods.kdcl import kdcl_teacher_logits
from keras_ahbf.methods.kdcl import random_flip_and_translate
from keras_ahbf.methods.okddip import OKDDipModel
from keras_ahbf.methods.okddip import okddip_from_backbone
from keras_ahbf.methods.okddip import okddip_loss
from keras_ahbf.methods.okddip import okddip_resnet_cifar
from keras_ahbf.methods.online_distillation_model import OnlineDistillationModel
from keras_ahbf.methods.one import NativeEnsembleGate
from keras_ahbf.methods.one import NativeEnsembleModel
from keras_ahbf.methods.one import one_from_backbone
from keras_ahbf.methods.one import one_loss
from keras_ahbf.methods.one import one_resnet_cifar
from keras_ahbf.methods.peer_distillation_model import PeerDistillationModel
from keras_ahbf.methods.shared_trunk import shared_trunk_and_branches
from keras_ahbf.methods.shared_trunk_model import SharedTrunkModel


__all__ = [
    "CollaborativeLearningModel",
    "KDCLModel",
    "METHODS",
    "MutualLearningModel",
    "NativeEnsembleGate",
    "NativeEnsembleModel",
    "OKDDipModel",
    "OnlineDistillationModel",
    "PeerDistillationModel",
    "SharedTrunkModel",
    "cl_ilr_from_backbone",
    "cl_ilr_loss",
    "cl_ilr_resnet_cifar",
    "dml_from_backbone",
    "dml_loss",
    "dml_resnet_cifar",
    "kdcl_from_backbone",
    "kdcl_loss",
    "kdcl_resnet_cifar",
    "kdcl_teacher_logits",
    "okddip_from_backbone",
    "okddip_loss",
    "okddip_resnet_cifar",
    "one_from_backbone",
    "one_loss",
    "one_resnet_cifar",
    "peer_network",
    "random_flip_and_translate",
    "shared_trunk_and_branches",
]
