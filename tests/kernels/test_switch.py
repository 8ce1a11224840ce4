"""The global switch of keras_ahbf.kernels and the per-backend registry."""

import subprocess
import sys

import keras
import pytest

from keras_ahbf import kernels
from keras_ahbf.testing.processes import repository_env

EXPECTED = {
    "tensorflow": ("fused_batch_norm",),
    "torch": ("fused_batch_norm", "conv2d"),
    "jax": (),
}


def test_available_kernels_per_backend():
    assert kernels.available_kernels() == EXPECTED[keras.backend.backend()]


def test_set_enabled_and_context_manager():
    with kernels.kernels_enabled(False):
        assert not kernels.enabled()
        assert kernels.active_kernels() == ()
        assert kernels.get_kernel("fused_batch_norm") is None
        with kernels.kernels_enabled(True):
            assert kernels.enabled()
            assert kernels.active_kernels() == kernels.available_kernels()
        assert not kernels.enabled()


def test_unknown_kernel_is_none():
    assert kernels.get_kernel("no_such_kernel") is None


@pytest.mark.parametrize("flag", ["yes", 1, 0.0])
def test_set_enabled_rejects_non_bool(flag):
    with pytest.raises(TypeError, match="flag"):
        kernels.set_enabled(flag)


@pytest.mark.parametrize("value, expected", [("0", False), ("off", False), ("FALSE", False), ("1", True), ("", True)])
def test_environment_variable(value, expected):
    code = "from keras_ahbf import kernels; print(kernels.enabled())"
    root = __file__.rsplit("/tests/", 1)[0]
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=repository_env(root, KERAS_AHBF_KERNELS=value),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == str(expected)
