"""Where XLA:CPU spends a convolution's backward pass, and whether rewriting
the convolution in other `jax.numpy` forms helps (JAX only).

For one 3x3 stride-1 "same" convolution (NHWC input, HWIO kernel, as Keras
lays them out) it times, jitted, at the shapes of the CIFAR ResNet stages:

- `forward`: `lax.conv_general_dilated`, as Keras' JAX backend calls it;
- `input_grad` / `kernel_grad`: the two halves of its VJP, separately;
- `im2col`: the convolution as one matrix product over 9 shifted copies of
  the input (forward, and forward + both gradients);
- `shifted_dots`: the sum of 9 matrix products of shifted input views
  (forward + both gradients), and the kernel gradient alone as 9 dots.

The AHBF profile (`profile_step.py`) shows more than half of a JAX step in
layout transposes around the weight-gradient convolutions; this isolates
that cost and checks the two rewrites one could make with `keras.ops`.

Run:  python benchmarks/bench_xla_conv.py [--json out.json]
"""

import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import _common  # noqa: E402

SHAPES = ((128, 32, 16, 16), (128, 16, 32, 32), (128, 8, 64, 64))  # N, H=W, Cin, Cout


def _forms(h, c, co):
    from jax import lax
    import jax.numpy as jnp

    def conv(x, k):
        return lax.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def shifted(x):
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        return [xp[:, i:i + h, j:j + h, :] for i in range(3) for j in range(3)]

    def im2col(x, k):
        cols = jnp.concatenate(shifted(x), axis=-1)
        return jnp.einsum("nhwc,co->nhwo", cols, k.reshape(9 * c, co))

    def shifted_dots(x, k):
        kernels = k.reshape(9, c, co)
        return sum(jnp.einsum("nhwc,co->nhwo", s, kernels[t]) for t, s in enumerate(shifted(x)))

    def kernel_grad_dots(x, dy):
        grads = [jnp.einsum("nhwc,nhwo->co", s, dy) for s in shifted(x)]
        return jnp.stack(grads).reshape(3, 3, c, co)

    return conv, im2col, shifted_dots, kernel_grad_dots


def _time(fn, *args, steps):
    import jax

    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def run(shapes=SHAPES, steps=10):
    import jax
    import jax.numpy as jnp
    import numpy as np

    results = []
    for n, h, c, co in shapes:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.normal(size=(n, h, h, c)), jnp.float32)
        k = jnp.asarray(0.1 * rng.normal(size=(3, 3, c, co)), jnp.float32)
        dy = jnp.asarray(rng.normal(size=(n, h, h, co)), jnp.float32)
        conv, im2col, shifted_dots, kernel_grad_dots = _forms(h, c, co)

        def full_grad(f):
            return jax.jit(jax.grad(lambda a, b: jnp.sum(f(a, b) ** 2), argnums=(0, 1)))

        input_grad = jax.jit(lambda x, k, dy: jax.vjp(lambda a: conv(a, k), x)[1](dy)[0])
        kernel_grad = jax.jit(lambda x, k, dy: jax.vjp(lambda b: conv(x, b), k)[1](dy)[0])
        row = {
            "shape_nhwc_cout": [n, h, h, c, co],
            "forward_ms": _time(jax.jit(conv), x, k, steps=steps),
            "input_grad_ms": _time(input_grad, x, k, dy, steps=steps),
            "kernel_grad_ms": _time(kernel_grad, x, k, dy, steps=steps),
            "forward_and_grads_ms": _time(full_grad(conv), x, k, steps=steps),
            "im2col_forward_ms": _time(jax.jit(im2col), x, k, steps=steps),
            "im2col_forward_and_grads_ms": _time(full_grad(im2col), x, k, steps=steps),
            "shifted_dots_forward_and_grads_ms": _time(full_grad(shifted_dots), x, k, steps=steps),
            "kernel_grad_as_dots_ms": _time(jax.jit(kernel_grad_dots), x, dy, steps=steps),
        }
        reference = np.asarray(conv(x, k))
        scale = float(np.abs(reference).max())
        row["max_rel_diff_im2col"] = float(np.abs(np.asarray(im2col(x, k)) - reference).max()) / scale
        row["max_rel_diff_shifted_dots"] = (
            float(np.abs(np.asarray(shifted_dots(x, k)) - reference).max()) / scale
        )
        row["kernel_grad_over_forward"] = row["kernel_grad_ms"] / row["forward_ms"]
        results.append(row)
    return {
        "kind": "xla_conv",
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "rows": results,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--json", help="write the results to this JSON file")
    a = ap.parse_args(argv)
    shapes = tuple((a.batch,) + s[1:] for s in SHAPES)
    result = run(shapes, steps=a.steps)
    print("| N,H,W,Cin -> Cout | forward | input grad | kernel grad | fwd+grads "
          "| im2col fwd | im2col fwd+grads | 9 dots fwd+grads | kernel grad as 9 dots |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        n, h, _, c, co = r["shape_nhwc_cout"]
        print(f"| {n},{h},{h},{c} -> {co} | {r['forward_ms']:.1f} | {r['input_grad_ms']:.1f} "
              f"| {r['kernel_grad_ms']:.1f} | {r['forward_and_grads_ms']:.1f} "
              f"| {r['im2col_forward_ms']:.1f} | {r['im2col_forward_and_grads_ms']:.1f} "
              f"| {r['shifted_dots_forward_and_grads_ms']:.1f} | {r['kernel_grad_as_dots_ms']:.1f} |")
    if a.json:
        _common.write_json(a.json, result)
    return result


if __name__ == "__main__":
    sys.exit(main() and 0)
