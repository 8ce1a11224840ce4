"""Property-based tests of the `keras-ahbf` command (issue #15).

`hypothesis` draws whole command lines for `train --dry-run`, `evaluate`,
`export` and `plot`: option values from valid and invalid ranges (negative,
zero, huge, NaN, infinite, non-numbers, empty strings, unknown names) and
output paths of every kind (new, nested under missing parents, an existing
file, a path below a file, a non-empty folder that is no run, a run started
with other options, a read-only folder when not running as root). The
property, for every drawn command:

- it exits 0 (`train --dry-run`: with a configuration that passes the
  model's own checks again), or
- it exits 2 with exactly one `error:` line on stderr and no traceback,

and a command that exits 2 (and every dry run) leaves the folder it works
in unchanged: the same entries, sizes and modification times; one that
exits 0 changes only its own outputs (the SavedModel export itself is a
stand-in here, exported for real in `test_export.py`). Commands run
in-process (`keras_ahbf.cli.main`), on the tiny CIFAR fixture of
`keras_ahbf.testing.data_files`; the profile (derandomised in CI) is set in
`tests/conftest.py`. Real training runs once, in `tests/cli/test_dry_run.py`.
"""

import os
import shutil

import keras
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import event  # noqa: E402
from hypothesis import example  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from keras_ahbf import cli  # noqa: E402
from keras_ahbf import layers  # noqa: E402
from keras_ahbf import runs  # noqa: E402
from keras_ahbf import training  # noqa: E402
from keras_ahbf.cli import export as export_command  # noqa: E402
from keras_ahbf.cli import train as train_command  # noqa: E402
from keras_ahbf.testing.data_files import tiny_cifar_npz  # noqa: E402

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

# --------------------------------------------------------------------------
# The folder every drawn command works in.


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder with data, files, folders and runs for the drawn paths.

    The commands run with it as the current directory, so a default output
    path (`runs/...`) lands inside it too.
    """
    root = str(tmp_path_factory.mktemp("world"))
    paths = {"root": root}
    paths["npz"] = tiny_cifar_npz(os.path.join(root, "tiny.npz"))
    paths["file"] = os.path.join(root, "a_file.txt")
    with open(paths["file"], "w") as f:
        f.write("not a folder\n")
    paths["empty_dir"] = os.path.join(root, "empty")
    os.mkdir(paths["empty_dir"])
    paths["foreign"] = os.path.join(root, "foreign")
    os.mkdir(paths["foreign"])
    with open(os.path.join(paths["foreign"], "notes.txt"), "w") as f:
        f.write("someone's files\n")
    # A run started with other options (only its config.json: enough for
    # every check; nothing is trained).
    paths["run"] = os.path.join(root, "other_run")
    other = training.resolve_config("cifar10", data_dir=paths["npz"], epochs=7, seed=3)
    runs.write_config(paths["run"], other.to_dict(), command="keras-ahbf train ...")
    # A run with a log, for `plot`.
    paths["logged_run"] = os.path.join(root, "logged_run")
    os.mkdir(paths["logged_run"])
    with open(os.path.join(paths["logged_run"], runs.LOG_FILE), "w") as f:
        f.write("epoch,loss,val_branch_0_accuracy,learning_rate\n"
                "0,2.5,0.1,0.1\n1,2.0,0.2,0.01\n")
    paths["read_only"] = os.path.join(root, "read_only")
    os.mkdir(paths["read_only"])
    # A tiny target network (evaluate, export): loads and runs in a blink.
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    paths["model"] = os.path.join(root, "tiny.keras")
    model.save(paths["model"])
    os.chmod(paths["read_only"], 0o555)
    cwd = os.getcwd()
    os.chdir(root)
    yield paths
    os.chdir(cwd)
    os.chmod(paths["read_only"], 0o755)


def snapshot(root):
    """{relative path: (kind, size, mtime_ns)} of everything below `root`."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            kind = "dir" if os.path.isdir(path) else "file"
            out[os.path.relpath(path, root)] = (
                kind, 0 if kind == "dir" else info.st_size, info.st_mtime_ns,
            )
    return out


def run_cli(argv, capsys):
    """`(exit code, stdout, stderr)` of `keras-ahbf argv`, in-process."""
    capsys.readouterr()
    try:
        code = cli.main(argv)
        how = "exit"
    except SystemExit as e:  # argparse's own errors.
        code, how = e.code, "argparse exit"
    captured = capsys.readouterr()
    event(f"{argv[0]}: {how} {code}")  # In `--hypothesis-show-statistics`.
    return code, captured.out, captured.err


def assert_one_line_error(code, err, command):
    assert code == 2, err
    assert "Traceback" not in err, err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1, err
    assert error_lines[0].startswith(f"keras-ahbf {command}: error: "), err


def changed(world, before):
    """The entries directly below the world root (absolute paths) holding
    something added, removed or modified since the snapshot `before`."""
    after = snapshot(world["root"])
    keys = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return {os.path.join(world["root"], k.split(os.sep)[0]) for k in keys}


# --------------------------------------------------------------------------
# Strategies: option values as typed on a command line.

BAD_NUMBERS = ("nan", "NaN", "inf", "-inf", "1e400", "-1e400", "abc", "", " ", "1,5",
               "0x10", "--", "None")
HUGE_INTS = ("99999999999999999999999", str(2**63), str(2**32))


def ints(low, high):
    """Valid small integers, boundary values, huge and malformed ones."""
    return st.one_of(
        st.integers(low, high).map(str),
        st.integers(-3, 1).map(str),
        st.sampled_from(HUGE_INTS + BAD_NUMBERS + ("2.5", "1e3")),
    )


def floats(valid):
    """Valid values, any float (NaN and infinities included), malformed text."""
    return st.one_of(
        st.sampled_from(valid),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(BAD_NUMBERS + ("0", "-0.0", "-1", "1e308", "1e-320")),
    )


def names(valid, invalid):
    return st.sampled_from(tuple(valid) + tuple(invalid))


TRAIN_VALUES = {
    "--epochs": ints(1, 3),
    "--batch-size": ints(1, 16),
    "--num-branches": ints(2, 4),
    "--aux": ints(0, 2),
    "--warmup-epochs": ints(0, 2),
    "--rampup": ints(0, 5),
    "--seed": ints(0, 10),
    "--train-limit": ints(1, 8),
    "--test-limit": ints(1, 4),
    "--lr": floats(("0.1", "1e-3", "2")),
    "--momentum": floats(("0.9", "0.5", "0.999")),
    "--lr-decay": floats(("0.1", "0.5")),
    "--weight-decay": floats(("5e-4", "0")),
    "--temperature": floats(("3", "1", "0.5")),
    "--kd-weight": floats(("1.5", "0")),
    "--lambda-ta": floats(("2", "0")),
    "--lambda-branch": floats(("4", "0")),
    "--aux-ce-weight": floats(("1", "0.5")),
    "--fused-ce-weight": floats(("1", "0.5")),
    "--validation-split": floats(("0", "0.25", "0.5")),
    "--backbone": names(("resnet8", "resnet20", "vgg16", "RESNET8"),
                        ("resnet7", "resnet18", "bogus", "", "resnet-8x")),
    "--fusion": names(("conv", "se", "cbam", "nonlocal"), ("bogus", "", "CONV")),
    "--recipe": names(("paper",), ("bogus", "")),
    "--rampup-shape": names(("exp", "linear"), ("cubic", "")),
    "--milestones": names(("none", "1", "1,2", "2"), ("2,1", "1,1", "-1", "0", "a", "1.5")),
    "--jit": names(("auto", "off"), ("maybe",)),
    "--verbose": names(("0",), ("3", "-1")),
}
FLAGS = ("--baseline", "--no-nesterov", "--no-augment", "--stop-teacher-gradient",
         "--zero-init-residual")

OUTPUT_KINDS = ["new", "nested_new", "default", "empty_dir", "file", "below_file",
                "foreign", "other_run"] + ([] if IS_ROOT else ["read_only", "below_read_only"])


def output_path(world, kind, token):
    """The `--output` of one kind (None: the option is left out)."""
    root = world["root"]
    return {
        "new": os.path.join(root, f"new_{token}"),
        "nested_new": os.path.join(root, f"missing_{token}", "parents", "run"),
        "default": None,
        "empty_dir": world["empty_dir"],
        "file": world["file"],
        "below_file": os.path.join(world["file"], "run"),
        "foreign": world["foreign"],
        "other_run": world["run"],
        "read_only": world["read_only"],
        "below_read_only": os.path.join(world["read_only"], "run"),
    }[kind]


def data_dir(world, kind):
    return {
        "npz": world["npz"],
        "missing": os.path.join(world["root"], "no_such_data.npz"),
        "text_file": world["file"],
        "empty_dir": world["empty_dir"],
        "empty": "",
    }[kind]


@st.composite
def train_commands(draw):
    """`(argv without --output, output kind)` of a `train --dry-run`."""
    dataset = draw(st.sampled_from(["cifar10", "cifar10", "digits", "cifar100x"]))
    argv = ["train", "--dry-run", "--dataset", dataset]
    kind = draw(st.sampled_from(["npz", "npz", "npz", "missing", "text_file",
                                 "empty_dir", "empty"]))
    argv += ["--data-dir", kind]  # Replaced by the path in the test.
    chosen = draw(st.lists(st.sampled_from(sorted(TRAIN_VALUES)), max_size=4, unique=True))
    for option in chosen:
        argv += [option, draw(TRAIN_VALUES[option])]
    argv += draw(st.lists(st.sampled_from(FLAGS), max_size=2, unique=True))
    if dataset == "digits" and "--train-limit" not in chosen:
        argv += ["--train-limit", "64"]
    return argv, draw(st.sampled_from(OUTPUT_KINDS))


def resolved_config(argv):
    """The `TrainConfig` the command line resolves to (the real run's)."""
    args = cli.build_parser().parse_args(argv)
    return train_command.train_config(args)


def assert_model_accepts(config):
    """The model's own checks of the configuration, without building it."""
    assert training.TrainConfig.from_dict(config.to_dict()) == config
    training.resolve_backbone(config.backbone)
    if config.method == "ahbf" and not config.baseline:
        attention = None if config.fusion == "conv" else config.fusion
        layers.AdaptiveFusion(attention=attention, return_weights=True)


DRY = ["train", "--dry-run", "--dataset"]


# The explicit examples are valid commands (drawn ones are mostly refused).
@given(command=train_commands(), token=st.integers(0, 10**6))
@example(command=(DRY + ["cifar10", "--data-dir", "npz", "--epochs", "2"], "new"), token=1)
@example(command=(DRY + ["cifar10", "--data-dir", "npz", "--validation-split", "0.25",
                         "--backbone", "vgg16", "--fusion", "se"], "nested_new"), token=2)
@example(command=(DRY + ["digits", "--data-dir", "npz", "--train-limit", "64"], "default"),
         token=3)
@example(command=(DRY + ["cifar10", "--data-dir", "npz", "--epochs", "7", "--seed", "3"],
                  "other_run"), token=4)  # The same options: the run would go on.
def test_train_dry_run_exits_0_with_a_valid_config_or_2_with_one_line(
    world, capsys, command, token
):
    argv, kind = command
    argv = [data_dir(world, a) if prev == "--data-dir" else a
            for prev, a in zip([None] + argv[:-1], argv)]
    output = output_path(world, kind, token)
    if output is not None:
        argv += ["--output", output]
    before = snapshot(world["root"])
    code, out, err = run_cli(argv, capsys)
    assert snapshot(world["root"]) == before  # A dry run writes nothing.
    if code == 0:
        assert err == "" and out.startswith("Dry run (no model built, nothing written)")
        config = resolved_config(argv)
        assert_model_accepts(config)
        for key, value in config.to_dict().items():
            assert f"    {key} " in out and repr(value) in out
        assert kind not in ("file", "below_file", "foreign", "read_only", "below_read_only")
        if kind == "other_run":  # Accepted only with the run's own options.
            assert runs.read_config(world["run"])["config"] == config.to_dict()
    else:
        assert_one_line_error(code, err, "train")


# --------------------------------------------------------------------------
# evaluate, export, plot: paths drawn, the real command run (all cheap on
# the tiny model), a SavedModel export replaced by a stand-in that creates
# the folder (the real export is tested in tests/cli/test_export.py).

SOURCES = ("model", "missing_model", "text_file", "empty_dir", "other_run", "empty")
FILE_KINDS = ("absent", "new_file", "nested_new", "existing_dir", "below_file", "file_as_is")


def source_path(world, kind):
    return {
        "model": world["model"],
        "missing_model": os.path.join(world["root"], "missing.keras"),
        "text_file": world["file"],
        "empty_dir": world["empty_dir"],
        "other_run": world["run"],
        "empty": "",
    }[kind]


def file_path(world, kind, token, suffix):
    root = world["root"]
    return {
        "absent": None,
        "new_file": os.path.join(root, f"out_{token}{suffix}"),
        "nested_new": os.path.join(root, f"missing_{token}", "deeper", f"out{suffix}"),
        "existing_dir": world["empty_dir"],
        "below_file": os.path.join(world["file"], f"out{suffix}"),
        "file_as_is": world["file"],
        "read_only": os.path.join(world["read_only"], f"out{suffix}"),
    }[kind]


PATH_KINDS = FILE_KINDS + (() if IS_ROOT else ("read_only",))


def created(*paths):
    """The paths a command may create (None: nothing)."""
    return [p for p in paths if p]


def top_new_entry(world, path):
    """The entry directly below the world root that `path` is in."""
    if not path:
        return None
    rel = os.path.relpath(os.path.abspath(path), world["root"])
    return os.path.join(world["root"], rel.split(os.sep)[0])


@given(
    source=st.sampled_from(SOURCES),
    dataset=st.sampled_from([None, "cifar10", "cifar100", "imagenet"]),
    data=st.sampled_from(["npz", "missing", "text_file", "empty_dir"]),
    batch=ints(1, 8),
    limit=st.one_of(st.none(), ints(1, 4)),
    json_kind=st.sampled_from(PATH_KINDS),
    token=st.integers(0, 10**6),
)
@example(source="model", dataset="cifar10", data="npz", batch="4", limit=None,
         json_kind="new_file", token=1)
@example(source="model", dataset="cifar10", data="npz", batch="3", limit="2",
         json_kind="absent", token=2)
def test_evaluate_exits_0_or_2_with_one_line(
    world, capsys, source, dataset, data, batch, limit, json_kind, token
):
    argv = ["evaluate", source_path(world, source), "--data-dir", data_dir(world, data),
            "--batch-size", batch]
    if dataset:
        argv += ["--dataset", dataset]
    if limit is not None:
        argv += ["--test-limit", limit]
    json_path = file_path(world, json_kind, token, ".json")
    if json_path:
        argv += ["--json", json_path]
    allowed = created(top_new_entry(world, json_path))
    before = snapshot(world["root"])
    code, out, err = run_cli(argv, capsys)
    if code == 0:
        assert "branch_0" in out
        assert not json_path or os.path.isfile(json_path)
        assert changed(world, before) <= set(allowed)
        remove_new_entries(world, before)
    else:
        assert_one_line_error(code, err, "evaluate")
        assert snapshot(world["root"]) == before


def fake_saved_model_export(model, directory):
    """Stands in for `export_saved_model`: creates `directory` (left empty)."""
    os.makedirs(directory, exist_ok=True)


def remove_new_entries(world, before):
    """Deletes the top-level entries created since the snapshot `before`."""
    for path in changed(world, before):
        if os.path.relpath(path, world["root"]) not in before and os.path.exists(path):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


@given(
    source=st.sampled_from(SOURCES),
    output_kind=st.sampled_from(PATH_KINDS + ("no_suffix",)),
    saved_kind=st.sampled_from(PATH_KINDS + ("none",)),
    token=st.integers(0, 10**6),
)
@example(source="model", output_kind="new_file", saved_kind="nested_new", token=1)
@example(source="model", output_kind="absent", saved_kind="absent", token=2)
@example(source="model", output_kind="nested_new", saved_kind="none", token=3)
def test_export_exits_0_or_2_with_one_line(
    world, capsys, source, output_kind, saved_kind, token
):
    argv = ["export", source_path(world, source)]
    if output_kind == "no_suffix":
        output = os.path.join(world["root"], f"target_{token}.h5")
    else:
        output = file_path(world, output_kind, token, ".keras")
    if output:
        argv += ["--output", output]
    saved = None
    if saved_kind == "none":
        argv.append("--no-saved-model")
    else:
        saved = file_path(world, saved_kind, token + 1, "_savedmodel")
        if saved:
            argv += ["--saved-model", saved]
    default_target = None if output else (
        source_path(world, source)[: -len(".keras")] + "_target.keras")
    allowed = created(
        top_new_entry(world, output), top_new_entry(world, saved),
        top_new_entry(world, default_target),
        default_target and default_target[: -len(".keras")] + "_savedmodel",
    )
    before = snapshot(world["root"])
    original = export_command.export_saved_model
    export_command.export_saved_model = fake_saved_model_export
    try:
        code, out, err = run_cli(argv, capsys)
    finally:
        export_command.export_saved_model = original
    if code == 0:
        assert "Target network" in out
        assert changed(world, before) <= set(allowed)
        remove_new_entries(world, before)
    else:
        assert_one_line_error(code, err, "export")
        assert snapshot(world["root"]) == before


@hypothesis.settings(max_examples=min(20, hypothesis.settings.default.max_examples))
@given(
    run=st.sampled_from(["logged_run", "other_run", "empty_dir", "text_file", "missing",
                         "empty"]),
    output_kind=st.sampled_from(("absent", "new", "nested_new", "existing_file",
                                 "below_file") + (() if IS_ROOT else ("read_only",))),
    token=st.integers(0, 10**6),
)
@example(run="logged_run", output_kind="absent", token=1)
@example(run="logged_run", output_kind="nested_new", token=2)
def test_plot_exits_0_or_2_with_one_line(world, capsys, run, output_kind, token):
    run_dir = {"logged_run": world["logged_run"], "other_run": world["run"],
               "empty_dir": world["empty_dir"], "text_file": world["file"],
               "missing": os.path.join(world["root"], "no_run"), "empty": ""}[run]
    root = world["root"]
    output = {
        "absent": None,
        "new": os.path.join(root, f"plots_{token}"),
        "nested_new": os.path.join(root, f"missing_{token}", "plots"),
        "existing_file": world["file"],
        "below_file": os.path.join(world["file"], "plots"),
        "read_only": os.path.join(world["read_only"], "plots"),
    }[output_kind]
    argv = ["plot", run_dir] + (["--output", output] if output else [])
    target = output or os.path.join(run_dir, runs.PLOTS_DIR)
    before = snapshot(root)
    code, out, err = run_cli(argv, capsys)
    if code == 0:
        assert out.count(".png") >= 1 and os.path.isdir(target)
        shutil.rmtree(target)
        remove_new_entries(world, before)
    else:
        assert_one_line_error(code, err, "plot")
        assert snapshot(root) == before


@pytest.mark.skipif(IS_ROOT, reason="root ignores permissions")
def test_read_only_output_is_refused_before_anything_is_read(world, capsys):
    code, _, err = run_cli(["train", "--dry-run", "--dataset", "digits",
                            "--output", os.path.join(world["read_only"], "run")], capsys)
    assert_one_line_error(code, err, "train")
    assert "permission denied" in err


def test_the_tiny_model_fixture_is_what_evaluate_expects(world):
    # Guards the evaluate property: the drawn valid commands really run.
    model = keras.saving.load_model(world["model"])
    assert model.output_shape == (None, 10)
    assert np.all(np.isfinite(model.predict(np.zeros((1, 32, 32, 3)), verbose=0)))
