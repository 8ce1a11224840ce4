"""`keras-ahbf export`: the target network as `.keras` and TF SavedModel."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_ahbf import _io
from keras_ahbf import cli
from keras_ahbf.testing.test_utils import to_numpy


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


def test_export_refuses_a_saved_model_folder_with_other_files(run_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    out = str(tmp_path / "t.keras")
    assert cli.main(["export", run_dir, "--output", out, "--saved-model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--saved-model" in err and "Traceback" not in err
    assert (folder / "keep.txt").read_text() == "mine"  # nothing deleted
    assert sorted(os.listdir(tmp_path)) == ["photos"]  # nothing written


def test_export_without_saved_model(run_dir, tmp_path):
    out = str(tmp_path / "t.keras")
    assert cli.main(["export", run_dir, "--output", out, "--no-saved-model"]) == 0
    assert os.listdir(tmp_path) == ["t.keras"]


@pytest.mark.parametrize(
    "option, make",
    [
        ("--output", lambda d: (str(d / "file" / "t.keras"), [])),  # Below a file.
        ("--output", lambda d: (str(d / "folder.keras"), [])),  # An existing folder.
        ("--saved-model", lambda d: (str(d / "file"), [])),  # An existing file.
        ("--saved-model", lambda d: (str(d / "file" / "sm"), [])),  # Below a file.
    ],
)
def test_export_to_an_impossible_path_is_refused_first(run_dir, tmp_path, one_line_error,
                                                       option, make):
    (tmp_path / "file").write_text("mine")
    (tmp_path / "folder.keras").mkdir()
    path, _ = make(tmp_path)
    argv = ["export", run_dir]
    if option == "--output":
        argv += ["--output", path]
    else:
        argv += ["--output", str(tmp_path / "ok.keras"), "--saved-model", path]
    err = one_line_error(2, cli.main(argv))
    assert f"{option} {path}" in err
    assert sorted(os.listdir(tmp_path)) == ["file", "folder.keras"]
    assert (tmp_path / "file").read_text() == "mine"
