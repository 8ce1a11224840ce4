"""Throughput of the CIFAR training input pipeline (images/s).

Iterates `keras_ahbf.data.make_dataset(x, y, dataset="cifar100",
batch_size=128, training=True)` -- shuffle, 4-pixel pad + random crop +
flip, normalisation, batching -- over uint8 images and reports images/s
(median over `--batches` batches after `--warmup`, and overall). The images
are synthetic uint8 arrays unless `--data PATH` names a CIFAR-100 `.npz`
(`x_train`, `y_train`). The pipeline must be much faster than training so
it is never the bottleneck.

Run:  python benchmarks/bench_pipeline.py --json pipeline.json
"""

import argparse
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import _common  # noqa: E402


def run(*, images=10000, batch=128, batches=60, warmup=5, data=None, seed=0,
        dataset="cifar100"):
    import numpy as np

    from keras_ahbf import data as kdata

    if data:
        with np.load(data) as arrays:
            x, y = arrays["x_train"][:images], arrays["y_train"][:images]
        source = "npz"
    else:
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 256, size=(images, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 100, size=(images,)).astype(np.int64)
        source = "synthetic uint8"
    y = np.asarray(y).reshape(-1)
    ds = kdata.make_dataset(x, y, dataset=dataset, batch_size=batch,
                            training=True, seed=seed)
    iterator = iter(ds.repeat())
    for _ in range(warmup):
        next(iterator)
    times = []
    t_start = time.perf_counter()
    for _ in range(batches):
        t0 = time.perf_counter()
        images_batch, _ = next(iterator)
        np.asarray(images_batch)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_start
    stats = _common.summarize(times, batch)
    stats["overall_img_s"] = batch * batches / total
    return {
        "schema_version": _common.SCHEMA_VERSION,
        "kind": "pipeline",
        "source": source,
        "dataset": dataset,
        "images": int(x.shape[0]),
        "pipeline": "make_dataset(training=True): shuffle, pad 4 + random crop "
        "32 + horizontal flip, normalise, batch",
        "input_pipeline": stats,
        "peak_rss_mib": _common.peak_rss_mib(),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--data", help="optional CIFAR-100 .npz with x_train, y_train")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    result = run(images=a.images, batch=a.batch, batches=a.batches,
                 warmup=a.warmup, data=a.data)
    s = result["input_pipeline"]
    print(f"input pipeline ({result['source']}): {s['img_s']:.0f} img/s median, "
          f"{s['overall_img_s']:.0f} img/s overall", flush=True)
    if a.json:
        _common.write_json(a.json, result)
    return result


if __name__ == "__main__":
    main()
