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

from keras_ahbf.testing.processes import communicate
from keras_ahbf.testing.processes import free_ports
from keras_ahbf.testing.processes import repository_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINES = {"tensorflow": "tf_mirrored", "jax": "jax_data_parallel"}


@pytest.mark.skipif(
    keras.backend.backend() not in ENGINES,
    reason="data parallelism through Keras exists for TensorFlow and JAX only",
)
def test_two_replicas_match_one_device():
    env = repository_env(ROOT)
    engine = ENGINES[keras.backend.backend()]
    proc = subprocess.run(
        [sys.executable, "-m", "keras_ahbf.testing.distribution_equivalence", engine],
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


def _equivalence_process(engine, out, env):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_ahbf.testing.distribution_equivalence", engine, str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finish(proc):
    code, out, err = communicate(proc)
    assert code == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="MultiWorkerMirroredStrategy is TensorFlow's engine",
)
def test_two_workers_match_one_device(tmp_path):
    """Two local worker processes over loopback (TF_CONFIG) equal one device."""
    import numpy as np

    base = repository_env(ROOT)
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    workers = [
        _equivalence_process(
            "tf_multi_worker", tmp_path / f"worker{i}.npz",
            dict(base, TF_CONFIG=json.dumps({"cluster": cluster,
                                             "task": {"type": "worker", "index": i}})),
        )
        for i in range(2)
    ]
    results = [_finish(w) for w in workers]
    single = _finish(_equivalence_process("single", tmp_path / "single.npz", base))
    reference = np.load(tmp_path / "single.npz")
    for i, result in enumerate(results):
        assert result["replicas"] == 2
        assert result["eval_loss"] == pytest.approx(single["eval_loss"], rel=1e-5)
        assert result["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
        weights = np.load(tmp_path / f"worker{i}.npz")
        assert len(weights.files) == len(reference.files)
        diff = max(float(np.abs(weights[k] - reference[k]).max()) for k in reference.files)
        assert diff < 1e-5
