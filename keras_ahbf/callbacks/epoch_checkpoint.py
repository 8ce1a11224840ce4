"""`EpochCheckpoint`: a crash-safe commit of the whole run after every epoch."""

import math
import os
import time

import keras

from keras_ahbf import runs
from keras_ahbf.callbacks._scalars import as_float


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the complete training state after every epoch, crash-safely.

    At the end of each epoch whose loss is finite it commits, in order
    (`keras_ahbf.runs.commit_epoch`):

    1. `checkpoints/epoch_{n:04d}.keras` (`n` epochs completed): the full
       model (weights, optimizer state and step counter, the ramp-up
       `epoch` variable, compile configuration), written to a temporary
       file, `fsync`ed and renamed into place;
    2. `state.json`, atomically: `epochs_completed`, the checkpoint's file
       name, one row of logs per completed epoch (with the learning rate
       and the epoch's wall time) and the `metadata` given;
    3. `log.csv`, atomically rewritten from those rows (one per epoch);
    4. then older checkpoints are deleted (the newest `keep` are kept).

    `state.json` is the commit point: a process killed at any moment (even
    by SIGKILL) leaves a `state.json` that names a complete checkpoint, and
    a restarted run resumes from it (`restore`) with
    `model.fit(..., initial_epoch=state["epochs_completed"])`; an epoch
    interrupted before its commit is simply trained again. On the next
    start, `recover` deletes the temporary files of a killed process and
    brings `log.csv` and the checkpoints in line with `state.json`.

    An epoch whose `loss` is NaN or infinite is not saved: training is
    stopped and `nonfinite_epoch` is set, so the last good checkpoint
    remains the resume point.

    Unlike `keras.callbacks.BackupAndRestore` (which overwrites its weights
    file in place and writes its epoch counter separately, so a kill during
    a save can leave a truncated file or a counter that does not match the
    weights, and which deletes its backup when training ends) the files
    written here are never partially written and stay after training.

    Args:
        directory: str. Run directory (created if needed).
        keep: int. Number of most recent checkpoints kept (>= 1).
        metadata: dict or None. JSON-serialisable values stored in
            `state.json` (e.g. the planned number of epochs).

    Attributes:
        nonfinite_epoch: int or None. The (0-based) epoch whose loss was not
            finite, if training was stopped for that reason.

    Raises:
        ValueError: if `keep` is not an integer >= 1.

    Example:

    ```python
    model, state = EpochCheckpoint.restore("run")
    if model is None:
        model = build_and_compile()
    done = state["epochs_completed"] if state else 0
    model.fit(ds, epochs=30, initial_epoch=done,
              callbacks=[EpochCheckpoint("run")])
    ```
    """

    STATE_FILE = runs.STATE_FILE
    LOG_FILE = runs.LOG_FILE
    CHECKPOINT_DIR = runs.CHECKPOINT_DIR

    def __init__(self, directory, keep=1, metadata=None):
        super().__init__()
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`keep` must be an integer >= 1. Received: keep={keep!r}")
        self.directory = os.path.abspath(os.fspath(directory))
        self.keep = keep
        self.metadata = dict(metadata or {})
        self.nonfinite_epoch = None
        self._rows = []
        self._epoch_start = None
        self._learning_rate = None

    # The run directory is read by `keras_ahbf.runs`; these stay for code
    # written against the callback.
    @staticmethod
    def read_state(directory):
        """The committed state of a run directory, or None (`runs.read_state`)."""
        return runs.read_state(directory)

    @staticmethod
    def restore(directory, compile=True):
        """`(model, state)` of the last commit, or `(None, None)` (`runs.restore`)."""
        return runs.restore(directory, compile=compile)

    @staticmethod
    def recover(directory, keep=1):
        """Tidies a run directory after a crash (`runs.recover`)."""
        return runs.recover(directory, keep=keep)

    def on_train_begin(self, logs=None):
        os.makedirs(os.path.join(self.directory, runs.CHECKPOINT_DIR), exist_ok=True)
        state = runs.recover(self.directory, keep=self.keep)
        self._rows = list(state.get("history", [])) if state else []

    def _current_learning_rate(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        try:
            return as_float(optimizer.learning_rate)
        except Exception:  # noqa: BLE001 - exotic optimizers.
            return None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()
        self._learning_rate = self._current_learning_rate()

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        loss = as_float(logs.get("loss", 0.0))
        if loss is None or not math.isfinite(loss):
            self.nonfinite_epoch = epoch
            self.model.stop_training = True
            return
        if self._learning_rate is not None:
            logs.setdefault("learning_rate", self._learning_rate)
        row = {"epoch": epoch}
        for key, value in logs.items():
            value = as_float(value)
            if value is not None:
                row[key] = value
        row["epoch_time"] = time.time() - (self._epoch_start or time.time())
        rows = [r for r in self._rows if r["epoch"] < epoch] + [row]
        runs.commit_epoch(self.directory, self.model, rows, self.metadata, self.keep)
        self._rows = rows
