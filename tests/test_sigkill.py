"""SIGKILL at many points of `keras-ahbf train`, then the same command again.

Each case starts the real command in a subprocess (a process group of its
own), stops it at one deterministic point, kills the whole group with
SIGKILL, then runs the same command again to completion and checks that:

- the second run exits with 0 and completes the planned epochs;
- it resumed from exactly the epoch that `state.json` had committed before
  the kill (its "Resuming ... after epoch N" line, or "Training ..." when
  nothing was committed, or "already completed" when all epochs were);
- no epoch already committed was lost or changed, `log.csv` has exactly one
  row per epoch and matches `state.json`;
- every `.keras` file of the run directory loads (also right after the
  kill: a kill never leaves a half-written checkpoint in place), no
  temporary file is left behind, `target.keras` and `summary.json` are
  complete, and the optimizer state was carried across the kill.

The stopping points are made deterministic without any hook in the package:
the killed process runs `keras_ahbf.cli.main` through a small wrapper
(`_CHILD`) which, depending on `KERAS_AHBF_SIGKILL_TEST`, either pauses at
the end of a given training batch, or pauses inside `os.replace` just before
the n-th rename onto a destination whose path contains a given string (the
temporary file is then complete but not yet in place: the window that the
write-to-temporary-then-rename scheme of `keras_ahbf._io` protects). When
paused, the wrapper creates a marker file outside the run directory; the
test waits for it (with a timeout) and kills.

All kill points run on TensorFlow (about 2 minutes on 2 CPU cores), three of
them on JAX and PyTorch too (`EVERY_BACKEND`). The last two tests check the recovery pieces
(`_io.atomic_path`, `EpochCheckpoint.recover`) on their own.
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from keras_ahbf import _io
from keras_ahbf.callbacks import rows_to_csv
from keras_ahbf.testing.test_utils import to_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3
STEPS_PER_EPOCH = 2  # 64 training images, batches of 32.
TINY = [
    "--dataset", "digits", "--train-limit", "64", "--test-limit", "32",
    "--backbone", "resnet8", "--num-branches", "2", "--aux", "1",
    "--batch-size", "32", "--epochs", str(EPOCHS), "--verbose", "2",
]
# Generous: the first epoch compiles (slowest: JAX on a busy 2-core machine).
PAUSE_TIMEOUT = 420
RUN_TIMEOUT = 600

# Runs `keras-ahbf` (argv) and stops at the point described by the JSON in
# KERAS_AHBF_SIGKILL_TEST: {"batch": [epoch, batch]} pauses at the end of
# that training batch; {"rename": substring, "nth": n} pauses just before the
# n-th `os.replace` onto a path containing `substring`. Pausing writes the
# file KERAS_AHBF_SIGKILL_MARKER, then sleeps until the test kills it.
_CHILD = textwrap.dedent(
    """
    import json, os, sys, time

    from keras_ahbf import callbacks, cli

    point = json.loads(os.environ["KERAS_AHBF_SIGKILL_TEST"])
    marker = os.environ["KERAS_AHBF_SIGKILL_MARKER"]

    def pause(what):
        with open(marker + ".part", "w") as f:
            f.write(what)
        os.rename(marker + ".part", marker)
        time.sleep(900)
        os._exit(99)  # Never reached when the test works.

    if "batch" in point:
        pause_epoch, pause_batch = point["batch"]
        begin = callbacks.EpochCheckpoint.on_epoch_begin

        def on_epoch_begin(self, epoch, logs=None):
            begin(self, epoch, logs)
            self._sigkill_test_epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if (self._sigkill_test_epoch, batch) == (pause_epoch, pause_batch):
                pause(f"epoch {pause_epoch} batch {pause_batch}")

        callbacks.EpochCheckpoint.on_epoch_begin = on_epoch_begin
        callbacks.EpochCheckpoint.on_train_batch_end = on_train_batch_end
    else:
        replace = os.replace
        seen = [0]

        def paused_replace(src, dst, *args, **kwargs):
            if point["rename"] in os.fspath(dst):
                seen[0] += 1
                if seen[0] == point["nth"]:
                    pause(f"{src} -> {dst}")
            return replace(src, dst, *args, **kwargs)

        os.replace = paused_replace
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def _rename(substring, nth=1):
    return {"rename": substring, "nth": nth}


# name: (where the process stops, epochs committed in state.json at the kill)
KILL_POINTS = {
    # Mid-epoch, before anything was committed: the run starts over.
    "first_epoch": ({"batch": [0, 0]}, 0),
    # Mid-epoch after one commit: resumes after epoch 1.
    "later_epoch": ({"batch": [1, 0]}, 1),
    # Epoch 2's checkpoint is completely written to its temporary file but
    # not renamed into place.
    "checkpoint_before_rename": (_rename("epoch_0002.keras"), 1),
    # Between the checkpoint's rename and the state.json commit: a complete
    # but uncommitted checkpoint exists (first epoch: no state.json at all).
    "before_first_commit": (_rename("state.json", 1), 0),
    "before_commit": (_rename("state.json", 2), 1),
    # Last epoch committed, but log.csv not yet rewritten.
    "log_of_last_epoch": (_rename("log.csv", EPOCHS), EPOCHS),
    # In `_finalize`, after the last epoch: exporting target.keras, then
    # writing summary.json.
    "finalize_target": (_rename("target.keras"), EPOCHS),
    "finalize_summary": (_rename("summary.json"), EPOCHS),
    # The very first file of a run.
    "config": (_rename("config.json"), 0),
}


# Every kill point runs on TensorFlow. What a kill leaves on disk does not
# depend on the backend; how a run resumes from it does (restoring the model
# and optimizer mid-training, exporting from a restored model), so these run
# on every backend. Each case costs two process starts and compilations.
EVERY_BACKEND = ("later_epoch", "before_commit", "finalize_target")


def _cases():
    for name in KILL_POINTS:
        marks = []
        if name not in EVERY_BACKEND:
            marks.append(pytest.mark.skipif(
                keras.backend.backend() != "tensorflow",
                reason="the files left by this kill do not depend on the backend; "
                "tested on TensorFlow",
            ))
        yield pytest.param(name, marks=marks, id=name)


def _env(**extra):
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=keras.backend.backend(),
        PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
        PYTHONUNBUFFERED="1",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    env.update(extra)
    return env


def _kill_group(child):
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _run_and_kill(point, command, tmp_path):
    """Starts `command` in the pausing wrapper, waits for the pause, kills."""
    marker = str(tmp_path / "paused")
    log_path = tmp_path / "killed.log"
    env = _env(KERAS_AHBF_SIGKILL_TEST=json.dumps(point), KERAS_AHBF_SIGKILL_MARKER=marker)
    with open(log_path, "w") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, *command], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + PAUSE_TIMEOUT
            while not os.path.exists(marker):
                if child.poll() is not None:
                    pytest.fail(
                        f"the run ended (exit code {child.returncode}) before reaching "
                        f"{point}:\n{log_path.read_text()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(f"the run did not reach {point} in {PAUSE_TIMEOUT} s:\n"
                                f"{log_path.read_text()[-3000:]}")
                time.sleep(0.05)
            _kill_group(child)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                _kill_group(child)
                child.wait(timeout=60)
    return log_path.read_text()


def _files(run):
    return sorted(
        os.path.relpath(os.path.join(folder, name), run)
        for folder, _, names in os.walk(run)
        for name in names
    )


def _temporaries(run):
    return [
        path for path in _files(run)
        if _io.TMP_MARKER in os.path.basename(path)
        or os.path.basename(path).startswith(".keras-ahbf-write-test")
    ]


def _keras_files(run):
    return [p for p in _files(run) if p.endswith(".keras") and p not in _temporaries(run)]


def _load_all(run):
    """Loads every (non-temporary) .keras file of the run; returns them."""
    models = {}
    for path in _keras_files(run):
        try:
            models[path] = keras.saving.load_model(os.path.join(run, path))
        except Exception as e:  # noqa: BLE001 - reported with the file name.
            pytest.fail(f"{path} does not load: {type(e).__name__}: {e}")
    return models


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)  # Fails on a truncated file.


def _csv_epochs(run):
    with open(os.path.join(run, "log.csv"), newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _check_after_kill(run, name, committed):
    """What a kill at `name` must have left on disk."""
    state = _io.read_json(os.path.join(run, "state.json"))
    assert (state["epochs_completed"] if state else 0) == committed
    if state:
        assert [r["epoch"] for r in state["history"]] == list(range(committed))
        assert os.path.isfile(os.path.join(run, "checkpoints", state["checkpoint"]))
    for json_name in ("config.json", "summary.json"):
        if os.path.exists(os.path.join(run, json_name)):
            _read_json(os.path.join(run, json_name))
    models = _load_all(run)
    temporaries = _temporaries(run)
    if name == "checkpoint_before_rename":
        # The complete temporary file is there; the destination is not.
        assert [os.path.dirname(p) for p in temporaries] == ["checkpoints"]
        assert "checkpoints/epoch_0002.keras" not in models
    elif name in ("before_first_commit", "before_commit"):
        # The new checkpoint is in place (complete) but not committed.
        assert f"checkpoints/epoch_{committed + 1:04d}.keras" in models
        assert [os.path.basename(p).split(_io.TMP_MARKER)[0] for p in temporaries] == [".state"]
    elif name == "log_of_last_epoch":
        assert _csv_epochs(run) == list(range(EPOCHS - 1))
    elif name == "finalize_target":
        assert "target.keras" not in models
        assert [os.path.basename(p).split(_io.TMP_MARKER)[0] for p in temporaries] == [".target"]
    elif name == "finalize_summary":
        assert "target.keras" in models
        assert not os.path.exists(os.path.join(run, "summary.json"))
    elif name == "config":
        assert not os.path.exists(os.path.join(run, "config.json"))
    return state


def _expected_start_line(run, committed):
    if committed == 0:
        return re.compile(r"^Training resnet8 with 2 branches on digits", re.M)
    if committed < EPOCHS:
        return re.compile(
            rf"^Resuming {re.escape(run)} after epoch {committed} of {EPOCHS} "
            rf"\(checkpoint epoch_{committed:04d}\.keras\)\.$", re.M
        )
    return re.compile(rf"^{re.escape(run)} already completed its {EPOCHS} epochs\.$", re.M)


@pytest.mark.parametrize("name", _cases())
def test_sigkill_then_same_command_resumes(name, tmp_path):
    point, committed = KILL_POINTS[name]
    run = str(tmp_path / "run")
    command = ["train", *TINY, "--output", run]

    killed_log = _run_and_kill(point, command, tmp_path)
    before = _check_after_kill(run, name, committed)

    # The same command again (the real entry point this time).
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "keras_ahbf.cli", *command], cwd=ROOT, env=_env(),
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )
    details = (
        f"killed run:\n{killed_log[-2000:]}\nsecond run ({time.monotonic() - start:.0f} s, "
        f"exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    assert result.returncode == 0, details

    # It resumed from the epoch committed before the kill, and only there.
    assert _expected_start_line(run, committed).search(result.stdout), details
    resumed = re.findall(r"^Resuming .* after epoch (\d+) of", result.stdout, re.M)
    assert resumed == ([str(committed)] if 0 < committed < EPOCHS else []), details
    # Exactly the epochs that were not committed were trained.
    trained = re.findall(r"^Epoch (\d+)/%d$" % EPOCHS, result.stdout, re.M)
    assert trained == [str(e) for e in range(committed + 1, EPOCHS + 1)], details

    state = _read_json(os.path.join(run, "state.json"))
    assert state["epochs_completed"] == EPOCHS == state["epochs_planned"]
    assert state["checkpoint"] == f"epoch_{EPOCHS:04d}.keras"
    assert [r["epoch"] for r in state["history"]] == list(range(EPOCHS))
    if before:  # Nothing committed before the kill was lost or rewritten.
        assert state["history"][:committed] == before["history"]

    # log.csv: exactly one row per epoch, the rows of state.json.
    assert _csv_epochs(run) == list(range(EPOCHS))
    with open(os.path.join(run, "log.csv"), encoding="utf-8") as f:
        assert f.read() == rows_to_csv(state["history"])

    assert _temporaries(run) == [], _files(run)
    assert os.listdir(os.path.join(run, "checkpoints")) == [f"epoch_{EPOCHS:04d}.keras"]
    models = _load_all(run)
    assert f"checkpoints/epoch_{EPOCHS:04d}.keras" in models and "target.keras" in models

    # The optimizer state crossed the kill: one step per batch of every
    # epoch, and the ramp-up epoch variable is the last epoch's.
    full = models[f"checkpoints/epoch_{EPOCHS:04d}.keras"]
    assert int(to_numpy(full.optimizer.iterations)) == EPOCHS * STEPS_PER_EPOCH
    assert int(to_numpy(full.epoch)) == EPOCHS - 1

    # target.keras is the final branch 0; summary.json the final summary.
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(models["target.keras"](x)), to_numpy(full(x)), rtol=1e-4, atol=1e-4
    )
    summary = _read_json(os.path.join(run, "summary.json"))
    assert summary["status"] == "complete"
    assert summary["epochs_completed"] == summary["epochs_planned"] == EPOCHS
    assert summary["target_top1_last"] == state["history"][-1]["val_branch_0_accuracy"]
    assert _read_json(os.path.join(run, "config.json"))["config"]["epochs"] == EPOCHS


# ------------------------------------------------ the recovery pieces alone


def test_atomic_path_deletes_the_temporaries_of_dead_writers_only(tmp_path):
    target = tmp_path / "model.keras"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        names = {
            "dead": f".model{_io.TMP_MARKER}{dead.pid}-abc.keras",
            "own_pid": f".model{_io.TMP_MARKER}{os.getpid()}-abc.keras",  # A reused id.
            "old_format": f".model{_io.TMP_MARKER}abcdefgh.keras",
            "live": f".model{_io.TMP_MARKER}{live.pid}-abc.keras",
            "other_file": f".other{_io.TMP_MARKER}{dead.pid}-abc.keras",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        _io.atomic_write_bytes(str(target), b"complete")
        left = sorted(os.listdir(tmp_path))
        assert left == sorted(["model.keras", names["live"], names["other_file"]])
        assert target.read_bytes() == b"complete"
        # The whole folder: every dead writer's temporary, not the live one.
        _io.remove_stale_temporaries(str(tmp_path))
        assert sorted(os.listdir(tmp_path)) == sorted(["model.keras", names["live"]])
    finally:
        live.kill()
        live.wait()
    name = os.path.basename(_io.temporary_path(str(target)))
    assert name.startswith(f".model{_io.TMP_MARKER}{os.getpid()}-") and name.endswith(".keras")


def test_recover_brings_the_run_directory_in_line_with_state(tmp_path):
    from keras_ahbf.callbacks import EpochCheckpoint

    run = tmp_path / "run"
    checkpoints = run / "checkpoints"
    checkpoints.mkdir(parents=True)
    assert EpochCheckpoint.recover(str(run)) is None  # Nothing committed: no-op.
    for n in (1, 2, 3):  # 3: written but not committed; 1: not yet pruned.
        (checkpoints / f"epoch_{n:04d}.keras").write_bytes(b"model")
    rows = [{"epoch": 0, "loss": 2.0}, {"epoch": 1, "loss": 1.5}]
    _io.atomic_write_json(
        str(run / "state.json"),
        {"epochs_completed": 2, "checkpoint": "epoch_0002.keras", "history": rows},
    )
    (run / "log.csv").write_text(rows_to_csv(rows[:1]))  # Killed before log.csv.
    (run / f".log{_io.TMP_MARKER}abc.csv").write_text("epoch\n0\n1\n")
    (checkpoints / f".epoch_0003{_io.TMP_MARKER}abc.keras").write_bytes(b"mod")

    state = EpochCheckpoint.recover(str(run))
    assert state["epochs_completed"] == 2
    assert (run / "log.csv").read_text() == rows_to_csv(rows)
    assert sorted(os.listdir(checkpoints)) == ["epoch_0002.keras"]
    assert sorted(os.listdir(run)) == ["checkpoints", "log.csv", "state.json"]
    # Idempotent: a tidy directory is not rewritten.
    before = os.stat(run / "log.csv").st_mtime_ns
    assert EpochCheckpoint.recover(str(run), keep=2) == state
    assert os.stat(run / "log.csv").st_mtime_ns == before
