"""`keras-ahbf train --distribute`: every engine end to end, in subprocesses.

A backend fixes its devices when it starts, so each run is a fresh process.
The multi-worker run uses two local worker processes over loopback
(`TF_CONFIG`); it must log exactly the losses of the 2-replica mirrored run
(same global batches, same per-replica batches, so even BatchNorm's
per-replica statistics agree), and only the chief writes the run directory.
"""

import csv
import json
import os
import subprocess
import sys

import keras
import pytest

from keras_ahbf import cli
from keras_ahbf.testing.processes import communicate
from keras_ahbf.testing.processes import free_ports
from keras_ahbf.testing.processes import repository_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = keras.backend.backend()
TINY = [
    "train", "--dataset", "digits", "--train-limit", "128", "--test-limit", "64",
    "--backbone", "resnet8", "--num-branches", "2", "--aux", "1",
    "--batch-size", "32", "--epochs", "2", "--lr", "0.02", "--verbose", "2",
]


def _env(**extra):
    return repository_env(ROOT, **extra)


def _start(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_ahbf.cli", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _losses(run):
    with open(os.path.join(run, "log.csv"), newline="") as f:
        return [float(r[k]) for r in csv.DictReader(f) for k in ("loss", "val_loss")]


def _check_complete_run(run, replicas):
    saved = json.load(open(os.path.join(run, "config.json")))
    assert saved["replicas"] == replicas
    state = json.load(open(os.path.join(run, "state.json")))
    assert state["epochs_completed"] == 2
    assert os.path.isfile(os.path.join(run, "target.keras"))
    assert os.path.isfile(os.path.join(run, "summary.json"))


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("mirrored") / "run")
    code, out, err = communicate(_start(
        TINY + ["--distribute", "mirrored", "--cpu-devices", "2", "--output", run], _env()
    ))
    assert code == 0, err[-3000:]
    assert "Data parallel (mirrored): 2 replicas on 1 worker(s)" in out
    return run


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute engines")
def test_mirrored_over_two_logical_cpus(mirrored_run):
    _check_complete_run(mirrored_run, replicas=2)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute engines")
def test_multi_worker_equals_mirrored_and_only_the_chief_writes(mirrored_run, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    run = str(tmp_path / "run")
    procs = [
        _start(
            TINY + ["--distribute", "multi-worker", "--output", run],
            _env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
        )
        for i in range(2)
    ]
    results = [communicate(p) for p in procs]
    for code, out, err in results:
        assert code == 0, err[-3000:]
    assert "2 replicas on 2 worker(s), this is worker 0" in results[0][1]
    assert "AHBF-OKD run finished" in results[0][1]
    assert "Worker 1 done; the chief writes" in results[1][1]
    _check_complete_run(run, replicas=2)
    assert sorted(os.listdir(run)) == sorted(os.listdir(mirrored_run))
    assert _losses(run) == pytest.approx(_losses(mirrored_run), rel=1e-4)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute engines")
def test_global_batch_must_split_over_the_replicas(tmp_path):
    run = str(tmp_path / "run")
    args = [a if a != "32" else "33" for a in TINY]
    code, out, err = communicate(_start(
        args + ["--distribute", "mirrored", "--cpu-devices", "2", "--output", run], _env()
    ))
    assert code == cli.EXIT_USAGE
    assert "--batch-size 33 (the global batch) must be divisible by the 2 replicas" in err
    assert not os.path.exists(run)


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution engine")
def test_jax_data_parallel_over_two_host_devices(tmp_path):
    run = str(tmp_path / "run")
    code, out, err = communicate(_start(
        TINY + ["--distribute", "data-parallel", "--cpu-devices", "2", "--output", run], _env()
    ))
    assert code == 0, err[-3000:]
    assert "Data parallel (data-parallel): 2 replicas on 1 worker(s)" in out
    _check_complete_run(run, replicas=2)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--cpu-devices", "2"], "--cpu-devices needs --distribute"),
        (["--distribute", "mirrored" if BACKEND != "tensorflow" else "data-parallel"],
         f"KERAS_BACKEND is '{BACKEND}'"),
    ],
    ids=["cpu-devices-alone", "engine-of-another-backend"],
)
def test_distribute_errors_before_anything_is_written(args, expected, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli.main(TINY + args + ["--output", run]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not os.path.exists(run)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TF_CONFIG is tf.distribute's")
def test_multi_worker_without_tf_config(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    run = str(tmp_path / "run")
    assert cli.main(TINY + ["--distribute", "multi-worker", "--output", run]) == cli.EXIT_USAGE
    assert "needs the TF_CONFIG environment variable" in capsys.readouterr().err
    assert not os.path.exists(run)
