"""What `evaluate` and `export` read: a run directory or a `.keras` file."""

import os

from keras_ahbf import _io
from keras_ahbf import runs
from keras_ahbf import training
from keras_ahbf.cli._common import CLIError
from keras_ahbf.models import BaselineModel


def _plain(model):
    """A `--baseline` checkpoint as its plain network (no L2 in the loss)."""
    return model.target_model() if isinstance(model, BaselineModel) else model


def load_source(path: str):
    """`(model, run config or None)` from a run directory or a `.keras` file.

    A run directory gives its last checkpoint (the full online-distillation
    model, or the network of a `--baseline` run as a plain `keras.Model`),
    or its `target.keras` when no checkpoint is left.

    Raises:
        CLIError: if `path` is neither.
        ValueError: (a `keras_ahbf._io.CorruptFileError`) for a damaged file.
    """
    if os.path.isdir(path):
        saved = runs.read_config(path)
        config = training.TrainConfig.from_dict(saved["config"]) if saved else None
        if runs.read_state(path):
            model, _ = runs.restore(path, compile=False)
            return _plain(model), config
        target = os.path.join(path, runs.TARGET_FILE)
        if os.path.isfile(target):
            return _io.load_keras_model(target, compile=False), config
        raise CLIError(f"{path} holds no completed epoch and no {runs.TARGET_FILE}.")
    if not os.path.isfile(path):
        raise CLIError(f"{path} does not exist.")
    if not path.endswith(".keras"):
        raise CLIError(f"{path} is not a .keras model file or a run directory.")
    return _plain(_io.load_keras_model(path, compile=False)), None
