"""Tests for keras_ahbf.callbacks and the atomic writers in keras_ahbf._io."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from keras_ahbf import _io
from keras_ahbf import callbacks as ahbf_callbacks
from keras_ahbf import training
from keras_ahbf.callbacks import EpochCheckpoint
from keras_ahbf.callbacks import FusionWeightLogger
from tests.conftest import learnable_images
from tests.conftest import to_numpy
from tests.test_training import FAST


def _model(num_branches=3, rampup=4):
    config = training.resolve_config(
        "cifar10", backbone="resnet8", num_branches=num_branches, aux=1,
        epochs=4, rampup_epochs=rampup, batch_size=32,
    )
    model = training.build_model(config, num_classes=4, input_shape=(8, 8, 3))
    return training.compile_model(model, config, steps=2, **FAST)


@pytest.fixture(scope="module")
def data():
    return learnable_images(n=64, size=8, num_classes=4)


# --------------------------------------- RampupCallback, FusionWeightLogger


class _EpochSpy(keras.callbacks.Callback):
    """Records the model's ramp-up epoch after `RampupCallback` set it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        # Runs after RampupCallback (which fit puts first).
        self.seen.append(int(to_numpy(self.model.epoch)))


def test_rampup_and_fusion_weight_logger(data):
    x, y = data
    model = _model(num_branches=3, rampup=4)
    probe = x[:12]  # Two batches of 8: the logger batches its inference pass.
    spy = _EpochSpy()
    logger = FusionWeightLogger(probe, batch_size=8)
    plain = FusionWeightLogger()
    history = model.fit(
        x, y, batch_size=32, epochs=4, initial_epoch=2, validation_data=(x[:32], y[:32]),
        callbacks=[spy, plain, logger], verbose=0,
    )
    # The ramp-up follows initial_epoch.
    assert spy.seen == [2, 3]
    expected = [0.5 * np.exp(-5.0 * (1 - min(e, 4) / 4) ** 2) for e in (2, 3)]
    np.testing.assert_allclose(history.history["rampup_weight"], expected, rtol=1e-5)

    assert logger.epochs == [2, 3]
    assert sorted(logger.weights) == ["fusion_1", "fusion_2"]
    for m in (1, 2):
        record = logger.weights[f"fusion_{m}"]
        assert set(record) == {"train", "val", "infer", "infer_std"}
        assert all(len(v) == 2 for v in record.values())
        # Reached History (and so TensorBoard/CSVLogger placed after it).
        np.testing.assert_allclose(history.history[f"fusion_{m}_weight_infer"], record["infer"])
        np.testing.assert_allclose(history.history[f"fusion_{m}_weight"], record["train"])
        np.testing.assert_allclose(history.history[f"val_fusion_{m}_weight"], record["val"])
        # The last epoch's value is the inference-mode mean over the probe,
        # recomputed here independently.
        w = to_numpy(model.all_outputs(probe, training=False)["fusion_weights"][m - 1])
        assert record["infer"][-1] == pytest.approx(float(np.mean(w[:, 0])), abs=1e-5)
        assert record["infer_std"][-1] == pytest.approx(float(np.std(w[:, 0])), abs=1e-5)
        assert 0.0 <= record["infer"][-1] <= 1.0
        # Without probe images only the metrics are collected (`plain` runs
        # before `logger`, so it does not see what `logger` adds).
        assert set(plain.weights[f"fusion_{m}"]) == {"train", "val"}


def test_fusion_weight_logger_validation():
    with pytest.raises(ValueError, match="batch_size"):
        FusionWeightLogger(batch_size=0)


# ------------------------------------------------------- EpochCheckpoint


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_epoch_checkpoint_commits_and_restores(tmp_path, data):
    x, y = data
    run = str(tmp_path / "run")
    # A temporary file left by a killed process is deleted on start.
    os.makedirs(os.path.join(run, "checkpoints"))
    stale = os.path.join(run, "checkpoints", ".epoch_0001.tmp-abc.keras")
    open(stale, "wb").write(b"half a zip")
    model = _model(num_branches=2)
    ckpt = EpochCheckpoint(run, metadata={"epochs_planned": 3})
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[ckpt], verbose=0)
    assert not os.path.exists(stale)

    state = json.load(open(os.path.join(run, "state.json")))
    assert state["epochs_completed"] == 2 and state["epochs_planned"] == 3
    assert state["checkpoint"] == "epoch_0002.keras"
    assert [r["epoch"] for r in state["history"]] == [0, 1]
    assert all("learning_rate" in r and "epoch_time" in r for r in state["history"])
    assert os.listdir(os.path.join(run, "checkpoints")) == ["epoch_0002.keras"]
    rows = _read_csv(os.path.join(run, "log.csv"))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(rows[1]["loss"]) == pytest.approx(state["history"][1]["loss"])

    restored, state2 = EpochCheckpoint.restore(run)
    assert state2 == state
    assert int(to_numpy(restored.optimizer.iterations)) == int(to_numpy(model.optimizer.iterations)) == 4
    for a, b in zip(restored.weights, model.weights):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)

    # Continue: the log grows by one row per epoch; `keep` checkpoints kept.
    restored.fit(x, y, batch_size=32, epochs=4, initial_epoch=2,
                 callbacks=[EpochCheckpoint(run, keep=2)], verbose=0)
    assert [int(r["epoch"]) for r in _read_csv(os.path.join(run, "log.csv"))] == [0, 1, 2, 3]
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == [
        "epoch_0003.keras", "epoch_0004.keras"
    ]
    assert EpochCheckpoint.read_state(run)["epochs_completed"] == 4


def test_nonfinite_epoch_is_not_committed(tmp_path, data):
    x, y = data
    run = str(tmp_path / "run")
    model = _model(num_branches=2)
    ckpt = EpochCheckpoint(run)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[ckpt], verbose=0)
    # Poison a weight: the next epoch's loss is NaN.
    kernel = model.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
    model.fit(x, y, batch_size=32, epochs=3, initial_epoch=1, callbacks=[ckpt], verbose=0)
    assert ckpt.nonfinite_epoch == 1
    state = EpochCheckpoint.read_state(run)
    assert state["epochs_completed"] == 1 and len(state["history"]) == 1
    assert os.listdir(os.path.join(run, "checkpoints")) == ["epoch_0001.keras"]


def test_crash_during_commit_leaves_the_previous_state(tmp_path, data, monkeypatch):
    """A failure between the checkpoint and the state commit loses only that epoch."""
    x, y = data
    run = str(tmp_path / "run")
    model = _model(num_branches=2)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[EpochCheckpoint(run)], verbose=0)
    before = open(os.path.join(run, "state.json")).read()
    before_csv = open(os.path.join(run, "log.csv")).read()

    real_write = _io.atomic_write_text

    def crash(path, text):
        if path.endswith("state.json"):
            # Die half-way through writing the temporary file.
            with _io.atomic_path(path) as tmp:
                with open(tmp, "w") as f:
                    f.write(text[: len(text) // 2])
                raise KeyboardInterrupt("simulated kill")
        return real_write(path, text)

    monkeypatch.setattr(_io, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=32, epochs=2, initial_epoch=1,
                  callbacks=[EpochCheckpoint(run)], verbose=0)
    monkeypatch.undo()
    assert open(os.path.join(run, "state.json")).read() == before
    assert open(os.path.join(run, "log.csv")).read() == before_csv
    assert not [n for n in os.listdir(run) if _io.TMP_MARKER in n]
    # The orphan checkpoint of the uncommitted epoch is harmless: resuming
    # starts from the committed one and overwrites it.
    restored, state = EpochCheckpoint.restore(run)
    assert state["epochs_completed"] == 1
    restored.fit(x, y, batch_size=32, epochs=2, initial_epoch=1,
                 callbacks=[EpochCheckpoint(run)], verbose=0)
    assert EpochCheckpoint.read_state(run)["epochs_completed"] == 2
    assert os.listdir(os.path.join(run, "checkpoints")) == ["epoch_0002.keras"]


def test_restore_without_state(tmp_path):
    assert EpochCheckpoint.restore(str(tmp_path)) == (None, None)


def test_epoch_checkpoint_validation(tmp_path):
    with pytest.raises(ValueError, match="keep"):
        EpochCheckpoint(str(tmp_path), keep=0)


def test_rows_to_csv():
    text = ahbf_callbacks.rows_to_csv([{"epoch": 0, "b": 1.0}, {"epoch": 1, "a": 2.0, "b": 3.0}])
    assert text.splitlines() == ["epoch,a,b", "0,,1.0", "1,2.0,3.0"]


# ------------------------------------------------------------------- _io


def test_atomic_path_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "x.json"
    _io.atomic_write_json(str(path), {"a": 1})
    with pytest.raises(RuntimeError):
        with _io.atomic_path(str(path)) as tmp:
            with open(tmp, "w") as f:
                f.write("{broken")
            raise RuntimeError("boom")
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["x.json"]


def test_atomic_json_is_strict(tmp_path):
    path = str(tmp_path / "y.json")
    _io.atomic_write_json(path, {"nan": float("nan"), "ok": [1.5, float("inf")]})
    assert json.loads(open(path).read()) == {"nan": None, "ok": [1.5, None]}
    assert _io.read_json(str(tmp_path / "missing.json")) is None


def test_temporary_path_keeps_the_extension(tmp_path):
    tmp = _io.temporary_path(str(tmp_path / "model.keras"))
    assert tmp.endswith(".keras") and _io.TMP_MARKER in os.path.basename(tmp)
    assert os.path.dirname(tmp) == str(tmp_path)
    assert _io.temporary_path(str(tmp_path / "m.weights.h5")).endswith(".weights.h5")
