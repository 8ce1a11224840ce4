"""The `keras-ahbf` parser: fast, backend-free `--help` and argument errors,
the options table, quiet backend start-up."""

import dataclasses
import os
import subprocess
import sys
import textwrap
import time

import pytest

from keras_ahbf import cli
from keras_ahbf import distribution
from keras_ahbf import training
from keras_ahbf.cli import _common
from keras_ahbf.cli.main import TRAIN_OPTIONS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ("keras", "tensorflow", "jax", "torch")

# Parses argv in a fresh interpreter, then reports which heavy modules were
# imported and the CPU time it took.
_PARSE = textwrap.dedent(
    """
    import json, sys, time
    from keras_ahbf.cli.main import main
    try:
        code = main(sys.argv[1:])
    except SystemExit as e:
        code = e.code
    heavy = [m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules]
    # CPU time (the wall time depends on the machine's load).
    print(json.dumps({"code": code, "heavy": heavy, "cpu_seconds": time.process_time()}),
          file=sys.__stderr__)
    """
)


def _parse_in_subprocess(*argv):
    import json

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", _PARSE, *argv], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return report, result.stdout, result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["train", "--help"],
        ["evaluate", "--help"],
        ["train", "--dataset", "mnist"],  # An argument error.
        ["train", "--dataset", "digits", "--epochs", "x"],
        ["plot", "/nonexistent/run"],  # A `plot` that fails on its input.
    ],
)
def test_help_errors_and_plot_import_no_backend(argv):
    report, _, _ = _parse_in_subprocess(*argv)
    assert report["heavy"] == [], report
    assert report["code"] in (0, 2)
    # Under a second without a backend (matplotlib included for `plot`).
    assert report["cpu_seconds"] < 1.5, report


def test_help_wall_time():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "keras_ahbf.cli", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "train" in result.stdout
    # About 0.1 s on an idle machine; generous for a loaded one.
    assert time.perf_counter() - start < 10


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "keras_ahbf.cli", "train", "--help"], cwd=ROOT,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0
    assert "--num-branches" in result.stdout and "--rampup" in result.stdout
    for flag in ("--recipe", "--baseline", "--rampup-shape", "--aux-ce-weight",
                 "--fused-ce-weight", "--zero-init-residual", "--warmup-epochs",
                 "--validation-split", "--log-level"):
        assert flag in result.stdout


def test_argparse_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--dataset", "mnist"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--dataset", "digits", "--milestones", "a,b"])
    assert info.value.code == 2


def test_options_table_matches_train_config():
    fields = {f.name for f in dataclasses.fields(training.TrainConfig)}
    table = {o.field for o in TRAIN_OPTIONS}
    # Every option is a field; every field but the data set is an option.
    assert table <= fields, table - fields
    assert fields - table <= {"dataset"}, fields - table - {"dataset"}


def test_every_option_has_its_field_name_as_flag():
    parser = cli.build_parser()
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    flags = {flag for action in train._actions for flag in action.option_strings}
    for option in TRAIN_OPTIONS:
        assert option.help
        dashed = "--" + option.field.replace("_", "-")
        if option.action == "store_false":
            assert f"--no-{option.field.replace('_', '-')}" in flags
        else:
            assert dashed in flags


def test_choices_agree_with_the_library():
    import importlib

    from keras_ahbf import data

    # `keras_ahbf.cli.main` is also the name of the function the package
    # re-exports: the module is fetched by its full name.
    main_module = importlib.import_module("keras_ahbf.cli.main")

    assert set(main_module.DATASETS) == set(data.DATASETS)
    assert tuple(main_module.DISTRIBUTE_KINDS) == tuple(distribution.KINDS)


def test_default_hides_backend_start_up_lines(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert _common.configure_backend_logging(None) is True
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    # What the user set is kept.
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert _common.configure_backend_logging(None) is False
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    # An explicit --log-level wins.
    assert _common.configure_backend_logging("info") is False
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert _common.configure_backend_logging("error") is True
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_quiet_imports_hides_native_stderr_only_inside(capfd):
    with _common.quiet_imports(True):
        os.write(2, b"native start-up line\n")
    os.write(2, b"after\n")
    with _common.quiet_imports(False):
        os.write(2, b"shown\n")
    err = capfd.readouterr().err
    assert "native start-up line" not in err and "after" in err and "shown" in err


@pytest.mark.large
def test_train_prints_no_tensorflow_start_up_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = str(tmp_path / "run")
    argv = ["train", "--dataset", "digits", "--train-limit", "32", "--test-limit", "16",
            "--backbone", "resnet8", "--num-branches", "2", "--aux", "1",
            "--batch-size", "32", "--epochs", "1", "--verbose", "0", "--output", run]
    result = subprocess.run([sys.executable, "-m", "keras_ahbf.cli", *argv], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "oneDNN" not in result.stderr and "I0000" not in result.stderr, result.stderr
    assert "absl::InitializeLog" not in result.stderr
