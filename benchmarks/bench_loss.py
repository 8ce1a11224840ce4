"""Cost of keras_ahbf's own code in a training step: the loss and compute_loss.

Times, on fixed logits of the benchmark model (B = 4, batch 128, 100
classes), the forward + backward pass of

- `ahbf_loss`: the 7 cross-entropy and 9 KL terms alone (gradients w.r.t.
  the logits);
- `compute_loss`: `OnlineKDModel.compute_loss` as the trainer calls it --
  `ahbf_loss`, the coupled L2 over every trainable weight, extra losses and
  the metric trackers -- (gradients w.r.t. the logits and all weights);

on the current backend the way its trainer runs them: eagerly (PyTorch),
in a `tf.function` (TensorFlow; with XLA when `--jit 1`) or jitted (JAX;
op by op with `--jit 0`). This isolates the part of a step that this package's Python code
controls from the convolutions (see `bench_keras.py` for whole steps).

Run:  KERAS_BACKEND=torch python benchmarks/bench_loss.py --json loss.json
"""

import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402


def _timeit(fn, warmup, steps):
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"median_ms": 1e3 * statistics.median(times),
            "median_cpu_ms": 1e3 * statistics.median(cpu), "steps": steps}


def _make_fns(model, y, y_pred, jit):
    """Returns {name: zero-argument callable running forward + backward}."""
    import keras

    from keras_ahbf import losses

    backend = keras.backend.backend()
    z, e = y_pred["branch_logits"], y_pred["fused_logits"]
    kw = dict(rampup_weight=model.rampup_weight())

    if backend == "torch":
        import torch

        def leaf(t):
            return t.detach().clone().requires_grad_(True)

        z, e = [leaf(t) for t in z], [leaf(t) for t in e]
        pred = dict(y_pred, branch_logits=z, fused_logits=e)
        y_t = torch.as_tensor(y)

        def loss_only():
            total = losses.ahbf_loss(y_t, z, e, **kw)["total"]
            torch.autograd.grad(total, z + e)

        params = [v.value for v in model.trainable_variables]

        def compute_loss():
            total = model.compute_loss(y=y_t, y_pred=pred)
            torch.autograd.grad(total, z + e + params)

        return {"ahbf_loss": loss_only, "compute_loss": compute_loss}

    if backend == "tensorflow":
        import tensorflow as tf

        z = [tf.constant(t) for t in z]
        e = [tf.constant(t) for t in e]
        y_t = tf.constant(y)

        def loss_only_fn():
            with tf.GradientTape() as tape:
                tape.watch(z + e)
                total = losses.ahbf_loss(y_t, z, e, **kw)["total"]
            return tape.gradient(total, z + e)

        def compute_loss_fn():
            with tf.GradientTape() as tape:
                tape.watch(z + e)
                pred = dict(y_pred, branch_logits=z, fused_logits=e)
                total = model.compute_loss(y=y_t, y_pred=pred)
            return tape.gradient(total, z + e + model.trainable_variables)

        if jit is not None:
            loss_only_fn = tf.function(loss_only_fn, jit_compile=jit)
            compute_loss_fn = tf.function(compute_loss_fn, jit_compile=jit)
        return {
            "ahbf_loss": lambda: [g.numpy() for g in loss_only_fn()][:1],
            "compute_loss": lambda: [g.numpy() for g in compute_loss_fn()][:1],
        }

    if backend == "jax":
        import jax

        def loss_only_fn(z, e):
            return losses.ahbf_loss(y, z, e, **kw)["total"]

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        metrics_vars = [v.value for v in model.metrics_variables]

        def compute_loss_fn(trainable, z, e):
            pred = dict(y_pred, branch_logits=z, fused_logits=e)
            loss, _ = model.stateless_compute_loss(
                trainable, non_trainable, metrics_vars, y=y, y_pred=pred
            )
            return loss

        g1 = jax.grad(loss_only_fn, argnums=(0, 1))
        g2 = jax.grad(compute_loss_fn, argnums=(0, 1, 2))
        if jit:
            g1, g2 = jax.jit(g1), jax.jit(g2)
        return {
            "ahbf_loss": lambda: jax.block_until_ready(g1(z, e)),
            "compute_loss": lambda: jax.block_until_ready(g2(trainable, z, e)),
        }
    raise NotImplementedError(backend)


def run(*, jit=True, depth=32, classes=100, branches=4, aux=4, batch=128,
        steps=30, warmup=5, weight_decay=5e-4, threads=2):
    import keras

    import keras_ahbf
    from benchmarks.bench_keras import configure_threads, versions

    thread_info = configure_threads(threads)
    keras.utils.set_random_seed(0)
    backend = keras.backend.backend()
    model = keras_ahbf.models.resnet_cifar(
        depth, num_classes=classes, num_branches=branches, aux=aux,
        weight_decay=weight_decay,
    )
    model.compile("sgd")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, classes, size=(batch,)).astype("int32")
    y_pred = model.all_outputs(x, training=False)
    if backend == "torch":
        jit = False  # eager is what the torch trainer runs by default
    fns = _make_fns(model, y, y_pred, jit if backend != "torch" else None)
    result = {
        "schema_version": _common.SCHEMA_VERSION,
        "kind": "loss",
        "backend": backend,
        "jit_compile": bool(jit),
        "threads": thread_info,
        "versions": versions(),
        "trainable_variables": len(model.trainable_variables),
    }
    for name, fn in fns.items():
        result[name] = _timeit(fn, warmup, steps)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jit", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    result = run(jit=bool(a.jit), steps=a.steps, warmup=a.warmup, threads=a.threads)
    print(f"{result['backend']} jit={result['jit_compile']}: " + ", ".join(
        f"{k} {result[k]['median_ms']:.2f} ms (cpu {result[k]['median_cpu_ms']:.2f})"
        for k in ("ahbf_loss", "compute_loss")), flush=True)
    if a.json:
        _common.write_json(a.json, result)
    return result


if __name__ == "__main__":
    main()
