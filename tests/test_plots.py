"""Tests for keras_ahbf.plots (no training: synthetic logs)."""

import json
import os

import matplotlib
import pytest

from keras_ahbf import callbacks
from keras_ahbf import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rows(epochs=4, levels=2):
    rows = []
    for e in range(epochs):
        row = {"epoch": e, "loss": 5.0 / (e + 1), "ce": 4.0 / (e + 1), "kd_branch": 0.5,
               "kd_ta": 0.3, "l2": 0.1, "rampup_weight": 0.1 * e, "learning_rate": 0.1}
        for b in range(levels + 1):
            row[f"branch_{b}_accuracy"] = 0.2 + 0.1 * e + 0.01 * b
            row[f"val_branch_{b}_accuracy"] = 0.15 + 0.1 * e
        for m in range(1, levels + 1):
            row[f"ta_{m}_accuracy"] = 0.3 + 0.1 * e
            row[f"val_ta_{m}_accuracy"] = 0.25 + 0.1 * e
            row[f"fusion_{m}_weight"] = 0.5 + 0.05 * e
            row[f"val_fusion_{m}_weight"] = 0.5 - 0.05 * e
            row[f"fusion_{m}_weight_infer"] = 0.5 - 0.04 * e
        rows.append(row)
    return rows


def _check_pngs(paths):
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC
        assert os.path.getsize(path) > 5000


def test_plot_history_writes_the_four_pngs(tmp_path):
    backend_before = matplotlib.get_backend()
    paths = plots.plot_history(_rows(), str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in paths] == [
        "accuracy.png", "loss.png", "fusion_weights.png", "learning_rate.png"
    ]
    _check_pngs(paths)
    # No pyplot state is touched: the user's matplotlib backend is unchanged.
    assert matplotlib.get_backend() == backend_before
    assert not [n for n in os.listdir(tmp_path / "plots") if n.startswith(".")]


def test_plot_run_from_state_or_csv(tmp_path):
    rows = _rows(epochs=3, levels=3)
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text(json.dumps({"epochs_completed": 3, "history": rows}))
    paths = plots.plot_run(str(run))
    assert all(p.startswith(str(run / "plots")) for p in paths)
    _check_pngs(paths)
    # Only a CSV log (e.g. written by keras.callbacks.CSVLogger-like tools).
    csv_run = tmp_path / "csv_run"
    csv_run.mkdir()
    (csv_run / "log.csv").write_text(callbacks.rows_to_csv(rows))
    assert plots.load_rows(str(csv_run))[2]["val_ta_3_accuracy"] == pytest.approx(
        rows[2]["val_ta_3_accuracy"]
    )
    _check_pngs(plots.plot_run(str(csv_run), str(tmp_path / "out")))


def test_history_rows():
    class FakeHistory:
        epoch = [3, 4]
        history = {"loss": [1.0, 0.5], "branch_0_accuracy": [0.1, 0.2]}

    assert plots.history_rows(FakeHistory()) == [
        {"epoch": 3, "loss": 1.0, "branch_0_accuracy": 0.1},
        {"epoch": 4, "loss": 0.5, "branch_0_accuracy": 0.2},
    ]
    assert plots.history_rows({"loss": [2.0]}) == [{"epoch": 0, "loss": 2.0}]


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="no completed epochs"):
        plots.plot_history([], str(tmp_path))
    with pytest.raises(FileNotFoundError, match="state.json or log.csv"):
        plots.plot_run(str(tmp_path))
