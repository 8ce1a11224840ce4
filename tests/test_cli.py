"""End-to-end tests of the `keras-ahbf` command on tiny data.

Most tests call `keras_ahbf.cli.main([...])` in-process; the resume test runs
the command in a subprocess and kills it with SIGKILL in the middle of an
epoch.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from keras_ahbf import cli
from keras_ahbf import _io
from tests.conftest import to_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--dataset", "digits", "--train-limit", "64", "--test-limit", "32",
    "--backbone", "resnet8", "--num-branches", "2", "--aux", "1",
    "--batch-size", "32", "--verbose", "0",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# For paths that are the same on every backend (argument handling, exit
# codes), one backend is enough; they cost a model compilation each.
backend_independent = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="backend-independent code path; tested on TensorFlow",
)


def _csv_epochs(run):
    with open(os.path.join(run, "log.csv"), newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _one_line_error(capsys, code, rc):
    err = capsys.readouterr().err.strip()
    assert rc == code, err
    assert err.startswith("keras-ahbf ") and "error:" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("cli") / "run")
    assert cli.main(["train", *TINY, "--epochs", "2", "--output", run]) == 0
    return run


# ------------------------------------------------------------------ train


def test_train_writes_every_output(run_dir):
    names = set(os.listdir(run_dir))
    assert {"config.json", "state.json", "log.csv", "summary.json", "target.keras",
            "checkpoints"} <= names
    assert not [n for n in names if _io.TMP_MARKER in n]
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == ["epoch_0002.keras"]
    if cli.tensorboard_available():
        events = [f for _, _, files in os.walk(os.path.join(run_dir, "tensorboard"))
                  for f in files if f.startswith("events.out.tfevents")]
        assert events

    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["epochs_completed"] == summary["epochs_planned"] == 2
    for key in ("target_top1_last", "target_top1_best"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["target_top1_best"] >= summary["target_top1_last"]
    assert set(summary["branch_top1"]) == {"branch_0", "branch_1"}
    assert set(summary["teacher_top1"]) == {"ta_1"}
    assert summary["branch_top1"]["branch_0"]["last"] == summary["target_top1_last"]
    w = summary["fusion_weights"]["fusion_1"]["test"]
    assert len(w) == 2 and sum(w) == pytest.approx(1.0) and 0.0 <= w[0] <= 1.0
    assert summary["backend"] == keras.backend.backend()

    state = json.load(open(os.path.join(run_dir, "state.json")))
    assert state["epochs_completed"] == 2
    assert _csv_epochs(run_dir) == [0, 1]
    # Scaled recipe: 30-epoch digits recipe scaled to 2 epochs.
    config = json.load(open(os.path.join(run_dir, "config.json")))["config"]
    assert config["milestones"] == [1] and config["rampup_epochs"] == 2
    # Learning rate per epoch follows the milestones.
    assert [r["learning_rate"] for r in state["history"]] == pytest.approx([0.1, 0.01])

    # The exported target network is the trained branch 0.
    target = keras.saving.load_model(os.path.join(run_dir, "target.keras"))
    full = keras.saving.load_model(os.path.join(run_dir, "checkpoints", "epoch_0002.keras"))
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(to_numpy(target(x)), to_numpy(full(x)), rtol=1e-4, atol=1e-4)
    assert len(target.layers) < len(full.trunk.layers) + 4  # No fusion, no branch 1.


def test_rerunning_a_finished_run_changes_nothing(run_dir, capsys):
    before = open(os.path.join(run_dir, "state.json")).read()
    assert cli.main(["train", *TINY, "--epochs", "2", "--output", run_dir]) == 0
    out = capsys.readouterr().out
    assert "already completed" in out and "branch_0 (target)" in out
    assert open(os.path.join(run_dir, "state.json")).read() == before


def test_other_options_on_an_existing_run_are_refused(run_dir, capsys):
    rc = cli.main(["train", *TINY, "--epochs", "3", "--output", run_dir])
    err = _one_line_error(capsys, 2, rc)
    assert "--epochs 2 (this command: 3)" in err


# --------------------------------------------------- evaluate/export/plot


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


def test_evaluate_errors(run_dir, tmp_path, capsys):
    target = os.path.join(run_dir, "target.keras")
    _one_line_error(capsys, 2, cli.main(["evaluate", target]))  # No --dataset.
    # A data set of another image shape is refused before any data is read.
    err = _one_line_error(capsys, 2, cli.main(["evaluate", target, "--dataset", "cifar10",
                                               "--data-dir", str(tmp_path / "none")]))
    assert "(8, 8, 1)" in err
    _one_line_error(capsys, 2, cli.main(["evaluate", str(tmp_path / "missing.keras"),
                                         "--dataset", "digits"]))


def _dead_pid():
    """A process id that no running process has."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_export(run_dir, tmp_path, capsys):
    out = str(tmp_path / "export" / "resnet8.keras")
    # What an export killed by SIGKILL leaves: a temporary SavedModel folder
    # of a dead process, which the next export deletes.
    stale = tmp_path / "export" / f".resnet8_savedmodel{_io.TMP_MARKER}{_dead_pid()}-x1y2"
    os.makedirs(stale / "variables")
    (stale / "saved_model.pb").write_bytes(b"half")
    assert cli.main(["export", run_dir, "--output", out]) == 0
    printed = capsys.readouterr().out
    exported = keras.saving.load_model(out)
    reference = keras.saving.load_model(os.path.join(run_dir, "target.keras"))
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(to_numpy(exported(x)), to_numpy(reference(x)), rtol=1e-5, atol=1e-5)
    saved_model = str(tmp_path / "export" / "resnet8_savedmodel")
    if keras.backend.backend() in ("tensorflow", "jax"):
        assert os.path.isfile(os.path.join(saved_model, "saved_model.pb")), printed
        import tensorflow as tf

        reloaded = tf.saved_model.load(saved_model)
        np.testing.assert_allclose(
            np.asarray(reloaded.serve(x)), to_numpy(reference(x)), rtol=1e-4, atol=1e-4
        )
    else:
        # PyTorch's SavedModel export needs torch_xla; the .keras file is
        # still written and the command succeeds.
        assert "SavedModel" in printed
    assert not [n for n in os.listdir(tmp_path / "export") if _io.TMP_MARKER in n]


def test_export_without_saved_model(run_dir, tmp_path):
    out = str(tmp_path / "t.keras")
    assert cli.main(["export", run_dir, "--output", out, "--no-saved-model"]) == 0
    assert os.listdir(tmp_path) == ["t.keras"]


def test_plot(run_dir, tmp_path, capsys):
    out = str(tmp_path / "plots")
    assert cli.main(["plot", run_dir, "--output", out]) == 0
    names = sorted(os.listdir(out))
    assert names == ["accuracy.png", "fusion_weights.png", "learning_rate.png", "loss.png"]
    for name in names:
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == PNG_MAGIC
    _one_line_error(capsys, 2, cli.main(["plot", str(tmp_path / "nothing")]))


# ------------------------------------------------- bad data, bad options


def _write_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, 8),
        x_test=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, 4),
    )
    arrays.update(overrides)
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "does not exist"),
        ("label", "label 10"),
        ("channels_first", "channels"),
        ("nan", "NaN"),
    ],
)
def test_bad_data_is_a_one_line_error_before_training(tmp_path, capsys, case, expected):
    rng = np.random.default_rng(0)
    if case == "missing":
        data_dir = str(tmp_path / "no_such_dir")
    elif case == "label":
        data_dir = _write_npz(tmp_path / "c.npz", y_train=np.array([0, 1, 2, 10, 4, 5, 6, 7]))
    elif case == "channels_first":
        data_dir = _write_npz(
            tmp_path / "c.npz", x_train=rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
        )
    else:
        x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
        x[2, 5, 5, 0] = np.nan
        data_dir = _write_npz(tmp_path / "c.npz", x_train=x)
    out = str(tmp_path / "run")
    rc = cli.main(["train", "--dataset", "cifar10", "--data-dir", data_dir, "--epochs", "1",
                   "--backbone", "resnet8", "--output", out, "--verbose", "0"])
    err = _one_line_error(capsys, 2, rc)
    assert expected in err
    assert not os.path.exists(out)  # Nothing written, nothing trained.


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--epochs", "0"], "epochs"),
        (["--backbone", "resnet7"], "resnet7"),
        (["--milestones", "5,3"], "milestones"),
        (["--lr", "-0.1"], "lr"),
        (["--fusion", "bogus"], "fusion"),
        (["--num-branches", "1"], "num_branches"),
    ],
)
def test_bad_options_are_a_one_line_error(tmp_path, capsys, options, expected):
    out = str(tmp_path / "run")
    args = [a for a in TINY]
    rc = cli.main(["train", *args, "--epochs", "1", *options, "--output", out])
    err = _one_line_error(capsys, 2, rc)
    assert expected in err
    assert not os.path.exists(out)


def test_foreign_output_directory_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    rc = cli.main(["train", *TINY, "--epochs", "1", "--output", str(tmp_path)])
    assert "config.json" in _one_line_error(capsys, 2, rc)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_unwritable_output_is_refused_before_training(capsys):
    # /proc refuses new directories even to root.
    rc = cli.main(["train", *TINY, "--epochs", "1", "--output", "/proc/keras-ahbf/run"])
    assert "not writable" in _one_line_error(capsys, 2, rc)


def test_full_disk_is_refused_before_training(tmp_path, capsys, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        cli.shutil, "disk_usage", lambda path: usage._replace(free=10 * 2**20)
    )
    out = tmp_path / "run"
    rc = cli.main(["train", *TINY, "--epochs", "1", "--output", str(out)])
    assert "MiB free" in _one_line_error(capsys, 2, rc)
    assert not (out / "config.json").exists()
    assert not (out / "checkpoints").exists()


def test_argparse_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--dataset", "mnist"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--dataset", "digits", "--milestones", "a,b"])
    assert info.value.code == 2


@backend_independent
def test_nonfinite_loss_stops_with_code_3(tmp_path, capsys):
    out = str(tmp_path / "run")
    rc = cli.main(["train", *TINY, "--epochs", "2", "--lr", "1e30", "--output", out])
    err = _one_line_error(capsys, 3, rc)
    assert "NaN" in err
    assert not os.path.exists(os.path.join(out, "state.json"))
    assert os.listdir(os.path.join(out, "checkpoints")) == []


# ---------------------------------------------------------------- resume

# Runs the real command, but sleeps in the first batch of the second epoch
# (after the first epoch was committed) so the test can kill it mid-epoch.
_KILLABLE = textwrap.dedent(
    """
    import os, sys, time
    from keras_ahbf import callbacks, cli

    original = callbacks.EpochCheckpoint.on_epoch_begin

    def on_epoch_begin(self, epoch, logs=None):
        original(self, epoch, logs)
        self._pause = epoch == 1

    def on_train_batch_end(self, batch, logs=None):
        if getattr(self, "_pause", False):
            open(os.path.join(self.directory, "paused"), "w").close()
            time.sleep(600)

    callbacks.EpochCheckpoint.on_epoch_begin = on_epoch_begin
    callbacks.EpochCheckpoint.on_train_batch_end = on_train_batch_end
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def test_resume_after_sigkill(tmp_path, capsys):
    run = str(tmp_path / "run")
    command = ["train", *TINY, "--epochs", "3", "--output", run]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = open(tmp_path / "child.log", "w")
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, *command], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 400
        while not os.path.exists(os.path.join(run, "paused")):
            assert child.poll() is None, open(tmp_path / "child.log").read()
            assert time.time() < deadline, "the training subprocess did not reach epoch 2"
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        log.close()
    os.remove(os.path.join(run, "paused"))

    # Killed in the middle of epoch 2: epoch 1 is committed, nothing else.
    state = json.load(open(os.path.join(run, "state.json")))
    assert state["epochs_completed"] == 1
    assert _csv_epochs(run) == [0]
    assert not os.path.exists(os.path.join(run, "summary.json"))
    first_epoch = state["history"][0]

    # The same command again finishes the planned epochs.
    assert cli.main(command) == 0
    assert "Resuming" in capsys.readouterr().out
    state = json.load(open(os.path.join(run, "state.json")))
    assert state["epochs_completed"] == 3
    assert [r["epoch"] for r in state["history"]] == [0, 1, 2]
    assert state["history"][0] == first_epoch  # Nothing already written is lost.
    assert _csv_epochs(run) == [0, 1, 2]
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["epochs_completed"] == 3
    # The optimizer continued: 2 steps per epoch over 3 epochs.
    full = keras.saving.load_model(os.path.join(run, "checkpoints", "epoch_0003.keras"))
    assert int(to_numpy(full.optimizer.iterations)) == 6
    assert int(to_numpy(full.epoch)) == 2
    assert not [n for n in os.listdir(run) if _io.TMP_MARKER in n]
    assert not [n for n in os.listdir(os.path.join(run, "checkpoints")) if _io.TMP_MARKER in n]


@backend_independent
def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "keras_ahbf.cli", "train", "--help"], cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0
    assert "--num-branches" in result.stdout and "--rampup" in result.stdout
