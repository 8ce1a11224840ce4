"""Runs examples/custom_backbone.py briefly (its --quick mode)."""

import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "custom_backbone.py")


# About a minute per backend (a subprocess and three small trainings).
@pytest.mark.large
def test_custom_backbone_example_runs(tmp_path):
    env = dict(os.environ)
    env["KERAS_BACKEND"] = keras.backend.backend()
    env["KERAS_AHBF_OUTPUT_DIR"] = str(tmp_path)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, SCRIPT, "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "blocks per branch: [1, 2, 3]" in out
    assert "depth per branch: [2, 4, 6]" in out
    assert "blocks per branch: [1, 2]" in out
    assert "no layer named 'down_rel'" in out
    assert "do not fit together" in out
    assert "saved the target network" in out
    assert os.path.exists(tmp_path / "small_cnn_target.keras")
