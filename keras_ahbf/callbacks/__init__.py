"""Callbacks for training `OnlineKDModel`s with `model.fit`.

- `RampupCallback`: advances the distillation ramp-up (added by
  `OnlineKDModel.fit` itself).
- `FusionWeightLogger`: the fusion weights of every level, per epoch, into
  the logs (so `History`, `TensorBoard`, `CSVLogger`).
- `EpochCheckpoint`: crash-safe full checkpoint + `state.json` + `log.csv`
  after every epoch, and `EpochCheckpoint.restore` to resume (the run
  directory itself is `keras_ahbf.runs`).

All of them work on TensorFlow, JAX and PyTorch.
"""

from keras_ahbf.callbacks.epoch_checkpoint import EpochCheckpoint
from keras_ahbf.callbacks.fusion_weight_logger import FusionWeightLogger
from keras_ahbf.callbacks.rampup_callback import RampupCallback
from keras_ahbf.runs import rows_to_csv

__all__ = ["EpochCheckpoint", "FusionWeightLogger", "RampupCallback", "rows_to_csv"]
