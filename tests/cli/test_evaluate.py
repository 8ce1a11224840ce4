"""`keras-ahbf evaluate` on a run directory and on `.keras` files."""

import json
import os

import pytest

from keras_ahbf import cli


def test_evaluate_run_and_target(run_dir, tmp_path, capsys):
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    report_path = str(tmp_path / "eval.json")
    assert cli.main(["evaluate", run_dir, "--test-limit", "32", "--json", report_path]) == 0
    out = capsys.readouterr().out
    assert "branch_1" in out and "ta_1 (fused teacher)" in out and "fusion level 1" in out
    report = json.load(open(report_path))
    assert report["dataset"] == "digits" and report["test_examples"] == 32
    # Same weights, same 32 test images as the last validation of training.
    assert report["target_top1"] == pytest.approx(summary["target_top1_last"], abs=1e-6)
    assert report["metrics"]["branch_1_accuracy"] == pytest.approx(
        summary["branch_top1"]["branch_1"]["last"], abs=1e-6
    )

    target_report = str(tmp_path / "target.json")
    assert cli.main(["evaluate", os.path.join(run_dir, "target.keras"), "--dataset", "digits",
                     "--test-limit", "32", "--json", target_report]) == 0
    assert json.load(open(target_report))["target_top1"] == pytest.approx(
        summary["target_top1_last"], abs=1e-6
    )


def test_evaluate_errors(run_dir, tmp_path, one_line_error):
    target = os.path.join(run_dir, "target.keras")
    one_line_error(2, cli.main(["evaluate", target]))  # No --dataset.
    # A data set of another image shape is refused before any data is read.
    err = one_line_error(2, cli.main(["evaluate", target, "--dataset", "cifar10",
                                      "--data-dir", str(tmp_path / "none")]))
    assert "(8, 8, 1)" in err
    one_line_error(2, cli.main(["evaluate", str(tmp_path / "missing.keras"),
                                "--dataset", "digits"]))


def test_evaluate_json_below_a_file_is_refused(run_dir, tmp_path, one_line_error):
    (tmp_path / "f").write_text("x")
    err = one_line_error(2, cli.main(["evaluate", run_dir, "--json",
                                      str(tmp_path / "f" / "r.json")]))
    assert "--json" in err and "file" in err
