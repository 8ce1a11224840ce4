"""`keras_ahbf.distribution.jax`: `keras.distribution.DataParallel`."""

import keras
import pytest

from keras_ahbf.distribution import make_distribution

BACKEND = keras.backend.backend()


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution engine")
def test_data_parallel_over_every_device(monkeypatch):
    # The devices of this process are fixed already: asking for a different
    # CPU count must be refused, not silently ignored.
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    count = len(keras.distribution.list_devices())
    try:
        dist = make_distribution("data-parallel")
        assert dist.num_replicas == count and dist.is_chief
        assert (dist.worker_index, dist.num_workers) == (0, 1)
        assert keras.distribution.distribution() is dist.engine
        if keras.distribution.list_devices()[0].startswith("cpu"):
            with pytest.raises(ValueError, match=rf"cpu_devices={count + 1}"):
                make_distribution("data-parallel", cpu_devices=count + 1)
    finally:
        keras.distribution.set_distribution(None)
