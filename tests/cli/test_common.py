"""The checks shared by the commands (`keras_ahbf.cli._common`)."""

import os

import pytest

from keras_ahbf.cli._common import CLIError
from keras_ahbf.cli._common import check_output_path


def test_check_output_path(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    ok = [
        ("directory", tmp_path / "new" / "deeper"),
        ("directory", tmp_path / "folder"),
        ("file", tmp_path / "new" / "t.keras"),
        ("file", tmp_path / "file"),  # Replaced atomically.
    ]
    for kind, path in ok:
        assert check_output_path("--output", str(path), kind) == os.path.abspath(path)
    bad = [
        ("directory", tmp_path / "file", "is an existing file"),
        ("directory", tmp_path / "file" / "a" / "b", "which is a file"),
        ("file", tmp_path / "folder", "is an existing directory"),
        ("file", tmp_path / "file" / "t.keras", "which is a file"),
    ]
    for kind, path, message in bad:
        with pytest.raises(CLIError, match=message) as info:
            check_output_path("--saved-model", str(path), kind)
        assert str(info.value).startswith(f"--saved-model {path} ")
        assert info.value.code == 2
