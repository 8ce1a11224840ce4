"""Tests for keras_ahbf.plots (no training: synthetic logs)."""

import json
import os

import matplotlib
import pytest

from keras_ahbf import plots
from keras_ahbf import runs

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
    (csv_run / "log.csv").write_text(runs.rows_to_csv(rows))
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


def _rows_with_terms(epochs=5, branches=3):
    rows = _rows(epochs=epochs, levels=branches - 1)
    for e, row in enumerate(rows):
        for b in range(branches):
            row[f"ce_branch_{b}"] = 2.0 / (e + 1) + 0.1 * b
        for m in range(1, branches):
            row[f"ce_ta_{m}"] = 1.8 / (e + 1)
        row["rampup_weight"] = 0.5 * (e / (epochs - 1)) ** 2
    return rows


def test_loss_terms_figure(tmp_path):
    rows = _rows_with_terms()
    paths = plots.plot_history(rows, str(tmp_path / "a"))
    assert [os.path.basename(p) for p in paths] == [
        "accuracy.png", "loss.png", "loss_terms.png", "fusion_weights.png", "learning_rate.png"
    ]
    _check_pngs(paths)
    # With the run's weights from config.json, the terms as they enter the loss.
    factors = plots._kd_factors(rows, {"kd_weight": 1.5, "lambda_branch": 4.0, "lambda_ta": 2.0})
    assert factors["kd_branch"] == ("w(epoch) * 6 * kd_branch", 6.0, True)
    assert factors["kd_ta"] == ("w(epoch) * 3 * kd_ta", 3.0, True)
    # Without a ramp-up column or a config: the raw terms.
    bare = [{k: v for k, v in r.items() if k != "rampup_weight"} for r in rows]
    assert plots._kd_factors(bare, None)["kd_ta"] == ("kd_ta", 1.0, False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text(runs.rows_to_csv(bare))
    (run / "config.json").write_text(json.dumps({"config": {"kd_weight": 1.0}}))
    assert "loss_terms.png" in [os.path.basename(p) for p in plots.plot_run(str(run))]


def test_baseline_log_has_no_fusion_figure(tmp_path):
    rows = [{"epoch": e, "loss": 1.0 / (e + 1), "branch_0_accuracy": 0.1 * e,
             "val_branch_0_accuracy": 0.1 * e, "learning_rate": 0.1} for e in range(3)]
    paths = plots.plot_history(rows, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == [
        "accuracy.png", "loss.png", "learning_rate.png"
    ]
    _check_pngs(paths)


def test_dml_log_draws_every_peer_and_the_ensemble(tmp_path):
    rows = [{"epoch": e, "loss": 1.0, "learning_rate": 0.1,
             **{f"{p}{k}": 0.1 * e for k in ("peer_0_accuracy", "peer_1_accuracy",
                                              "ensemble_accuracy") for p in ("", "val_")}}
            for e in range(3)]
    assert plots._accuracy_names(rows) == [
        "peer_0_accuracy", "peer_1_accuracy", "ensemble_accuracy"]
    paths = plots.plot_history(rows, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == [
        "accuracy.png", "loss.png", "learning_rate.png"]
    _check_pngs(paths)
