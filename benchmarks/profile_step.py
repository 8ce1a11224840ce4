"""Per-op profile of AHBF-OKD training steps on the current Keras backend.

Runs `--steps` training steps of `resnet_cifar` (after one warm-up step)
under the backend's own profiler and prints the ops that take the time,
grouped by kind, per step:

- TensorFlow: `tf.profiler` trace; op types (`_MklNativeConv2D...`, `Mul`,
  ...) from the executor's compute threads.
- JAX: `jax.profiler` Perfetto trace; XLA:CPU thunks (`ynn_fusion` = a
  convolution run by YNNPACK, `transpose_copy_fusion` = a layout copy,
  `*_fusion` = fused elementwise / reduction loops), numeric suffixes
  dropped.
- PyTorch: `torch.profiler`; aten ops by self CPU time.

Kernels that run on worker threads may overlap, so shares are of the summed
op time, not of wall time.

Run:  KERAS_BACKEND=jax python benchmarks/profile_step.py --jit 1 --depth 8 --aux 1
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402


def _tensorflow_ops(logdir):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    counts = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name or "::" in name:  # executor bookkeeping
                    continue
                op = name.rsplit(":", 1)[-1]
                totals[op] += event.duration_ps / 1e9  # ms
                counts[op] += 1
    return totals, counts


def _jax_ops(logdir):
    path = sorted(glob.glob(os.path.join(logdir, "**", "perfetto_trace.json.gz"),
                            recursive=True))[-1]
    with gzip.open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    skip = ("$", "ThunkExecutor", "Pjit", "CommonPjRt", "PjRt", "Execute",
            "end: ", "Handle inputs", "H2D", "DevicePut")
    totals = collections.Counter()
    counts = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(skip):
            op = re.sub(r"\.\d+$", "", e["name"])
            totals[op] += e.get("dur", 0) / 1e3  # ms
            counts[op] += 1
    return totals, counts


def profile(*, jit=True, depth=32, aux=4, branches=4, classes=100, batch=128,
            steps=2, dtype_policy="float32", threads=2, top=15):
    import keras

    import keras_ahbf
    from benchmarks.bench_keras import configure_threads

    configure_threads(threads)
    keras.mixed_precision.set_global_policy(dtype_policy)
    backend = keras.backend.backend()
    model = keras_ahbf.models.resnet_cifar(
        depth, num_classes=classes, num_branches=branches, aux=aux,
        weight_decay=5e-4,
    )
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, 32, 32, 3)).astype("float32")
    y = rng.integers(0, classes, size=(batch * steps,)).astype("int32")
    model.fit(x[:batch], y[:batch], batch_size=batch, verbose=0)  # warm-up
    logdir = tempfile.mkdtemp(prefix="ahbf_profile_")
    if backend == "tensorflow":
        import tensorflow as tf

        tf.profiler.experimental.start(logdir)
        model.fit(x, y, batch_size=batch, verbose=0)
        tf.profiler.experimental.stop()
        totals, counts = _tensorflow_ops(logdir)
    elif backend == "jax":
        import jax

        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            model.fit(x, y, batch_size=batch, verbose=0)
        totals, counts = _jax_ops(logdir)
    else:
        import torch

        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model.fit(x, y, batch_size=batch, verbose=0)
        totals, counts = collections.Counter(), collections.Counter()
        for item in prof.key_averages():
            totals[item.key] += item.self_cpu_time_total / 1e3  # ms
            counts[item.key] += item.count
    total = sum(totals.values())
    rows = [
        {"op": op, "ms_per_step": ms / steps, "share": ms / total,
         "calls_per_step": counts[op] / steps}
        for op, ms in totals.most_common(top)
    ]
    return {"backend": backend, "jit_compile": jit, "dtype_policy": dtype_policy,
            "depth": depth, "aux": aux, "steps": steps,
            "total_op_ms_per_step": total / steps, "top_ops": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jit", type=int, default=1)
    ap.add_argument("--depth", type=int, default=32)
    ap.add_argument("--aux", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype-policy", default="float32")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    r = profile(jit=bool(a.jit), depth=a.depth, aux=a.aux, steps=a.steps,
                dtype_policy=a.dtype_policy, threads=a.threads, top=a.top)
    print(f"{r['backend']} jit={r['jit_compile']} {r['dtype_policy']} "
          f"ResNet-{r['depth']} aux={r['aux']}: {r['total_op_ms_per_step']:.0f} ms "
          "of op time per step")
    for row in r["top_ops"]:
        print(f"  {row['ms_per_step']:8.1f} ms {100 * row['share']:5.1f}% "
              f"{row['calls_per_step']:7.0f} calls  {row['op'][:70]}")
    if a.json:
        _common.write_json(a.json, r)
    return r


if __name__ == "__main__":
    main()
