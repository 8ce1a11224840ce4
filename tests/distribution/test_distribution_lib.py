"""`keras_ahbf.make_distribution`: argument checks and the engines' choice.

Creating real multi-device engines needs a fresh process (devices are fixed
when a backend starts); that is tested in `test_data_parallel.py` and
`test_cli_distribute.py`.
"""

import keras
import numpy as np
import pytest

from keras_ahbf import distribution
from keras_ahbf.distribution import make_distribution
from keras_ahbf.distribution import scale_loss_for_distribution
from keras_ahbf.testing.processes import modules_imported_by

BACKEND = keras.backend.backend()
AVAILABLE = {
    "tensorflow": {"none", "mirrored", "multi-worker"},
    "jax": {"none", "data-parallel"},
    "torch": {"none"},
}[BACKEND]


def test_none_is_one_device_and_writes():
    dist = make_distribution()
    assert (dist.kind, dist.num_replicas, dist.num_workers, dist.is_chief) == (
        "none", 1, 1, True,
    )
    with dist.scope():
        assert keras.layers.Dense(2)(keras.ops.ones((1, 3))).shape == (1, 2)


@pytest.mark.parametrize("kind", ["mirror", "", None, "MIRRORED", "ddp"])
def test_unknown_kind(kind):
    with pytest.raises(ValueError, match=r"`kind` must be one of .*Received: kind="):
        make_distribution(kind)


@pytest.mark.parametrize("kind", sorted(set(distribution.KINDS) - AVAILABLE))
def test_kind_of_another_backend_is_refused(kind):
    with pytest.raises(ValueError, match=rf"kind='{kind}'.*KERAS_BACKEND is '{BACKEND}'"):
        make_distribution(kind)


@pytest.mark.parametrize("cpu_devices", [0, -2, True, 2.0, "2"])
def test_bad_cpu_devices(cpu_devices):
    with pytest.raises(ValueError, match=r"Received: cpu_devices="):
        make_distribution("none", cpu_devices=cpu_devices)


def test_cpu_devices_need_a_data_parallel_kind():
    with pytest.raises(ValueError, match=r"kind='none', cpu_devices=2"):
        make_distribution("none", cpu_devices=2)


def test_loss_is_not_scaled_on_one_device():
    loss = keras.ops.convert_to_tensor(np.float32(3.5))
    scaled = scale_loss_for_distribution(loss)
    assert float(keras.ops.convert_to_numpy(scaled)) == 3.5


def test_import_starts_no_backend():
    assert modules_imported_by("from keras_ahbf.distribution import KINDS") == []
