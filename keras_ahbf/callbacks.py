"""Callbacks for training `OnlineKDModel`s with `model.fit`.

- `RampupCallback`: advances the distillation ramp-up (added by
  `OnlineKDModel.fit` itself).
- `FusionWeightLogger`: the fusion weights of every level, per epoch, into
  the logs (so `History`, `TensorBoard`, `CSVLogger`).
- `EpochCheckpoint`: crash-safe full checkpoint + `state.json` + `log.csv`
  after every epoch, and `EpochCheckpoint.restore` to resume.

All of them work on TensorFlow, JAX and PyTorch.
"""

import csv
import io
import math
import os
import time

import keras
import numpy as np
from keras import ops

from keras_ahbf import _io


class RampupCallback(keras.callbacks.Callback):
    """Advances the distillation ramp-up of an `OnlineKDModel` every epoch.

    At the start of epoch `e` (0-based, so `initial_epoch` is honoured when
    resuming) it stores `e` in the model's non-trainable `epoch` variable,
    from which `compute_loss` derives the ramp-up weight
    `w(e) = 0.5 * exp(-5 * (1 - min(e, R) / R)^2)`. The value lives in a
    variable so it is identical on TensorFlow, JAX and PyTorch, jit or not,
    and is saved with the model.

    `OnlineKDModel.fit` adds this callback itself when the user did not pass
    one, so a plain `model.fit(...)` ramps up correctly; pass it explicitly
    only to use the model's `fit` through another training loop.

    Example:

    ```python
    model.fit(dataset, epochs=300, callbacks=[keras_ahbf.callbacks.RampupCallback()])
    ```
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_epoch(epoch)


def _as_float(value):
    try:
        return float(np.asarray(ops.convert_to_numpy(value)).reshape(()))
    except Exception:  # noqa: BLE001 - not a scalar: not logged.
        return None


def _fusion_levels(model):
    return len(getattr(model, "fusions", ()))


class FusionWeightLogger(keras.callbacks.Callback):
    """Records the adaptive fusion weights of every level after each epoch.

    Each `AdaptiveFusion` module `m = 1 ... B-1` weighs its two inputs, the
    previous assistant `TA_{m-1}` and branch `m`, with per-sample weights
    `(w_m, 1 - w_m)`. `OnlineKDModel` already reports the batch mean of
    `w_m` as the metric `fusion_{m}_weight` (and `val_fusion_{m}_weight` on
    validation data); this callback collects them per level and per epoch
    in `self.weights`, and, when `x` is given, also runs the model in
    inference mode on those images after every epoch and adds to the epoch
    logs:

    - `fusion_{m}_weight_infer`: mean of `w_m` over `x` (inference mode:
      BatchNorm uses its moving statistics, as for the deployed teachers);
    - `fusion_{m}_weight_infer_std`: its standard deviation over the images.

    Values added to the logs reach `History` and every callback placed
    after this one in `callbacks=[...]` (put it before
    `keras.callbacks.TensorBoard` and `keras.callbacks.CSVLogger` to log
    them there). Works on TensorFlow, JAX and PyTorch.

    Args:
        x: array or tensor of images, or None. Fixed images on which to
            measure the weights in inference mode (a few hundred test images
            suffice).
        batch_size: int. Batch size for the inference pass over `x`.

    Attributes:
        weights: dict mapping `"fusion_{m}"` to a dict of lists, one value
            per epoch: `"train"` (the training metric), `"val"` (when
            validation data is used) and `"infer"` / `"infer_std"` (with
            `x`).
        epochs: list of the (0-based) epochs recorded.

    Example:

    ```python
    logger = keras_ahbf.callbacks.FusionWeightLogger(x_test[:512])
    model.fit(train_ds, epochs=10, callbacks=[logger, keras.callbacks.TensorBoard("logs")])
    logger.weights["fusion_1"]["infer"]  # one value per epoch
    ```
    """

    def __init__(self, x=None, batch_size=256):
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
            )
        self.x = x
        self.batch_size = batch_size
        self.weights = {}
        self.epochs = []

    def _inference_weights(self, levels):
        per_level = [[] for _ in range(levels)]
        n = int(self.x.shape[0])
        for start in range(0, n, self.batch_size):
            batch = self.x[start : start + self.batch_size]
            outputs = self.model.all_outputs(batch, training=False)
            for m, w in enumerate(outputs["fusion_weights"]):
                per_level[m].append(np.asarray(ops.convert_to_numpy(w))[:, 0])
        return [np.concatenate(w) for w in per_level]

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        levels = _fusion_levels(self.model)
        if self.x is not None and levels:
            for m, w in enumerate(self._inference_weights(levels), start=1):
                logs[f"fusion_{m}_weight_infer"] = float(np.mean(w))
                logs[f"fusion_{m}_weight_infer_std"] = float(np.std(w))
        self.epochs.append(epoch)
        for m in range(1, levels + 1):
            record = self.weights.setdefault(f"fusion_{m}", {})
            for kind, key in (
                ("train", f"fusion_{m}_weight"),
                ("val", f"val_fusion_{m}_weight"),
                ("infer", f"fusion_{m}_weight_infer"),
                ("infer_std", f"fusion_{m}_weight_infer_std"),
            ):
                if key in logs:
                    record.setdefault(kind, []).append(_as_float(logs[key]))


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the complete training state after every epoch, crash-safely.

    At the end of each epoch whose loss is finite it commits, in order:

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

    STATE_FILE = "state.json"
    LOG_FILE = "log.csv"
    CHECKPOINT_DIR = "checkpoints"

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

    # ------------------------------------------------------------- reading
    @classmethod
    def read_state(cls, directory):
        """Returns the committed state of a run directory, or None.

        Raises:
            ValueError: (a `keras_ahbf._io.CorruptFileError`) if
                `state.json` exists but is not a state this callback wrote:
                not JSON, or without a valid `epochs_completed`,
                `checkpoint` and `history`. The message names the file.
        """
        path = os.path.join(directory, cls.STATE_FILE)
        state = _io.read_json(path)
        if state is None:
            return None
        problem = None
        if not isinstance(state, dict):
            problem = f"holds a {type(state).__name__}, not an object"
        else:
            done = state.get("epochs_completed")
            name = state.get("checkpoint")
            if isinstance(done, bool) or not isinstance(done, int) or done < 1:
                problem = f"has epochs_completed={done!r} (expected an integer >= 1)"
            elif (
                not isinstance(name, str)
                or not name.endswith(".keras")
                or os.path.basename(name) != name
                or name in ("", ".", "..")
            ):
                problem = (
                    f"has checkpoint={name!r} (expected the file name of a "
                    f".keras file in {cls.CHECKPOINT_DIR}/)"
                )
            elif not isinstance(state.get("history"), list):
                problem = "has no list of per-epoch rows under 'history'"
        if problem:
            raise _io.CorruptFileError(
                f"{path} is not a valid run state: it {problem}; it was "
                "damaged or replaced after it was written."
            )
        return state

    @classmethod
    def restore(cls, directory, compile=True):
        """Loads the last committed checkpoint of a run directory.

        Args:
            directory: str. Run directory.
            compile: bool. Restore the optimizer and its state too.

        Returns:
            `(model, state)`, or `(None, None)` if nothing was committed.

        Raises:
            FileNotFoundError: if `state.json` names a missing checkpoint.
            ValueError: (a `keras_ahbf._io.CorruptFileError`) if
                `state.json` or the checkpoint is damaged (empty, truncated,
                not a `.keras` file, not loadable) or the checkpoint holds
                another kind of model than the one saved; the message names
                the file.
        """
        state = cls.read_state(directory)
        if not state:
            return None, None
        path = os.path.join(directory, cls.CHECKPOINT_DIR, state["checkpoint"])
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{os.path.join(directory, cls.STATE_FILE)} names the checkpoint "
                f"{path}, which does not exist."
            )
        model = _io.load_keras_model(path, compile=compile)
        expected = state.get("model_class")
        if expected is not None and type(model).__name__ != expected:
            raise _io.CorruptFileError(
                f"{path} holds a {type(model).__name__}, but the run saved a "
                f"{expected} there (according to "
                f"{os.path.join(directory, cls.STATE_FILE)}); the checkpoint "
                "was replaced after it was written."
            )
        return model, state

    # ------------------------------------------------------------ training
    @classmethod
    def recover(cls, directory, keep=1):
        """Tidies a run directory after a crash, from its `state.json`.

        A process killed during or after a commit can leave temporary
        files, a `log.csv` one epoch behind `state.json` (killed between
        the two), a checkpoint newer than the committed one (killed before
        `state.json`) or an old one not yet deleted. This deletes the
        temporary files of dead processes, rewrites `log.csv` from
        `state.json` when they differ, and keeps only the committed
        checkpoint and the `keep - 1` before it (no checkpoint is deleted
        while no state is committed). Idempotent, and a no-op on a tidy
        directory; call it before resuming or finishing a run, never while
        another process trains in `directory`. `on_train_begin` calls it.

        Args:
            directory: str. Run directory.
            keep: int. Number of checkpoints kept, as in the constructor.

        Returns:
            The committed state (as `read_state`), or None.
        """
        checkpoints = os.path.join(directory, cls.CHECKPOINT_DIR)
        for folder in (directory, checkpoints):
            _io.remove_stale_temporaries(folder)
        state = cls.read_state(directory)
        if not state:
            return None
        log = os.path.join(directory, cls.LOG_FILE)
        text = rows_to_csv(state["history"])
        try:
            with open(log, encoding="utf-8", newline="") as f:
                current = f.read()
        except (OSError, ValueError):  # Missing, or not UTF-8.
            current = None
        if current != text:
            _io.atomic_write_text(log, text)
        if os.path.isfile(os.path.join(checkpoints, state["checkpoint"])):
            cls._prune(checkpoints, state["checkpoint"], keep)
        return state

    def on_train_begin(self, logs=None):
        os.makedirs(os.path.join(self.directory, self.CHECKPOINT_DIR), exist_ok=True)
        state = self.recover(self.directory, keep=self.keep)
        self._rows = list(state.get("history", [])) if state else []

    def _current_learning_rate(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        try:
            return _as_float(optimizer.learning_rate)
        except Exception:  # noqa: BLE001 - exotic optimizers.
            return None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()
        self._learning_rate = self._current_learning_rate()

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        loss = _as_float(logs.get("loss", 0.0))
        if loss is None or not math.isfinite(loss):
            self.nonfinite_epoch = epoch
            self.model.stop_training = True
            return
        if self._learning_rate is not None:
            logs.setdefault("learning_rate", self._learning_rate)
        row = {"epoch": epoch}
        for key, value in logs.items():
            value = _as_float(value)
            if value is not None:
                row[key] = value
        row["epoch_time"] = time.time() - (self._epoch_start or time.time())
        rows = [r for r in self._rows if r["epoch"] < epoch] + [row]

        done = epoch + 1
        name = f"epoch_{done:04d}.keras"
        checkpoints = os.path.join(self.directory, self.CHECKPOINT_DIR)
        _io.atomic_save_model(self.model, os.path.join(checkpoints, name))
        state = dict(self.metadata)
        state.update(
            epochs_completed=done,
            checkpoint=name,
            model_class=type(self.model).__name__,
            history=rows,
        )
        _io.atomic_write_json(os.path.join(self.directory, self.STATE_FILE), state)
        self._rows = rows
        _io.atomic_write_text(
            os.path.join(self.directory, self.LOG_FILE), rows_to_csv(rows)
        )
        self._prune(checkpoints, name, self.keep)

    @staticmethod
    def _prune(checkpoints, current, keep):
        """Deletes the checkpoints but `current` and the `keep - 1` before it."""
        names = sorted(
            n for n in os.listdir(checkpoints)
            if n.startswith("epoch_") and n.endswith(".keras")
        )
        keep = set([n for n in names if n <= current][-keep:])
        for n in names:
            if n not in keep:
                try:
                    os.remove(os.path.join(checkpoints, n))
                except OSError:
                    pass


def rows_to_csv(rows):
    """Formats per-epoch log rows (dicts) as CSV text, `epoch` first."""
    keys = []
    for row in rows:
        for key in row:
            if key not in keys:
                keys.append(key)
    keys = ["epoch"] + sorted(k for k in keys if k != "epoch")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in keys})
    return buffer.getvalue()
