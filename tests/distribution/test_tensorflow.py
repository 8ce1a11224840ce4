"""`keras_ahbf.distribution.tensorflow`: TF_CONFIG, strategies, loss scaling."""

import json

import keras
import numpy as np
import pytest

from keras_ahbf.distribution import make_distribution
from keras_ahbf.distribution import scale_loss_for_distribution
from keras_ahbf.distribution import tensorflow as tf_distribution

BACKEND = keras.backend.backend()

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


@pytest.mark.parametrize("name", list(_TF_CONFIGS))
@pytest.mark.parametrize(
    "check",
    [
        pytest.param(
            lambda: make_distribution("multi-worker"),
            id="make_distribution",
            marks=pytest.mark.skipif(
                BACKEND != "tensorflow", reason="TF_CONFIG is tf.distribute's"
            ),
        ),
        # Read before TensorFlow starts: no backend needed.
        pytest.param(tf_distribution.tf_config_task, id="tf_config_task"),
    ],
)
def test_multi_worker_needs_a_valid_tf_config(name, check, monkeypatch):
    value = _TF_CONFIGS[name]
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match=r"TF_CONFIG"):
        check()


def test_multi_worker_chief_index(monkeypatch):
    cluster = {"chief": ["localhost:1"], "worker": ["localhost:2", "localhost:3"]}
    expected = {("chief", 0): 0, ("worker", 0): 1, ("worker", 1): 2}
    for (task_type, index), worker_index in expected.items():
        monkeypatch.setenv(
            "TF_CONFIG",
            json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}}),
        )
        assert tf_distribution.tf_config_task() == (worker_index, 3)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute")
def test_unknown_strategy_kind():
    with pytest.raises(ValueError, match=r"Received: kind='ps'"):
        tf_distribution.tf_distribute_strategy("ps")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute")
def test_mirrored_without_gpus_mirrors_one_cpu():
    dist = make_distribution("mirrored")
    assert dist.num_replicas == 1 and dist.is_chief
    with dist.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    # Variables created in the scope are the strategy's mirrored variables.
    assert type(model.weights[0]._value).__name__ == "MirroredVariable"
    # One replica: nothing to scale, and no multi-worker workaround.
    assert not tf_distribution.in_multi_worker_mode(model)
    logs = {"loss": keras.ops.convert_to_tensor(1.0)}
    assert tf_distribution.multi_worker_logs(model, logs) is logs


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute")
def test_loss_is_divided_by_the_replicas_in_sync():
    import tensorflow as tf

    class FakeStrategy:  # what `tf.distribute.get_strategy()` reports
        num_replicas_in_sync = 4

    loss = tf.constant(2.0)
    original = tf.distribute.get_strategy
    tf.distribute.get_strategy = lambda: FakeStrategy()
    try:
        scaled = scale_loss_for_distribution(loss)
    finally:
        tf.distribute.get_strategy = original
    assert float(scaled) == 0.5


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute")
def test_scaling_equals_keras_own():
    # Keras scales its own losses with this private function; ours uses
    # public TensorFlow API and must agree with it.
    from keras.src.losses.loss import scale_loss_for_distribution as keras_scale

    loss = keras.ops.convert_to_tensor(np.float32(3.0))
    assert float(scale_loss_for_distribution(loss)) == float(keras_scale(loss))


def test_workaround_is_inert_off_tensorflow_strategies():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert not tf_distribution.in_multi_worker_mode(model)
    sentinel = object()
    assert tf_distribution.symbolic_build_inputs(model, sentinel, None) == (sentinel, None)
    logs = {"loss": 1.0}
    assert tf_distribution.multi_worker_logs(model, logs) is logs
