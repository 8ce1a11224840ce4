"""Smoke test of the benchmark suite: its code paths on tiny sizes, no timing.

Runs each benchmark in-process on the current backend with a tiny model and
one or two steps, and checks the JSON schema that `run_all.py` aggregates.
It asserts nothing about speed (numbers on a shared CI machine mean nothing).
"""

import json
import math

import keras
import pytest

from benchmarks import _common, bench_keras, bench_loss, bench_matmul, run_all

TINY = dict(depth=8, classes=4, branches=2, aux=1, image_size=8, batch=4,
            infer_batch=4, steps=1, warmup=1, threads=None, overhead_rounds=2,
            overhead_steps=1)
# Eager JAX compiles every op on first use: slower than one jitted step.
JIT = keras.backend.backend() == "jax"


def _is_number(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def _check_timing(stats, batch):
    for key in ("median_s", "img_s", "min_s", "max_s", "median_cpu_s"):
        assert _is_number(stats[key]) and stats[key] > 0, key
    assert stats["batch"] == batch
    assert stats["steps"] == len(stats["step_times_s"]) >= 1


@pytest.fixture(scope="module")
def keras_result():
    return bench_keras.run(jit_compile=JIT, **TINY)


def test_bench_keras_schema(keras_result):
    r = keras_result
    assert r["schema_version"] == _common.SCHEMA_VERSION
    assert r["kind"] == "keras" and r["backend"] == keras.backend.backend()
    assert r["jit_compile"] is JIT and r["dtype_policy"] == "float32"
    for phase, batch in (("train_ahbf", 4), ("train_ce_only", 4), ("infer_target", 4)):
        _check_timing(r[phase], batch)
        assert _is_number(r[phase]["gflop_s"])
    for phase in ("train_ahbf", "train_ce_only"):
        assert _is_number(r[phase]["compile_s"]) and r[phase]["compile_s"] >= 0
        assert len(r[phase]["losses"]) == 2 and all(map(_is_number, r[phase]["losses"]))
    alternating = r["overhead_alternating"]
    for phase in ("train_ahbf", "train_ce_only"):
        # 2 rounds of one segment per model, 1 timed step each.
        _check_timing(alternating[phase], 4)
        assert alternating[phase]["steps"] == 2
    assert r["ahbf_overhead"] == pytest.approx(
        alternating["train_ahbf"]["median_s"] / alternating["train_ce_only"]["median_s"])
    assert r["peak_rss_mib"] > 0 and r["peak_rss_mib_end"] >= r["peak_rss_mib"]
    flops = r["flops"]
    assert flops["train_step_per_image"] == pytest.approx(3 * flops["forward_per_image"])
    assert 0 < flops["target_forward_per_image"] < flops["forward_per_image"]
    json.dumps(r)  # serialisable as is


def test_flop_count_of_a_known_layer():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.Conv2D(7, 1, strides=2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, outputs)
    want = 2 * (8 * 8 * 3 * 3 * 3 * 5 + 4 * 4 * 5 * 7 + 4 * 4 * 7 * 2)
    assert bench_keras.count_flops(model)["total"] == want


def test_mixed_bfloat16_run_restores_the_policy():
    options = dict(TINY, infer_batch=2)
    r = bench_keras.run(dtype_policy="mixed_bfloat16", phases=("train_ahbf",),
                        jit_compile=JIT, **options)
    assert r["dtype_policy"] == "mixed_bfloat16"
    assert all(map(_is_number, r["train_ahbf"]["losses"]))
    assert keras.mixed_precision.global_policy().name == "float32"


def test_bench_loss_schema():
    r = bench_loss.run(depth=8, classes=4, branches=2, aux=1, batch=4, steps=1,
                       warmup=1, threads=None)
    for key in ("ahbf_loss", "compute_loss"):
        assert _is_number(r[key]["median_ms"]) and r[key]["steps"] == 1


def test_matmul_schema():
    r = bench_matmul.run(threads=None, sizes=(64,), seconds=0.01)
    assert r["peak_float32_gflop_s"] > 0
    assert set(r["gflop_s"]) >= {"numpy_float32"}


def test_summary_and_markdown(keras_result):
    reference = {
        "train_ahbf_img_s": 10.0, "train_target_img_s": 30.0,
        "infer_target_img_s": 100.0, "peak_rss_mib": 1000.0, "loss_first_step": 1.0,
    }
    bf16 = dict(keras_result, dtype_policy="mixed_bfloat16",
                config_name=f"{keras_result['backend']}:0:mixed_bfloat16")
    results = {
        "date": "2000-01-01_0000", "command": "run_all.py", "schema_version": 1,
        "machine": _common.machine_info(),
        "settings": {"steps": 1, "warmup": 1, "threads": 2},
        "runs": {
            "reference_a": reference, "reference_b": reference,
            "matmul_peak": {"peak_float32_gflop_s": 100.0},
            "keras_a": dict(keras_result, config_name=f"{keras_result['backend']}:0"),
            "keras_b": bf16,
        },
        "errors": {},
    }
    summary = run_all.summarize(results)
    results["summary"] = summary
    assert summary["reference"]["train_ahbf_img_s"] == 10.0
    rows = {r["config"]: r for r in summary["rows"]}
    row = rows[f"{keras_result['backend']}:0"]
    assert row["train_vs_reference"] == pytest.approx(keras_result["train_ahbf"]["img_s"] / 10.0)
    assert rows[bf16["config_name"]]["speedup_vs_float32"] == pytest.approx(1.0)
    assert set(summary["targets"]) >= {"best_train_vs_reference", "ahbf_overhead_best",
                                       "infer_vs_reference_best", "bf16_speedup_on_best_backend"}
    from keras_ahbf import kernels

    assert keras_result["kernels"] == list(kernels.active_kernels())
    assert row["kernels"] == keras_result["kernels"]
    md = run_all.to_markdown(results)
    assert md.count("\n| ") >= 4 and "x ref" in md and "| kernels |" in md
    # A `:nokernels` row is reported but never counts for the targets.
    results["runs"]["keras_c"] = dict(
        keras_result, kernels=[], config_name=f"{keras_result['backend']}:0:nokernels",
        train_ahbf=dict(keras_result["train_ahbf"], img_s=1e9))
    summary = run_all.summarize(results)
    assert summary["targets"]["best_train_vs_reference"]["config"] == f"{keras_result['backend']}:0"
    json.dumps(results)


def test_config_parsing():
    assert run_all.parse_config("jax:1:mixed_bfloat16") == {
        "name": "jax:1:mixed_bfloat16", "backend": "jax", "jit": True,
        "dtype_policy": "mixed_bfloat16", "kernels": True}
    assert run_all.parse_config("torch:0:float32:nokernels") == {
        "name": "torch:0:float32:nokernels", "backend": "torch", "jit": False,
        "dtype_policy": "float32", "kernels": False}
    assert run_all.parse_config("tensorflow:0:nokernels")["kernels"] is False
    with pytest.raises(ValueError, match="backend:jit"):
        run_all.parse_config("mxnet:1")


def test_bench_data_format_runs():
    """Both formats train and predict, except channels-first on TensorFlow
    without oneDNN, which the script reports as unsupported (in a
    subprocess: the script sets the
    global image data format)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for data_format in ("channels_last", "channels_first"):
        proc = subprocess.run(
            [sys.executable, "benchmarks/bench_data_format.py", data_format, "--steps", "3"],
            cwd=root, capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["data_format"] == data_format
        assert result["backend"] == keras.backend.backend()
        if "unsupported" in result:
            # Only TensorFlow without oneDNN (NHWC-only CPU kernels) may
            # refuse, and only channels-first.
            assert keras.backend.backend() == "tensorflow", result
            assert data_format == "channels_first", result
            assert "NHWC" in result["unsupported"]
            continue
        assert _is_number(result["train_step_cpu_ms"]) and result["train_step_cpu_ms"] > 0
        assert _is_number(result["infer_256_cpu_ms"]) and result["infer_256_cpu_ms"] > 0


def test_configurations_are_compared_with_the_reference_runs_around_them(keras_result):
    """Bracketing and rounds: each run's ratio uses the mean of its two
    neighbouring reference runs; a configuration's row is the median over
    its rounds."""

    def reference(img_s):
        return {"train_ahbf_img_s": img_s, "train_target_img_s": 1.0,
                "infer_target_img_s": 2 * img_s, "peak_rss_mib": 1000.0}

    name = f"{keras_result['backend']}:0"
    img_s = keras_result["train_ahbf"]["img_s"]
    runs = {f"reference_{i}": reference(v) for i, v in enumerate((10.0, 30.0, 50.0, 70.0))}
    for r, anchors in enumerate((("reference_0", "reference_1"),
                                 ("reference_1", "reference_2"),
                                 ("reference_2", "reference_3"))):
        runs[f"keras_round{r}"] = dict(keras_result, config_name=name, round=r,
                                       anchor_runs=list(anchors))
    summary = run_all.summarize({"runs": runs})
    assert summary["reference"]["runs"] == 4
    assert summary["reference"]["train_ahbf_img_s"] == pytest.approx(40.0)
    (row,) = summary["rows"]
    assert row["rounds"] == 3
    # Anchors 20, 40 and 60 img/s: ratios img_s/20, img_s/40, img_s/60; median img_s/40.
    assert row["train_vs_reference_each"] == pytest.approx([img_s / 20, img_s / 40, img_s / 60])
    assert row["train_vs_reference"] == pytest.approx(img_s / 40)
    assert row["reference_train_img_s"] == pytest.approx(40.0)
    assert row["infer_vs_reference"] == pytest.approx(keras_result["infer_target"]["img_s"] / 80)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="XLA:CPU micro-benchmark")
def test_bench_xla_conv_forms_agree():
    from benchmarks import bench_xla_conv

    r = bench_xla_conv.run(shapes=((2, 8, 4, 6),), steps=1)
    (row,) = r["rows"]
    assert row["shape_nhwc_cout"] == [2, 8, 8, 4, 6]
    for key in ("forward_ms", "input_grad_ms", "kernel_grad_ms", "im2col_forward_and_grads_ms",
                "shifted_dots_forward_and_grads_ms", "kernel_grad_as_dots_ms"):
        assert _is_number(row[key]) and row[key] > 0, key
    # The rewritten forms compute the same convolution as lax.conv.
    assert row["max_rel_diff_im2col"] < 1e-5
    assert row["max_rel_diff_shifted_dots"] < 1e-5
