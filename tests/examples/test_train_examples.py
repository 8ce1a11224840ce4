"""Runs examples/train_cifar.py and examples/train_imagenet.py briefly (--quick)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(script, tmp_path, **env_vars):
    env = dict(os.environ)
    env.update(env_vars)
    env["KERAS_BACKEND"] = keras.backend.backend()
    env["KERAS_AHBF_OUTPUT_DIR"] = str(tmp_path / "out")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", script), "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_train_cifar_example(tmp_path):
    # A stand-in for the CIFAR-100 copy: random images, the real format.
    rng = np.random.default_rng(0)
    npz = tmp_path / "cifar100.npz"
    np.savez(
        npz,
        x_train=rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 100, 300),
        x_test=rng.integers(0, 256, (150, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 100, 150),
    )
    out = _run("train_cifar.py", tmp_path, CIFAR100_DIR=str(npz))
    assert "train: (256, 32, 32, 3), test: (128, 32, 32, 3)" in out
    assert "blocks per branch: [1, 2]" in out
    assert "fused teacher 1 top-1" in out and "target top-1: last" in out
    state = json.load(open(tmp_path / "out" / "state.json"))
    assert state["epochs_completed"] == 2
    assert (tmp_path / "out" / "resnet8_cifar100.keras").exists()
    assert (tmp_path / "out" / "plots" / "fusion_weights.png").exists()
    if keras.backend.backend() == "tensorflow":  # Same code on every backend.
        # Running it again resumes the finished run instead of training again.
        again = _run("train_cifar.py", tmp_path, CIFAR100_DIR=str(npz))
        assert "Resuming after epoch 2" in again and "Epoch 1/2" not in again


def test_train_imagenet_example(tmp_path):
    out = _run("train_imagenet.py", tmp_path)
    assert "a training batch: (4, 224, 224, 3) (4,)" in out
    assert "blocks in stages 3 and 4 per branch: [[2, 2], [3, 2]]" in out
    assert "target ResNet-18: 11,689,512 trainable parameters" in out
    assert "fused teacher 1 top-1" in out
    assert (tmp_path / "out" / "resnet18_imagenet.keras").exists()
