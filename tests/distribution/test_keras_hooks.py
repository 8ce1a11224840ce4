"""The private Keras and TensorFlow hooks of `keras_ahbf.distribution`.

The multi-worker workaround (`keras_ahbf.distribution.tensorflow`) overrides
`keras.Model._maybe_symbolic_build` and asks
`strategy.extended._in_multi_worker_mode()`; neither is public API. These
tests fail as soon as Keras or TensorFlow renames, removes or re-signs
them, instead of the workaround silently doing nothing.
"""

import inspect
import sys

import keras
import pytest

import keras_ahbf
from keras_ahbf.distribution import tensorflow as tf_distribution

BACKEND = keras.backend.backend()
tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="hooks of Keras' TensorFlow trainer"
)


@tensorflow_only
def test_keras_symbolic_build_hook_has_the_expected_signature():
    method = getattr(keras.Model, "_maybe_symbolic_build", None)
    assert callable(method), "Keras' TensorFlow trainer lost _maybe_symbolic_build"
    params = list(inspect.signature(method).parameters)
    assert params == ["self", "iterator", "data_batch"]
    ours = list(inspect.signature(keras_ahbf.OnlineKDModel._maybe_symbolic_build).parameters)
    assert ours == params


@tensorflow_only
def test_keras_still_reduces_batches_and_logs_in_multi_worker_mode():
    # The two code paths the workaround avoids: Keras takes them when
    # `strategy.extended._in_multi_worker_mode()` is true.
    from keras.src.backend.tensorflow import trainer

    source = inspect.getsource(trainer)
    assert "extended._in_multi_worker_mode()" in source
    assert "def _maybe_symbolic_build(self, iterator=None, data_batch=None)" in source


@tensorflow_only
def test_strategies_answer_in_multi_worker_mode():
    import tensorflow as tf

    for strategy_class in (
        tf.distribute.MirroredStrategy,
        tf.distribute.MultiWorkerMirroredStrategy,
    ):
        module = sys.modules[strategy_class.__module__]
        extended = [
            value for name, value in vars(module).items()
            if inspect.isclass(value) and issubclass(value, tf.distribute.StrategyExtended)
        ]
        assert extended, f"no StrategyExtended class next to {strategy_class.__name__}"
        for cls in extended:
            assert callable(getattr(cls, "_in_multi_worker_mode", None)), cls
    assert tf.distribute.get_strategy().extended._in_multi_worker_mode() is False


def test_in_multi_worker_mode_is_false_without_a_strategy():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert tf_distribution.in_multi_worker_mode(model) is False
