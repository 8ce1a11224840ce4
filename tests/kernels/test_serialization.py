"""A model saved with the kernels on loads and predicts the same with them
off, and on another backend; the file holds Keras' own variables."""

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from keras_ahbf import kernels
from keras_ahbf.models import resnet_cifar
from keras_ahbf.testing.processes import repository_env
from keras_ahbf.testing.test_utils import to_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOAD = """
import sys, numpy as np, keras, keras_ahbf
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]), verbose=0)))
"""


def _saved_target(tmp_path):
    keras.utils.set_random_seed(0)
    with kernels.kernels_enabled(True):
        model = resnet_cifar(8, num_classes=5, num_branches=2, aux=1, input_shape=(8, 8, 3))
        model.compile(optimizer="sgd", jit_compile=False)
        x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
        y = np.arange(8) % 5
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        target = model.target_model()
        expected = to_numpy(target.predict(x, verbose=0))
    path = str(tmp_path / "target.keras")
    target.save(path)
    np.save(tmp_path / "x.npy", x)
    return path, x, expected


def test_saved_with_kernels_loads_without(tmp_path):
    path, x, expected = _saved_target(tmp_path)
    with kernels.kernels_enabled(False):
        loaded = keras.saving.load_model(path)
        off = to_numpy(loaded.predict(x, verbose=0))
    with kernels.kernels_enabled(True):
        on = to_numpy(loaded.predict(x, verbose=0))
    np.testing.assert_allclose(off, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(on, expected, rtol=1e-4, atol=1e-5)


def test_saved_variables_are_keras_batch_norm_and_conv(tmp_path):
    path, _, _ = _saved_target(tmp_path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    text = json.dumps(config)
    assert '"keras_ahbf>FusedBatchNormalization"' in text
    assert '"keras_ahbf>FastConv2D"' in text


@pytest.mark.parametrize("other", ["tensorflow", "jax", "torch"])
def test_loads_on_another_backend_without_kernels(tmp_path, other):
    if other == keras.backend.backend():
        pytest.skip("same backend")
    path, _, expected = _saved_target(tmp_path)
    out = str(tmp_path / "out.npy")
    proc = subprocess.run(
        [sys.executable, "-c", LOAD, path, str(tmp_path / "x.npy"), out],
        env=repository_env(ROOT, KERAS_BACKEND=other, KERAS_AHBF_KERNELS="0"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-4, atol=1e-5)
