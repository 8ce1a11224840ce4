"""`EpochCheckpoint`: the per-epoch commit, restore, and what a crash leaves."""

import csv
import json
import os

import numpy as np
import pytest

from keras_ahbf import _io
from keras_ahbf.callbacks import EpochCheckpoint
from keras_ahbf.testing.test_utils import to_numpy


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_epoch_checkpoint_commits_and_restores(tmp_path, data, make_model):
    x, y = data
    run = str(tmp_path / "run")
    # A temporary file left by a killed process is deleted on start.
    os.makedirs(os.path.join(run, "checkpoints"))
    stale = os.path.join(run, "checkpoints", ".epoch_0001.tmp-abc.keras")
    open(stale, "wb").write(b"half a zip")
    model = make_model(num_branches=2)
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


def test_nonfinite_epoch_is_not_committed(tmp_path, data, make_model):
    x, y = data
    run = str(tmp_path / "run")
    model = make_model(num_branches=2)
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


def test_crash_during_commit_leaves_the_previous_state(tmp_path, data, make_model, monkeypatch):
    """A failure between the checkpoint and the state commit loses only that epoch."""
    x, y = data
    run = str(tmp_path / "run")
    model = make_model(num_branches=2)
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
