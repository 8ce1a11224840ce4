"""Fixtures of the command-line tests: tiny options, one trained run, and
the check of a one-line error."""

import os

import pytest

from keras_ahbf import cli

# A run that trains in seconds: 64 digits, a 2-branch ResNet-8.
TINY_OPTIONS = (
    "--dataset", "digits", "--train-limit", "64", "--test-limit", "32",
    "--backbone", "resnet8", "--num-branches", "2", "--aux", "1",
    "--batch-size", "32", "--verbose", "0",
)


@pytest.fixture(scope="session")
def tiny():
    """`train` options of a run that takes seconds (a fresh list per use)."""
    return list(TINY_OPTIONS)


@pytest.fixture(scope="package")
def run_dir(tmp_path_factory):
    """A finished 2-epoch run, shared by the tests of this folder."""
    run = str(tmp_path_factory.mktemp("cli") / "run")
    assert cli.main(["train", *TINY_OPTIONS, "--epochs", "2", "--output", run]) == 0
    return run


@pytest.fixture
def one_line_error(capsys):
    """`check(code, rc)`: asserts a one-line `keras-ahbf ...: error:` on stderr
    and exit code `code`; returns the message."""

    def check(code, rc):
        err = capsys.readouterr().err.strip()
        assert rc == code, err
        assert err.startswith("keras-ahbf ") and "error:" in err
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    return check


@pytest.fixture
def csv_epochs():
    """`epochs(run)`: the `epoch` column of a run's `log.csv`."""
    import csv

    def epochs(run):
        with open(os.path.join(run, "log.csv"), newline="") as f:
            return [int(row["epoch"]) for row in csv.DictReader(f)]

    return epochs
