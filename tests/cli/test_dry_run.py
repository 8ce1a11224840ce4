"""`keras-ahbf train --dry-run`: every check of a run, nothing built or written."""

import json
import os

import numpy as np
import pytest

from keras_ahbf import _io
from keras_ahbf import cli
from keras_ahbf import runs
from keras_ahbf import training
from keras_ahbf.testing.data_files import tiny_cifar_npz


def _tree(root):
    return sorted(
        (os.path.relpath(os.path.join(d, n), root), os.stat(os.path.join(d, n)).st_mtime_ns)
        for d, dirs, files in os.walk(root) for n in dirs + files
    )


@pytest.fixture
def npz(tmp_path):
    return tiny_cifar_npz(tmp_path / "tiny.npz")


def test_dry_run_prints_the_plan_and_the_configuration_and_writes_nothing(
    tmp_path, npz, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    output = tmp_path / "missing" / "run"
    rc = cli.main(["train", "--dataset", "cifar10", "--data-dir", npz, "--epochs", "3",
                   "--batch-size", "4", "--lr", "0.05", "--output", str(output), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    assert _tree(tmp_path) == before  # Not even the missing parents.
    assert out.startswith("Dry run (no model built, nothing written): would train 3 epochs")
    assert "8 training examples (2 step(s) of 4 per epoch), 4 test examples" in out
    config = training.resolve_config("cifar10", data_dir=npz, epochs=3, batch_size=4, lr=0.05)
    for key, value in config.to_dict().items():
        assert f"    {key} " in out and repr(value) in out
    assert len(out.splitlines()) < 50  # One screen.

    # The default output (runs/<dataset>-<backbone>-seed<seed>) is not created either.
    assert cli.main(["train", "--dataset", "digits", "--train-limit", "64", "--dry-run"]) == 0
    assert "runs/digits-resnet8-seed0" in capsys.readouterr().out
    assert _tree(tmp_path) == before


def test_dry_run_reports_a_run_to_resume_and_checks_its_checkpoint(tmp_path, npz, capsys):
    output = str(tmp_path / "run")
    options = ["--dataset", "cifar10", "--data-dir", npz, "--epochs", "2"]
    config = training.resolve_config("cifar10", data_dir=npz, epochs=2)
    runs.write_config(output, config.to_dict())
    state = {"epochs_completed": 1, "checkpoint": "epoch_0001.keras", "history": [{}]}
    _io.atomic_write_json(os.path.join(output, runs.STATE_FILE), state)
    argv = ["train", *options, "--output", output, "--dry-run"]

    # The checkpoint state.json names is missing: refused, as a real run would.
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "epoch_0001.keras" in err and len(err.strip().splitlines()) == 1

    os.makedirs(os.path.join(output, runs.CHECKPOINT_DIR))
    with open(os.path.join(output, runs.CHECKPOINT_DIR, "epoch_0001.keras"), "wb"):
        pass
    before = _tree(tmp_path)
    assert cli.main(argv) == 0
    assert f"would resume {output} after epoch 1 of 2" in capsys.readouterr().out
    assert _tree(tmp_path) == before

    # Other options: refused, naming the difference.
    assert cli.main(argv[:-1] + ["--seed", "1", "--dry-run"]) == 2
    assert "--seed 0 (this command: 1)" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_dry_run_checks_the_data(tmp_path, capsys, one_line_error):
    bad = tiny_cifar_npz(tmp_path / "bad.npz", y_train=np.full(8, 10))  # Labels 0..9.
    output = tmp_path / "run"
    rc = cli.main(["train", "--dataset", "cifar10", "--data-dir", bad, "--output",
                   str(output), "--dry-run"])
    assert "label" in one_line_error(2, rc)
    assert not output.exists()


def test_dry_run_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "--dry-run" in capsys.readouterr().out


@pytest.mark.large
def test_the_run_after_a_dry_run_has_the_configuration_it_printed(tmp_path, tiny, capsys):
    output = str(tmp_path / "run")
    argv = ["train", *tiny, "--epochs", "1", "--output", output]
    assert cli.main(argv + ["--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert not os.path.exists(output)
    assert cli.main(argv) == 0
    with open(os.path.join(output, runs.CONFIG_FILE)) as f:
        saved = json.load(f)["config"]
    for key, value in saved.items():
        assert f"    {key} " in printed and repr(value) in printed
