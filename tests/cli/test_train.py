"""`keras-ahbf train` end to end on tiny data: outputs, resume, refusals."""

import dataclasses
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

from keras_ahbf import _io
from keras_ahbf import cli
from keras_ahbf import runs
from keras_ahbf import training
from keras_ahbf.models import BaselineModel
from keras_ahbf.testing.test_utils import to_numpy
from keras_ahbf.testing.data_files import tiny_cifar_npz

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# For paths that are the same on every backend (argument handling, exit
# codes), one backend is enough; they cost a model compilation each.
backend_independent = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="backend-independent code path; tested on TensorFlow",
)


def _json(path):
    with open(path) as f:
        return json.load(f)


# ------------------------------------------------------------------ outputs


def test_train_writes_every_output(run_dir, csv_epochs):
    names = set(os.listdir(run_dir))
    assert {"config.json", "state.json", "log.csv", "summary.json", "target.keras",
            "checkpoints"} <= names
    assert not [n for n in names if _io.TMP_MARKER in n]
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == ["epoch_0002.keras"]
    if cli.tensorboard_available():
        events = [f for _, _, files in os.walk(os.path.join(run_dir, "tensorboard"))
                  for f in files if f.startswith("events.out.tfevents")]
        assert events

    summary = _json(os.path.join(run_dir, "summary.json"))
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
    assert summary["evaluated_on"] == "test" and summary["kind"] == "ahbf"

    state = _json(os.path.join(run_dir, "state.json"))
    assert state["epochs_completed"] == 2
    assert csv_epochs(run_dir) == [0, 1]
    # Scaled recipe: 30-epoch digits recipe scaled to 2 epochs.
    config = _json(os.path.join(run_dir, "config.json"))["config"]
    assert config["milestones"] == [1] and config["rampup_epochs"] == 2
    # Learning rate per epoch follows the milestones.
    assert [r["learning_rate"] for r in state["history"]] == pytest.approx([0.1, 0.01])
    # The model's per-term logs reach state.json (and so log.csv, TensorBoard).
    assert {"loss", "kd_branch", "kd_ta", "rampup_weight", "fusion_1_weight"} <= set(
        state["history"][-1]
    )

    # The exported target network is the trained branch 0.
    target = keras.saving.load_model(os.path.join(run_dir, "target.keras"))
    full = keras.saving.load_model(os.path.join(run_dir, "checkpoints", "epoch_0002.keras"))
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(to_numpy(target(x)), to_numpy(full(x)), rtol=1e-4, atol=1e-4)
    assert len(target.layers) < len(full.trunk.layers) + 4  # No fusion, no branch 1.


def test_every_option_is_recorded_in_config_json(run_dir):
    config = _json(os.path.join(run_dir, "config.json"))["config"]
    assert set(config) == {f.name for f in dataclasses.fields(training.TrainConfig)}


def test_rerunning_a_finished_run_changes_nothing(run_dir, tiny, capsys):
    before = open(os.path.join(run_dir, "state.json")).read()
    assert cli.main(["train", *tiny, "--epochs", "2", "--output", run_dir]) == 0
    out = capsys.readouterr().out
    assert "already completed" in out and "branch_0 (target)" in out
    assert open(os.path.join(run_dir, "state.json")).read() == before


def test_other_options_on_an_existing_run_are_refused(run_dir, tiny, one_line_error):
    rc = cli.main(["train", *tiny, "--epochs", "3", "--output", run_dir])
    assert "--epochs 2 (this command: 3)" in one_line_error(2, rc)


def test_a_run_without_the_newer_options_still_resumes(run_dir, tiny, tmp_path):
    """The config.json of an older version lacks the options added since:
    missing options at their default count as unchanged."""
    run = str(tmp_path / "old")
    shutil.copytree(run_dir, run)
    path = os.path.join(run, "config.json")
    saved = _json(path)
    defaults = {f.name: f.default for f in dataclasses.fields(training.TrainConfig)
                if f.default is not dataclasses.MISSING}
    saved["config"] = {k: v for k, v in saved["config"].items()
                       if k not in defaults or v != defaults[k]}
    _io.atomic_write_json(path, saved)
    assert cli.main(["train", *tiny, "--epochs", "2", "--output", run]) == 0


# ------------------------------------------------------------- new options


def test_baseline_end_to_end(tiny, tmp_path, capsys):
    run = str(tmp_path / "baseline")
    assert cli.main(["train", *tiny, "--epochs", "2", "--baseline", "--output", run]) == 0
    assert "Baseline run finished" in capsys.readouterr().out
    assert {"config.json", "state.json", "log.csv", "summary.json", "target.keras",
            "checkpoints"} <= set(os.listdir(run))
    assert _json(os.path.join(run, "config.json"))["config"]["baseline"] is True
    summary = _json(os.path.join(run, "summary.json"))
    assert summary["kind"] == "baseline" and summary["epochs_completed"] == 2
    assert 0.0 <= summary["target_top1_last"] <= summary["target_top1_best"] <= 1.0
    assert set(summary["branch_top1"]) == {"branch_0"} and summary["teacher_top1"] == {}
    state = runs.read_state(run)
    assert state["model_class"] != "OnlineKDModel"
    assert not [k for k in state["history"][-1] if k.startswith(("kd_", "fusion_"))]
    assert [r["learning_rate"] for r in state["history"]] == pytest.approx([0.1, 0.01])

    # The same initial weights as the AHBF-OKD model of the same seed: the
    # target network alone, deployable as is.
    target = keras.saving.load_model(os.path.join(run, "target.keras"))
    assert getattr(target, "optimizer", None) is None
    assert not isinstance(target, BaselineModel)  # a plain network: loads with Keras alone
    # The checkpoint keeps its coupled L2 (a resumed run goes on with it).
    restored, _ = runs.restore(run, compile=False)
    assert isinstance(restored, BaselineModel)
    assert restored.weight_decay == summary["config"]["weight_decay"] > 0
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype("float32")
    assert to_numpy(target(x)).shape == (3, 10)

    # evaluate, export and plot work on a baseline run.
    report = str(tmp_path / "eval.json")
    assert cli.main(["evaluate", run, "--test-limit", "32", "--json", report]) == 0
    assert _json(report)["target_top1"] == pytest.approx(summary["target_top1_last"], abs=1e-6)
    out = str(tmp_path / "b.keras")
    assert cli.main(["export", run, "--output", out, "--no-saved-model"]) == 0
    np.testing.assert_allclose(to_numpy(keras.saving.load_model(out)(x)), to_numpy(target(x)),
                               rtol=1e-5, atol=1e-5)
    plots_dir = str(tmp_path / "plots")
    assert cli.main(["plot", run, "--output", plots_dir]) == 0
    assert {"accuracy.png", "loss.png"} <= set(os.listdir(plots_dir))

    # Re-running resumes nothing and changes nothing; AHBF options differ.
    before = open(os.path.join(run, "state.json")).read()
    assert cli.main(["train", *tiny, "--epochs", "2", "--baseline", "--output", run]) == 0
    assert open(os.path.join(run, "state.json")).read() == before
    capsys.readouterr()
    assert cli.main(["train", *tiny, "--epochs", "2", "--output", run]) == 2
    assert "--baseline True (this command: False)" in capsys.readouterr().err


def test_recipe_is_recorded_and_explicit_options_win(tiny, tmp_path, capsys):
    run = str(tmp_path / "paper")
    assert cli.main(["train", *tiny, "--epochs", "1", "--recipe", "paper",
                     "--lr", "0.05", "--output", run]) == 0
    config = _json(os.path.join(run, "config.json"))["config"]
    expected = training.resolve_config("digits", recipe="paper", lr=0.05, epochs=1,
                                       train_limit=64, test_limit=32, backbone="resnet8",
                                       num_branches=2, aux=1, batch_size=32)
    assert config["recipe"] == "paper" and config["lr"] == 0.05
    assert config == expected.to_dict()
    # An unknown preset is an argument error, before anything is built.
    with pytest.raises(SystemExit) as info:
        cli.main(["train", *tiny, "--recipe", "fast", "--output", str(tmp_path / "x")])
    assert info.value.code == 2 and "fast" in capsys.readouterr().err


def test_validation_split_evaluates_on_held_out_training_images(tiny, tmp_path, capsys):
    run = str(tmp_path / "val")
    # 64 training images, the last 16 held out: 48 trained on (2 batches).
    assert cli.main(["train", *tiny, "--epochs", "1", "--validation-split", "0.25",
                     "--output", run]) == 0
    out = capsys.readouterr().out
    assert "(48 images)" in out and "validation" in out
    assert _json(os.path.join(run, "config.json"))["config"]["validation_split"] == 0.25
    summary = _json(os.path.join(run, "summary.json"))
    assert summary["evaluated_on"] == "validation"
    # The reported accuracy is that of the 16 held-out images: a multiple of 1/16.
    assert (summary["target_top1_last"] * 16) == pytest.approx(
        round(summary["target_top1_last"] * 16), abs=1e-4)
    full = keras.saving.load_model(os.path.join(run, "checkpoints", "epoch_0001.keras"))
    assert int(to_numpy(full.optimizer.iterations)) == 2


def test_validation_split_out_of_range_is_refused(tiny, tmp_path, one_line_error):
    out = str(tmp_path / "run")
    for value in ("1.0", "-0.1", "0.001"):
        rc = cli.main(["train", *tiny, "--epochs", "1", "--validation-split", value,
                       "--output", out])
        assert "validation" in one_line_error(2, rc)
        assert not os.path.exists(out)


@pytest.mark.parametrize(
    "flag, value, field",
    [
        ("--rampup-shape", "linear", "rampup_shape"),
        ("--aux-ce-weight", "0.5", "aux_ce_weight"),
        ("--fused-ce-weight", "0.25", "fused_ce_weight"),
        ("--warmup-epochs", "1", "warmup_epochs"),
        ("--zero-init-residual", None, "zero_init_residual"),
    ],
)
def test_new_options_reach_the_config(flag, value, field):
    if field not in {f.name for f in dataclasses.fields(training.TrainConfig)}:
        pytest.skip(f"TrainConfig has no {field!r} yet")
    from keras_ahbf.cli import train as train_command

    argv = ["train", "--dataset", "digits", flag] + ([value] if value else [])
    args = cli.build_parser().parse_args(argv)
    config = train_command.train_config(args)
    expected = True if value is None else type(getattr(config, field))(value)
    assert getattr(config, field) == expected


# -------------------------------------------------- bad data, bad options


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "does not exist"),
        ("label", "label 10"),
        ("channels_first", "channels"),
        ("nan", "NaN"),
    ],
)
def test_bad_data_is_a_one_line_error_before_training(tmp_path, one_line_error, case, expected):
    rng = np.random.default_rng(0)
    if case == "missing":
        data_dir = str(tmp_path / "no_such_dir")
    elif case == "label":
        data_dir = tiny_cifar_npz(tmp_path / "c.npz", y_train=np.array([0, 1, 2, 10, 4, 5, 6, 7]))
    elif case == "channels_first":
        data_dir = tiny_cifar_npz(
            tmp_path / "c.npz", x_train=rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
        )
    else:
        x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
        x[2, 5, 5, 0] = np.nan
        data_dir = tiny_cifar_npz(tmp_path / "c.npz", x_train=x)
    out = str(tmp_path / "run")
    rc = cli.main(["train", "--dataset", "cifar10", "--data-dir", data_dir, "--epochs", "1",
                   "--backbone", "resnet8", "--output", out, "--verbose", "0"])
    assert expected in one_line_error(2, rc)
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
def test_bad_options_are_a_one_line_error(tmp_path, tiny, one_line_error, options, expected):
    out = str(tmp_path / "run")
    rc = cli.main(["train", *tiny, "--epochs", "1", *options, "--output", out])
    assert expected in one_line_error(2, rc)
    assert not os.path.exists(out)


def test_foreign_output_directory_is_refused(tmp_path, tiny, one_line_error):
    (tmp_path / "notes.txt").write_text("mine")
    rc = cli.main(["train", *tiny, "--epochs", "1", "--output", str(tmp_path)])
    assert "config.json" in one_line_error(2, rc)
    assert os.listdir(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize("below", [False, True])
def test_output_that_is_a_file_is_refused_before_training(tmp_path, tiny, one_line_error,
                                                          below):
    path = tmp_path / "a_file"
    path.write_text("mine")
    output = str(path / "run" if below else path)
    rc = cli.main(["train", *tiny, "--epochs", "1", "--output", output])
    err = one_line_error(2, rc)
    assert f"--output {output}" in err and "file" in err
    assert sorted(os.listdir(tmp_path)) == ["a_file"] and path.read_text() == "mine"


def test_unwritable_output_is_refused_before_training(tiny, one_line_error):
    # /proc refuses new directories even to root.
    rc = cli.main(["train", *tiny, "--epochs", "1", "--output", "/proc/keras-ahbf/run"])
    assert "not writable" in one_line_error(2, rc)


def test_full_disk_is_refused_before_training(tmp_path, tiny, one_line_error, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        runs.shutil, "disk_usage", lambda path: usage._replace(free=10 * 2**20)
    )
    out = tmp_path / "run"
    rc = cli.main(["train", *tiny, "--epochs", "1", "--output", str(out)])
    assert "MiB free" in one_line_error(2, rc)
    assert not (out / "config.json").exists()
    assert not (out / "checkpoints").exists()


@backend_independent
def test_nonfinite_loss_stops_with_code_3(tmp_path, tiny, one_line_error):
    out = str(tmp_path / "run")
    rc = cli.main(["train", *tiny, "--epochs", "2", "--lr", "1e30", "--output", out])
    assert "NaN" in one_line_error(3, rc)
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


def test_resume_after_sigkill(tmp_path, tiny, capsys, csv_epochs):
    run = str(tmp_path / "run")
    command = ["train", *tiny, "--epochs", "3", "--output", run]
    log = open(tmp_path / "child.log", "w")
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, *command], cwd=ROOT,
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
    state = _json(os.path.join(run, "state.json"))
    assert state["epochs_completed"] == 1
    assert csv_epochs(run) == [0]
    assert not os.path.exists(os.path.join(run, "summary.json"))
    first_epoch = state["history"][0]

    # The same command again finishes the planned epochs.
    assert cli.main(command) == 0
    assert "Resuming" in capsys.readouterr().out
    state = _json(os.path.join(run, "state.json"))
    assert state["epochs_completed"] == 3
    assert [r["epoch"] for r in state["history"]] == [0, 1, 2]
    assert state["history"][0] == first_epoch  # Nothing already written is lost.
    assert csv_epochs(run) == [0, 1, 2]
    summary = _json(os.path.join(run, "summary.json"))
    assert summary["epochs_completed"] == 3
    # The optimizer continued: 2 steps per epoch over 3 epochs.
    full = keras.saving.load_model(os.path.join(run, "checkpoints", "epoch_0003.keras"))
    assert int(to_numpy(full.optimizer.iterations)) == 6
    assert int(to_numpy(full.epoch)) == 2
    assert not [n for n in os.listdir(run) if _io.TMP_MARKER in n]
    assert not [n for n in os.listdir(os.path.join(run, "checkpoints")) if _io.TMP_MARKER in n]


@pytest.mark.parametrize("choice, expected", [("off", False), ("on", True)])
def test_kernels_option_sets_the_switch(tiny, tmp_path, choice, expected):
    from keras_ahbf import kernels

    seen = {}
    original = kernels.set_enabled

    def record(flag):
        seen["flag"] = flag
        original(flag)

    try:
        kernels.set_enabled = record
        run = str(tmp_path / "run")
        assert cli.main(["train", *tiny, "--epochs", "1", "--kernels", choice,
                         "--output", run]) == 0
        assert seen["flag"] is expected
        assert kernels.enabled() is expected
    finally:
        kernels.set_enabled = original
        kernels.set_enabled(None)
