"""`keras_ahbf.make_distribution`: argument checks and the engines' choice.

Creating real multi-device engines needs a fresh process (devices are fixed
when a backend starts); that is tested in `tests/distribute/`.
"""

import json

import keras
import pytest

from keras_ahbf import distribution
from keras_ahbf.distribution import make_distribution

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


_TF_CONFIGS = {
    "unset": None,
    "not json": "{cluster",
    "no task": json.dumps({"cluster": {"worker": ["localhost:1"]}}),
    "no workers": json.dumps({"cluster": {}, "task": {"type": "worker", "index": 0}}),
    "index out of range": json.dumps(
        {"cluster": {"worker": ["localhost:1", "localhost:2"]},
         "task": {"type": "worker", "index": 2}}
    ),
    "parameter server": json.dumps(
        {"cluster": {"worker": ["localhost:1"], "ps": ["localhost:2"]},
         "task": {"type": "ps", "index": 0}}
    ),
}


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TF_CONFIG is tf.distribute's")
@pytest.mark.parametrize("name", list(_TF_CONFIGS))
def test_multi_worker_needs_a_valid_tf_config(name, monkeypatch):
    value = _TF_CONFIGS[name]
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match=r"TF_CONFIG"):
        make_distribution("multi-worker")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute")
def test_multi_worker_chief_index(monkeypatch):
    from keras_ahbf import data

    cluster = {"chief": ["localhost:1"], "worker": ["localhost:2", "localhost:3"]}
    expected = {("chief", 0): 0, ("worker", 0): 1, ("worker", 1): 2}
    for (task_type, index), worker_index in expected.items():
        monkeypatch.setenv(
            "TF_CONFIG",
            json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}}),
        )
        assert data._tf_config_task() == (worker_index, 3)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute")
def test_mirrored_without_gpus_mirrors_one_cpu():
    dist = make_distribution("mirrored")
    assert dist.num_replicas == 1 and dist.is_chief
    with dist.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    # Variables created in the scope are the strategy's mirrored variables.
    assert type(model.weights[0]._value).__name__ == "MirroredVariable"


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution engine")
def test_data_parallel_over_every_device(monkeypatch):
    # The devices of this process are fixed already: asking for a different
    # CPU count must be refused, not silently ignored.
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    count = len(keras.distribution.list_devices())
    try:
        dist = make_distribution("data-parallel")
        assert dist.num_replicas == count and dist.is_chief
        assert keras.distribution.distribution() is dist.engine
        if keras.distribution.list_devices()[0].startswith("cpu"):
            with pytest.raises(ValueError, match=rf"cpu_devices={count + 1}"):
                make_distribution("data-parallel", cpu_devices=count + 1)
    finally:
        keras.distribution.set_distribution(None)
