"""Benchmarks one Keras configuration of AHBF-OKD training (one process each).

A Keras backend cannot be switched inside a process and peak RSS is a
per-process number, so `run_all.py` starts this script once per
(backend, jit_compile, dtype policy). It measures, on random CIFAR-shaped
data (no data loading; see `bench_pipeline.py` for the input pipeline):

1. `train_ahbf`: `model.fit` of `resnet_cifar(depth, classes, branches, aux)`
   with the full AHBF loss (fusion + distillation terms), SGD(0.1, momentum
   0.9, nesterov) and coupled weight decay 5e-4 -- the same work as the
   PyTorch reference's training step. images/s = batch / median step time
   over `--steps` steps after `--warmup`; the first step (tracing and
   compilation) is reported separately. The whole-process peak RSS is read
   right after this phase, so it is the peak of AHBF training alone.
2. `train_ce_only`: the same trunk and branches, no fusion modules, each
   branch trained with cross-entropy only (same optimizer and weight
   decay). The two models are then timed in alternation, in short
   `fit` segments of the same process (AHBF, CE-only, AHBF, CE-only, ...),
   and `ahbf_overhead = median(AHBF steps) / median(CE-only steps)` of
   those segments: timing them one after the other instead let the
   process's state and the machine's drift decide the ratio (the CE-only
   phase, always second, measured up to 30 % *slower* than the AHBF one
   on a shared virtual machine).
3. `infer_target`: `predict_on_batch` of `model.target_model()` (trunk +
   branch 0, the exported network) at `--infer-batch`.
4. FLOPs: `2 * MACs` of every Conv2D and Dense layer (from their built input
   shapes; BatchNorm, ReLU, additions, pooling and the loss are not
   counted); a training step counts `3x` the forward FLOPs (forward, input
   gradients, weight gradients).

Steps are timed end to end from one `on_train_batch_end` to the next (data
feeding, the step and the loss read-back as a Python float, as a training
loop's logging does), like the reference's `loss.item()`.

Run (one configuration):

    KERAS_BACKEND=tensorflow python benchmarks/bench_keras.py --jit 0 --json out.json
"""

import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ""):  # run as a script: make the repo importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402


def configure_threads(threads, inter_op_threads=None):
    """Sets the backend's CPU thread pools (call before building anything).

    `threads` plays the role of `torch.set_num_threads` in the reference:
    TensorFlow's intra-op pool, PyTorch's intra-op pool. JAX (XLA:CPU) sizes
    its pool from the visible cores and has no such switch.
    """
    import keras

    backend = keras.backend.backend()
    info = {"threads": threads}
    if backend == "tensorflow":
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        if inter_op_threads is not None:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
        info["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    elif backend == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
        info["torch_threads"] = torch.get_num_threads()
    return info


def versions():
    import keras

    out = {"keras": keras.__version__, "numpy": np.__version__}
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax
        import jaxlib

        out["jax"] = jax.__version__
        out["jaxlib"] = jaxlib.__version__
    elif backend == "torch":
        import torch

        out["torch"] = torch.__version__
    return out


class CrossEntropyBranches:
    """Factory of the baseline: trunk + branches, cross-entropy on each branch.

    Built lazily (so `keras` is imported only after the backend is chosen).
    """

    @staticmethod
    def build(trunk, branches, weight_decay):
        import keras

        from keras_ahbf import losses
        from keras_ahbf.weight_decay import coupled_l2

        class _CEBranches(keras.Model):
            def __init__(self, trunk, branches, **kwargs):
                super().__init__(**kwargs)
                self.trunk = trunk
                self.branches = branches

            def call(self, inputs, training=None):
                x = self.trunk(inputs, training=training)
                return self.branches(x, training=training)[1]

            def compute_loss(
                self, x=None, y=None, y_pred=None, sample_weight=None, training=True
            ):
                terms = [losses.cross_entropy(y, z) for z in y_pred]
                total = sum(terms[1:], terms[0])
                if weight_decay:  # The same term as OnlineKDModel's.
                    total = total + coupled_l2(self.trainable_variables, weight_decay)
                return total

        model = _CEBranches(trunk, branches, name="ce_only_branches")
        return model


def count_flops(model):
    """Forward FLOPs per image (2 * MACs of Conv2D and Dense layers)."""
    import keras

    convs = denses = 0.0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        shape = getattr(layer, "_build_shapes_dict", None) or {}
        shape = next(iter(shape.values()), None)
        if shape is None:
            continue
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            sh, sw = layer.strides
            h, w = shape[1], shape[2]
            if layer.padding == "same":
                oh, ow = -(-h // sh), -(-w // sw)
            else:
                oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
            convs += 2.0 * oh * ow * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            fin, fout = layer.kernel.shape
            denses += 2.0 * fin * fout
    return {"conv": convs, "dense": denses, "total": convs + denses}


class _StepTimer:
    """Callback factory: end-to-end step times and per-step losses."""

    @staticmethod
    def make():
        import keras

        class StepTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times, self.losses = [], []

                self.cpu_times = []

            def on_train_begin(self, logs=None):
                self._last = time.perf_counter()
                self._last_cpu = time.process_time()

            def on_train_batch_end(self, batch, logs=None):
                loss = float(logs["loss"])  # synchronises, as loss.item()
                now, cpu = time.perf_counter(), time.process_time()
                self.times.append(now - self._last)
                self.cpu_times.append(cpu - self._last_cpu)
                self.losses.append(loss)
                self._last, self._last_cpu = now, cpu

        return StepTimer()


def time_fit(model, x, y, batch, warmup):
    """Runs one epoch of `fit` over `x`; returns timing and loss stats."""
    timer = _StepTimer.make()
    model.fit(
        x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer]
    )
    times = timer.times
    timed = times[warmup:]
    stats = _common.summarize(timed, batch)
    stats["first_step_s"] = times[0]
    # Tracing / compilation (plus one-off allocation) beyond a normal step.
    stats["compile_s"] = max(0.0, times[0] - stats["median_s"])
    # Process CPU time (all threads) per step: a diagnostic that is less
    # sensitive than wall time to other processes sharing the cores.
    stats["step_cpu_s"] = timer.cpu_times[warmup:]
    stats["median_cpu_s"] = statistics.median(stats["step_cpu_s"])
    stats["losses"] = timer.losses
    stats["loss_first_step"] = timer.losses[0]
    return stats


def time_predict(model, x, warmup, steps):
    for _ in range(warmup):
        model.predict_on_batch(x)
    times, cpu_times = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = model.predict_on_batch(x)
        np.asarray(out)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    stats = _common.summarize(times, x.shape[0])
    stats["median_cpu_s"] = statistics.median(cpu_times)
    return stats


def time_alternating(models, x, y, batch, rounds, steps):
    """Times `models` in alternating `fit` segments; step statistics per model.

    Each segment is one `fit` epoch of `1 + steps` batches (the compiled
    step is reused; the first batch of a segment, which also sets up the
    data iterator, is not timed). Alternating puts every model under the
    same process state and machine drift.
    """
    n = batch * (1 + steps)
    times = [[] for _ in models]
    cpu_times = [[] for _ in models]
    for _ in range(rounds):
        for i, model in enumerate(models):
            stats = time_fit(model, x[:n], y[:n], batch, warmup=1)
            times[i] += stats["step_times_s"]
            cpu_times[i] += stats["step_cpu_s"]
    out = []
    for wall, cpu in zip(times, cpu_times):
        stats = _common.summarize(wall, batch)
        stats["median_cpu_s"] = statistics.median(cpu)
        out.append(stats)
    return out


def _sgd():
    import keras

    return keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)


def run(
    *,
    jit_compile=False,
    dtype_policy="float32",
    depth=32,
    classes=100,
    branches=4,
    aux=4,
    image_size=32,
    batch=128,
    infer_batch=256,
    steps=10,
    warmup=3,
    weight_decay=5e-4,
    threads=2,
    inter_op_threads=None,
    phases=("train_ahbf", "train_ce_only", "infer_target"),
    seed=0,
    overhead_rounds=3,
    overhead_steps=2,
):
    """Runs the benchmark in this process; returns the result dict."""
    import keras

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(dtype_policy)
    try:
        return _run(**locals())
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _run(*, jit_compile, dtype_policy, depth, classes, branches, aux, image_size,
         batch, infer_batch, steps, warmup, weight_decay, threads,
         inter_op_threads, phases, seed, overhead_rounds, overhead_steps, **unused):
    import keras

    import keras_ahbf

    t_start = time.perf_counter()
    thread_info = configure_threads(threads, inter_op_threads)
    keras.utils.set_random_seed(seed)
    backend = keras.backend.backend()
    # Separate streams, so the first batches do not depend on the step count
    # (the jit / non-jit first-step losses are compared across runs).
    n = batch * (warmup + steps)
    x = np.random.default_rng([seed, 0]).normal(
        size=(n, image_size, image_size, 3)).astype("float32")
    y = np.random.default_rng([seed, 1]).integers(0, classes, size=(n,)).astype("int32")
    x_inf = np.random.default_rng([seed, 2]).normal(
        size=(infer_batch, image_size, image_size, 3)).astype("float32")

    result = {
        "schema_version": _common.SCHEMA_VERSION,
        "kind": "keras",
        "backend": backend,
        "jit_compile": bool(jit_compile),
        "dtype_policy": dtype_policy,
        "config": {
            "depth": depth, "classes": classes, "branches": branches, "aux": aux,
            "image_size": image_size, "batch": batch, "infer_batch": infer_batch,
            "steps": steps, "warmup": warmup, "weight_decay": weight_decay,
            "seed": seed,
        },
        "threads": thread_info,
        "kernels": list(keras_ahbf.kernels.active_kernels()),
        "versions": versions(),
        "env": {
            k: os.environ[k]
            for k in ("XLA_FLAGS", "TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS",
                      "KERAS_AHBF_KERNELS")
            if k in os.environ
        },
    }

    t0 = time.perf_counter()
    model = keras_ahbf.models.resnet_cifar(
        depth, num_classes=classes, num_branches=branches, aux=aux,
        input_shape=(image_size, image_size, 3), weight_decay=weight_decay,
    )
    model.compile(_sgd(), jit_compile=jit_compile)
    result["build_s"] = time.perf_counter() - t0
    result["params_trainable"] = int(
        sum(np.prod(v.shape) for v in model.trainable_variables)
    )
    flops_train = count_flops(model)
    target = model.target_model()
    flops_target = count_flops(target)
    result["flops"] = {
        "method": "2*MACs of Conv2D and Dense layers from their built input "
        "shapes; training step = 3x forward; BN/ReLU/add/pool/loss not counted",
        "forward_per_image": flops_train["total"],
        "train_step_per_image": 3.0 * flops_train["total"],
        "target_forward_per_image": flops_target["total"],
    }
    result["rss_mib_after_build"] = _common.peak_rss_mib()

    if "train_ahbf" in phases:
        stats = time_fit(model, x, y, batch, warmup)
        stats["gflop_s"] = stats["img_s"] * result["flops"]["train_step_per_image"] / 1e9
        result["train_ahbf"] = stats
    # Peak of everything so far: building and AHBF training.
    result["peak_rss_mib"] = _common.peak_rss_mib()

    if "train_ce_only" in phases:
        keras.utils.set_random_seed(seed)
        fresh = keras_ahbf.models.resnet_cifar(
            depth, num_classes=classes, num_branches=branches, aux=aux,
            input_shape=(image_size, image_size, 3),
        )
        baseline = CrossEntropyBranches.build(
            fresh.trunk, fresh.branches, weight_decay
        )
        baseline.compile(_sgd(), jit_compile=jit_compile)
        flops_ce = count_flops(fresh.trunk)["total"] + count_flops(fresh.branches)["total"]
        stats = time_fit(baseline, x, y, batch, warmup)
        stats["gflop_s"] = stats["img_s"] * 3.0 * flops_ce / 1e9
        stats["train_step_flops_per_image"] = 3.0 * flops_ce
        result["train_ce_only"] = stats
        if "train_ahbf" in phases:
            ahbf, ce = time_alternating(
                [model, baseline], x, y, batch, rounds=overhead_rounds,
                steps=overhead_steps,
            )
            result["overhead_alternating"] = {
                "rounds": overhead_rounds, "steps_per_segment": overhead_steps,
                "train_ahbf": ahbf, "train_ce_only": ce,
            }
            result["ahbf_overhead"] = ahbf["median_s"] / ce["median_s"]
        del baseline, fresh

    if "infer_target" in phases:
        target.compile(jit_compile=jit_compile)
        stats = time_predict(target, x_inf, warmup, steps)
        stats["gflop_s"] = stats["img_s"] * result["flops"]["target_forward_per_image"] / 1e9
        result["infer_target"] = stats

    result["peak_rss_mib_end"] = _common.peak_rss_mib()
    result["wall_s"] = time.perf_counter() - t_start
    return result


def _bool(text):
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0/1, got {text!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jit", type=_bool, default=False, help="jit_compile (0/1)")
    ap.add_argument("--dtype-policy", default="float32")
    for flag, default in (
        ("depth", 32), ("classes", 100), ("branches", 4), ("aux", 4),
        ("image-size", 32), ("batch", 128), ("infer-batch", 256),
        ("steps", 10), ("warmup", 3), ("threads", 2), ("inter-op-threads", None),
        ("seed", 0), ("overhead-rounds", 3), ("overhead-steps", 2),
    ):
        ap.add_argument("--" + flag, type=int, default=default)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument(
        "--phases", default="train_ahbf,train_ce_only,infer_target",
        help="comma-separated subset of train_ahbf,train_ce_only,infer_target",
    )
    ap.add_argument("--json", help="write the result to this JSON file")
    a = ap.parse_args(argv)
    result = run(
        jit_compile=a.jit, dtype_policy=a.dtype_policy, depth=a.depth,
        classes=a.classes, branches=a.branches, aux=a.aux,
        image_size=a.image_size, batch=a.batch, infer_batch=a.infer_batch,
        steps=a.steps, warmup=a.warmup, weight_decay=a.weight_decay,
        threads=a.threads, inter_op_threads=a.inter_op_threads,
        phases=tuple(p for p in a.phases.split(",") if p), seed=a.seed,
        overhead_rounds=a.overhead_rounds, overhead_steps=a.overhead_steps,
    )
    line = [f"{result['backend']} jit={result['jit_compile']} {result['dtype_policy']}"]
    for phase in ("train_ahbf", "train_ce_only", "infer_target"):
        if phase in result:
            line.append(f"{phase} {result[phase]['img_s']:.1f} img/s")
    if "ahbf_overhead" in result:
        line.append(f"overhead {result['ahbf_overhead']:.3f}x")
    line.append(f"peak RSS {result['peak_rss_mib']:.0f} MiB")
    print(" | ".join(line), flush=True)
    if a.json:
        _common.write_json(a.json, result)
    return result


if __name__ == "__main__":
    main()
