"""Measures this machine's float32 (and bfloat16) matrix-multiply peak.

The achieved GFLOP/s of every training benchmark is reported against this
number. It is the best of square matmuls (n = 512 ... 2048) with PyTorch
(oneDNN/MKL GEMM) at `--threads` threads, 2 * n^3 FLOPs each; NumPy's BLAS
is measured too and the larger of the two is the peak.

Run:  python benchmarks/bench_matmul.py --threads 2 --json matmul.json
"""

import argparse
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import _common  # noqa: E402


def _best_gflops(fn, n, seconds):
    fn()  # warm-up (allocations, JIT of the GEMM kernels)
    best, spent = 0.0, 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        spent += dt
        best = max(best, 2.0 * n**3 / dt / 1e9)
    return best


def run(threads=2, sizes=(512, 1024, 2048), seconds=1.0):
    import numpy as np

    result = {"schema_version": _common.SCHEMA_VERSION, "kind": "matmul",
              "threads": threads, "sizes": list(sizes), "gflop_s": {}}
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        for dtype in ("float32", "bfloat16"):
            best = {}
            for n in sizes:
                a = torch.randn(n, n).to(getattr(torch, dtype))
                b = torch.randn(n, n).to(getattr(torch, dtype))
                best[n] = _best_gflops(lambda: torch.mm(a, b), n, seconds)
            result["gflop_s"][f"torch_{dtype}"] = best
        result["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a test dependency.
        pass
    best = {}
    for n in sizes:
        a = np.random.rand(n, n).astype("float32")
        b = np.random.rand(n, n).astype("float32")
        best[n] = _best_gflops(lambda: a @ b, n, seconds)
    result["gflop_s"]["numpy_float32"] = best
    f32 = [v for k, d in result["gflop_s"].items() if k.endswith("float32") for v in d.values()]
    result["peak_float32_gflop_s"] = max(f32)
    bf16 = result["gflop_s"].get("torch_bfloat16")
    if bf16:
        result["peak_bfloat16_gflop_s"] = max(bf16.values())
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0, help="per size and dtype")
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    result = run(a.threads, tuple(int(s) for s in a.sizes.split(",")), a.seconds)
    print(f"float32 matmul peak {result['peak_float32_gflop_s']:.1f} GFLOP/s"
          + (f", bfloat16 {result['peak_bfloat16_gflop_s']:.1f}"
             if "peak_bfloat16_gflop_s" in result else ""), flush=True)
    if a.json:
        _common.write_json(a.json, result)
    return result


if __name__ == "__main__":
    main()
