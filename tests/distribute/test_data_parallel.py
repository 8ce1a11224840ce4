"""OnlineKDModel on the engines' data parallelism equals one device.

tf.distribute.MirroredStrategy over 2 logical CPUs (TensorFlow) and
keras.distribution.DataParallel over 2 host devices (JAX): the reported loss
and the weights after one SGD step must equal the single-device run's (the
hand-written loss is divided by the replica count under tf.distribute).
"""

import json
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINES = {"tensorflow": "tf_mirrored", "jax": "jax_data_parallel"}


@pytest.mark.skipif(
    keras.backend.backend() not in ENGINES,
    reason="data parallelism through Keras exists for TensorFlow and JAX only",
)
def test_two_replicas_match_one_device():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    engine = ENGINES[keras.backend.backend()]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.distribute._equivalence", engine],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    single, multi = result["eval_loss"]
    assert multi == pytest.approx(single, rel=1e-5)
    single, multi = result["train_loss"]
    assert multi == pytest.approx(single, rel=1e-5)
    assert result["max_weight_diff"] < 1e-5
