"""The run directory (`keras_ahbf.runs`) and the atomic writers (`keras_ahbf._io`).

Nothing here builds a model: run directories are written by hand.
"""

import json
import os

import pytest

from keras_ahbf import _io
from keras_ahbf import callbacks as ahbf_callbacks
from keras_ahbf import runs


def test_rows_to_csv():
    text = ahbf_callbacks.rows_to_csv([{"epoch": 0, "b": 1.0}, {"epoch": 1, "a": 2.0, "b": 3.0}])
    assert text.splitlines() == ["epoch,a,b", "0,,1.0", "1,2.0,3.0"]


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


# ------------------------------------------------------------------ runs


def _state(tmp_path, **overrides):
    state = {"epochs_completed": 2, "checkpoint": "epoch_0002.keras", "model_class": "X",
             "history": [{"epoch": 0, "loss": 2.0}, {"epoch": 1, "loss": 1.0}]}
    state.update(overrides)
    _io.atomic_write_json(str(tmp_path / "state.json"), state)
    return state


def test_read_state(tmp_path):
    assert runs.read_state(str(tmp_path)) is None
    state = _state(tmp_path)
    assert runs.read_state(str(tmp_path)) == state
    _state(tmp_path, checkpoint="../x.keras")
    with pytest.raises(_io.CorruptFileError, match=r"checkpoint='\.\./x\.keras'"):
        runs.read_state(str(tmp_path))
    _state(tmp_path, epochs_completed=0)
    with pytest.raises(ValueError, match="epochs_completed=0"):
        runs.read_state(str(tmp_path))


def test_recover_rewrites_the_log_and_prunes(tmp_path):
    state = _state(tmp_path)
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for n in (1, 2, 3):  # 3: written, killed before its commit.
        (checkpoints / runs.checkpoint_name(n)).write_bytes(b"model")
    (tmp_path / "log.csv").write_text("epoch,loss\n0,2.0\n")  # One epoch behind.
    assert runs.recover(str(tmp_path)) == state
    assert (tmp_path / "log.csv").read_text() == runs.rows_to_csv(state["history"])
    assert os.listdir(checkpoints) == ["epoch_0002.keras"]
    # Idempotent.
    assert runs.recover(str(tmp_path)) == state
    assert os.listdir(checkpoints) == ["epoch_0002.keras"]


def test_restore_of_a_missing_checkpoint(tmp_path):
    assert runs.restore(str(tmp_path)) == (None, None)
    _state(tmp_path)
    with pytest.raises(FileNotFoundError, match="epoch_0002.keras"):
        runs.restore(str(tmp_path))


def test_config_differences():
    saved = {"epochs": 2, "lr": 0.1}
    assert runs.config_differences(saved, {"epochs": 2, "lr": 0.1}) == []
    assert runs.config_differences(saved, {"epochs": 3, "lr": 0.1}) == [
        "--epochs 2 (this command: 3)"
    ]
    # An option newer than the saved run counts at its default.
    current = {"epochs": 2, "lr": 0.1, "baseline": False}
    assert runs.config_differences(saved, current, {"baseline": False}) == []
    assert runs.config_differences(saved, {**current, "baseline": True}, {"baseline": False}) == [
        "--baseline False (this command: True)"
    ]


def test_is_foreign_directory(tmp_path):
    assert not runs.is_foreign_directory(str(tmp_path / "missing"))
    assert not runs.is_foreign_directory(str(tmp_path))
    (tmp_path / f".config{_io.TMP_MARKER}1-x.json").write_text("{")
    assert not runs.is_foreign_directory(str(tmp_path))
    (tmp_path / "notes.txt").write_text("mine")
    assert runs.is_foreign_directory(str(tmp_path))
    runs.write_config(str(tmp_path), {"epochs": 1})
    assert not runs.is_foreign_directory(str(tmp_path))
    assert runs.read_config(str(tmp_path)) == {"config": {"epochs": 1}}


class _Config:
    dataset, backbone, epochs, baseline = "digits", "resnet8", 2, False

    def to_dict(self):
        return {"dataset": self.dataset}


def test_summarize():
    rows = [
        {"epoch": 0, "val_branch_0_accuracy": 0.5, "val_branch_1_accuracy": 0.4,
         "val_ta_1_accuracy": 0.6, "val_fusion_1_weight": 0.3, "epoch_time": 2.0},
        {"epoch": 1, "val_branch_0_accuracy": 0.4, "val_branch_1_accuracy": 0.5,
         "val_ta_1_accuracy": 0.7, "val_fusion_1_weight": 0.25, "epoch_time": 3.0},
    ]
    summary = runs.summarize(_Config(), {"epochs_completed": 2, "history": rows}, "jax")
    assert summary["target_top1_last"] == 0.4 and summary["target_top1_best"] == 0.5
    assert summary["best_epoch"] == 1 and summary["train_time_seconds"] == 5.0
    assert summary["branch_top1"]["branch_1"] == {"last": 0.5, "best": 0.5}
    assert summary["teacher_top1"] == {"ta_1": {"last": 0.7, "best": 0.7}}
    assert summary["fusion_weights"]["fusion_1"]["test"] == [0.25, 0.75]
    assert summary["evaluated_on"] == "test" and summary["kind"] == "ahbf"
    # A baseline: the target branch only, evaluated on a validation split.
    config = _Config()
    config.baseline = True
    rows = [{"epoch": 0, "val_branch_0_accuracy": 0.5, "loss": 1.0}]
    summary = runs.summarize(config, {"epochs_completed": 1, "history": rows}, "jax",
                             evaluated_on="validation")
    assert summary["kind"] == "baseline" and summary["evaluated_on"] == "validation"
    assert set(summary["branch_top1"]) == {"branch_0"}
    assert summary["teacher_top1"] == {} and summary["fusion_weights"] == {}


def test_rows_to_csv_is_reexported():
    assert ahbf_callbacks.rows_to_csv is runs.rows_to_csv


def test_runs_imports_no_backend():
    import subprocess
    import sys

    code = ("import sys, keras_ahbf.runs, keras_ahbf.plots; "
            "print([m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
