"""The run directory: where a training run keeps its files, and how they are read.

A run directory written by `keras-ahbf train` (or by
`keras_ahbf.callbacks.EpochCheckpoint` in a plain `model.fit`) holds:

```
config.json                  the resolved options (written first)
checkpoints/epoch_NNNN.keras the full model after the last completed epoch
state.json                   the commit record: epochs completed, the
                             checkpoint's name, one row of logs per epoch
log.csv                      the same rows as CSV
tensorboard/                 TensorBoard logs (when tensorboard is installed)
target.keras, summary.json   at the end: the deployable target network and
                             the results
```

`state.json` is the commit point: every file is written atomically (see
`keras_ahbf._io`) and `commit_epoch` writes the checkpoint before the state
that names it, so a process killed at any moment leaves a directory that
`recover` tidies and `restore` resumes from.

This module imports no backend (Keras is imported only to load a
checkpoint), so the command line can read a run without starting one.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil

from keras_ahbf import _io

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "LOG_FILE",
    "MIN_FREE_MIB",
    "PLOTS_DIR",
    "STATE_FILE",
    "SUMMARY_FILE",
    "TARGET_FILE",
    "TENSORBOARD_DIR",
    "check_output_writable",
    "checkpoint_name",
    "commit_epoch",
    "config_differences",
    "is_foreign_directory",
    "prune_checkpoints",
    "read_config",
    "read_state",
    "recover",
    "restore",
    "rows_to_csv",
    "summarize",
    "write_config",
]

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
LOG_FILE = "log.csv"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_FILE = "summary.json"
TARGET_FILE = "target.keras"
TENSORBOARD_DIR = "tensorboard"
PLOTS_DIR = "plots"
# Checkpoints, logs and the export of a small model take a few MiB; a run
# that could only fail at its first checkpoint is refused.
MIN_FREE_MIB = 64


# --------------------------------------------------------------------------
# Paths and CSV.


def checkpoint_name(epochs_completed: int) -> str:
    """The file name of the checkpoint after `epochs_completed` epochs."""
    return f"epoch_{epochs_completed:04d}.keras"


def rows_to_csv(rows: list[dict]) -> str:
    """Formats per-epoch log rows (dicts) as CSV text, `epoch` first.

    Example:

    >>> rows_to_csv([{"epoch": 0, "b": 1.0}, {"epoch": 1, "a": 2.0, "b": 3.0}])
    'epoch,a,b\\n0,,1.0\\n1,2.0,3.0\\n'
    """
    keys = []
    for row in rows:
        for key in row:
            if key not in keys:
                keys.append(key)
    keys = ["epoch"] + sorted(k for k in keys if k != "epoch")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in keys})
    return buffer.getvalue()


# --------------------------------------------------------------------------
# state.json: read, commit, restore, recover.


def _state_problem(state) -> str | None:
    """What is wrong with a parsed `state.json`, or None."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not an object"
    done = state.get("epochs_completed")
    name = state.get("checkpoint")
    if isinstance(done, bool) or not isinstance(done, int) or done < 1:
        return f"has epochs_completed={done!r} (expected an integer >= 1)"
    if (
        not isinstance(name, str)
        or not name.endswith(".keras")
        or os.path.basename(name) != name
        or name in ("", ".", "..")
    ):
        return (
            f"has checkpoint={name!r} (expected the file name of a .keras file "
            f"in {CHECKPOINT_DIR}/)"
        )
    if not isinstance(state.get("history"), list):
        return "has no list of per-epoch rows under 'history'"
    return None


def read_state(directory: str) -> dict | None:
    """Returns the committed state of a run directory, or None.

    Args:
        directory: str. The run directory.

    Returns:
        The parsed `state.json` (`epochs_completed`, `checkpoint`,
        `model_class`, `history` and the metadata of the run), or None when
        no epoch was committed.

    Raises:
        ValueError: (a `keras_ahbf._io.CorruptFileError`) if `state.json`
            exists but is not a state `commit_epoch` wrote: not JSON, or
            without a valid `epochs_completed`, `checkpoint` and `history`.
            The message names the file.
    """
    path = os.path.join(directory, STATE_FILE)
    state = _io.read_json(path)
    if state is None:
        return None
    problem = _state_problem(state)
    if problem:
        raise _io.CorruptFileError(
            f"{path} is not a valid run state: it {problem}; it was damaged or "
            "replaced after it was written."
        )
    return state


def commit_epoch(directory: str, model, rows: list[dict], metadata=None, keep: int = 1):
    """Commits one completed epoch to a run directory, crash-safely.

    In order: the full model to `checkpoints/epoch_NNNN.keras`, then
    `state.json` (the commit point), then `log.csv`, then the older
    checkpoints are deleted (the newest `keep` stay). Every file is written
    to a temporary file and renamed into place.

    Args:
        directory: str. The run directory.
        model: the `keras.Model` to save.
        rows: list of dicts. One row of logs per completed epoch, the last
            one for the epoch being committed (`rows[-1]["epoch"]`, 0-based).
        metadata: dict or None. JSON values stored in `state.json`.
        keep: int. Checkpoints kept (>= 1).

    Returns:
        The state written.
    """
    done = int(rows[-1]["epoch"]) + 1
    name = checkpoint_name(done)
    checkpoints = os.path.join(directory, CHECKPOINT_DIR)
    _io.atomic_save_model(model, os.path.join(checkpoints, name))
    state = dict(metadata or {})
    state.update(
        epochs_completed=done,
        checkpoint=name,
        model_class=type(model).__name__,
        history=list(rows),
    )
    _io.atomic_write_json(os.path.join(directory, STATE_FILE), state)
    _io.atomic_write_text(os.path.join(directory, LOG_FILE), rows_to_csv(rows))
    prune_checkpoints(checkpoints, name, keep)
    return state


def restore(directory: str, compile: bool = True):
    """Loads the last committed checkpoint of a run directory.

    Args:
        directory: str. The run directory.
        compile: bool. Restore the optimizer and its state too.

    Returns:
        `(model, state)`, or `(None, None)` if nothing was committed.

    Raises:
        FileNotFoundError: if `state.json` names a missing checkpoint.
        ValueError: (a `keras_ahbf._io.CorruptFileError`) if `state.json`
            or the checkpoint is damaged (empty, truncated, not a `.keras`
            file, not loadable) or the checkpoint holds another kind of
            model than the one saved; the message names the file.
    """
    state = read_state(directory)
    if not state:
        return None, None
    state_path = os.path.join(directory, STATE_FILE)
    path = os.path.join(directory, CHECKPOINT_DIR, state["checkpoint"])
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{state_path} names the checkpoint {path}, which does not exist."
        )
    model = _io.load_keras_model(path, compile=compile)
    expected = state.get("model_class")
    if expected is not None and type(model).__name__ != expected:
        raise _io.CorruptFileError(
            f"{path} holds a {type(model).__name__}, but the run saved a {expected} "
            f"there (according to {state_path}); the checkpoint was replaced after "
            "it was written."
        )
    return model, state


def prune_checkpoints(checkpoints: str, current: str, keep: int) -> None:
    """Deletes the checkpoints but `current` and the `keep - 1` before it."""
    names = sorted(
        n for n in os.listdir(checkpoints) if n.startswith("epoch_") and n.endswith(".keras")
    )
    kept = set([n for n in names if n <= current][-keep:])
    for n in names:
        if n not in kept:
            try:
                os.remove(os.path.join(checkpoints, n))
            except OSError:
                pass


def recover(directory: str, keep: int = 1) -> dict | None:
    """Tidies a run directory after a crash, from its `state.json`.

    A process killed during or after a commit can leave temporary files, a
    `log.csv` one epoch behind `state.json` (killed between the two), a
    checkpoint newer than the committed one (killed before `state.json`) or
    an old one not yet deleted. This deletes the temporary files of dead
    processes, rewrites `log.csv` from `state.json` when they differ, and
    keeps only the committed checkpoint and the `keep - 1` before it (no
    checkpoint is deleted while no state is committed). Idempotent, and a
    no-op on a tidy directory; call it before resuming or finishing a run,
    never while another process trains in `directory`.

    Args:
        directory: str. The run directory.
        keep: int. Number of checkpoints kept.

    Returns:
        The committed state (as `read_state`), or None.
    """
    checkpoints = os.path.join(directory, CHECKPOINT_DIR)
    for folder in (directory, checkpoints):
        _io.remove_stale_temporaries(folder)
    state = read_state(directory)
    if not state:
        return None
    log = os.path.join(directory, LOG_FILE)
    text = rows_to_csv(state["history"])
    try:
        with open(log, encoding="utf-8", newline="") as f:
            current = f.read()
    except (OSError, ValueError):  # Missing, or not UTF-8.
        current = None
    if current != text:
        _io.atomic_write_text(log, text)
    if os.path.isfile(os.path.join(checkpoints, state["checkpoint"])):
        prune_checkpoints(checkpoints, state["checkpoint"], keep)
    return state


# --------------------------------------------------------------------------
# config.json and the output directory.


def read_config(directory: str) -> dict | None:
    """The parsed `config.json` of a run directory, or None.

    Raises:
        ValueError: (a `keras_ahbf._io.CorruptFileError`) if the file exists
            but is not JSON.
    """
    return _io.read_json(os.path.join(directory, CONFIG_FILE))


def write_config(directory: str, config: dict, **info) -> None:
    """Writes `config.json`: `{"config": config, **info}`, atomically."""
    _io.atomic_write_json(os.path.join(directory, CONFIG_FILE), {"config": config, **info})


def config_differences(saved: dict, current: dict, defaults: dict | None = None) -> list[str]:
    """The options on which two configurations differ, as command-line flags.

    Args:
        saved: dict. The configuration stored in a run's `config.json`.
        current: dict. The configuration of this command.
        defaults: dict or None. Values of options a `saved` configuration
            may lack (written before the option existed): a missing option
            equal to its default is no difference.

    Returns:
        A list such as `["--epochs 2 (this command: 3)"]`.
    """
    defaults = defaults or {}
    diffs = []
    for key in sorted(set(saved) | set(current)):
        old = saved.get(key, defaults.get(key))
        if old != current.get(key):
            flag = "--" + key.replace("_", "-")
            diffs.append(f"{flag} {old!r} (this command: {current.get(key)!r})")
    return diffs


def is_foreign_directory(path: str) -> bool:
    """True if `path` is a non-empty directory without a run's `config.json`.

    `config.json` is the first file `train` writes, so any directory it
    wrote into has one. Temporary files (a run killed while writing
    `config.json`, or during the write test) do not count.
    """
    if os.path.isfile(os.path.join(path, CONFIG_FILE)):
        return False
    return os.path.isdir(path) and any(not _io.is_temporary(n) for n in os.listdir(path))


def check_output_writable(output: str) -> None:
    """Checks that a run directory can hold the run's files (creating it).

    Raises:
        OSError: if the directory cannot be created or written, or its disk
            has less than `MIN_FREE_MIB` MiB free; the message says which.
    """
    probe = os.path.join(output, f".write-test{_io.TMP_MARKER}{os.getpid()}-probe")
    try:
        os.makedirs(output, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
        os.remove(probe)
    except OSError as e:
        raise OSError(f"{output} is not writable: {e.strerror or e}") from None
    free_mib = shutil.disk_usage(output).free / 2**20
    if free_mib < MIN_FREE_MIB:
        raise OSError(
            f"{output}: only {free_mib:.0f} MiB free on its disk; a run needs at "
            f"least {MIN_FREE_MIB} MiB for checkpoints and logs"
        )


# --------------------------------------------------------------------------
# summary.json


def _sorted_names(row: dict, prefix: str) -> list[str]:
    names = (
        k[len("val_") :]
        for k in row
        if k.startswith(f"val_{prefix}_") and k.endswith("_accuracy")
    )
    return sorted(names, key=lambda k: int(k.split("_")[1]))


def _fusion_summary(last: dict, levels: int) -> dict:
    fusion = {}
    for m in range(1, levels + 1):
        entry = {}
        for kind, key in (("test", f"val_fusion_{m}_weight"), ("train", f"fusion_{m}_weight")):
            if last.get(key) is not None:
                entry[kind] = [last[key], 1.0 - last[key]]
        if last.get(f"fusion_{m}_weight_infer_std") is not None:
            entry["test_std"] = last[f"fusion_{m}_weight_infer_std"]
        fusion[f"fusion_{m}"] = entry
    return fusion


def summarize(config, state: dict, backend: str, evaluated_on: str = "test") -> dict:
    """The `summary.json` content of a finished run (from `state.json`).

    Args:
        config: the run's `TrainConfig` (anything with `dataset`,
            `backbone`, `epochs` and `to_dict()`).
        state: dict. The committed state (`read_state`).
        backend: str. The Keras backend that trained the run.
        evaluated_on: str. `"test"` or `"validation"`: the split the
            `val_*` metrics were measured on.

    Returns:
        A JSON-serialisable dict: the target's top-1 (last and best epoch),
        every branch's and fused teacher's (`branch_top1`, `teacher_top1`;
        for the run of another method (DML, ...) every peer's in
        `peer_top1`, peer 0 the target, and every other accuracy the model
        reports, e.g. the peers' ensemble, as `teacher_top1["ensemble"]`), the fusion
        weights of the last epoch, the training time and the configuration.
    """
    rows = state["history"]
    last = rows[-1]
    method = getattr(config, "method", "ahbf")
    peer_method = method != "ahbf" and not getattr(config, "baseline", False)
    target = "val_peer_0_accuracy" if peer_method else "val_branch_0_accuracy"
    best_row = max(rows, key=lambda r: r.get(target) or -1.0)

    def accuracy_table(names):
        return {
            name[: -len("_accuracy")]: {
                "last": last.get(f"val_{name}"),
                "best": max((r.get(f"val_{name}") or 0.0) for r in rows),
            }
            for name in names
        }

    ta_names = _sorted_names(last, "ta")
    if getattr(config, "baseline", False):
        kind = "baseline"
    else:
        kind = method
    teacher_names = ta_names
    if peer_method:  # Every other accuracy is a teacher's (an ensemble, ...).
        numbered = re.compile(r"val_(branch|peer|ta)_\d+_accuracy$")
        teacher_names = ta_names + sorted(
            k[len("val_"):] for k in last
            if k.startswith("val_") and k.endswith("_accuracy") and k != "val_accuracy"
            and not numbered.match(k)
        )
    peers = {"peer_top1": accuracy_table(_sorted_names(last, "peer"))} if peer_method else {}
    return {
        "status": "complete",
        "dataset": config.dataset,
        "backbone": config.backbone,
        "kind": kind,
        "evaluated_on": evaluated_on,
        "epochs_completed": state["epochs_completed"],
        "epochs_planned": config.epochs,
        "target_top1_last": last.get(target),
        "target_top1_best": best_row.get(target),
        "best_epoch": int(best_row["epoch"]) + 1,
        "branch_top1": accuracy_table(_sorted_names(last, "branch")),
        **peers,
        "teacher_top1": accuracy_table(teacher_names),
        "fusion_weights": _fusion_summary(last, len(ta_names)),
        "fusion_weights_note": "per level: mean weights [previous assistant, new branch] "
        f"in the last epoch ({evaluated_on}: inference mode on the {evaluated_on} set)",
        "train_time_seconds": sum(r.get("epoch_time", 0.0) for r in rows),
        "backend": backend,
        "config": config.to_dict(),
    }
