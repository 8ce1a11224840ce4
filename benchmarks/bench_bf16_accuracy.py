"""Reduced-budget accuracy check of mixed_bfloat16 against float32.

Trains the same AHBF-OKD model with the same seeds under the `float32` and
`mixed_bfloat16` policies (the loss is always computed in float32) and
compares the target branch's test accuracy. The data set is scikit-learn's
bundled digits (no download; 1,437 train / 360 test 8x8 images) with the
package's standard pipeline (`keras_ahbf.data`), the model a ResNet-8 with
4 branches, `aux=1`, SGD(momentum 0.9, nesterov, learning rate 0.05
cosine-decayed to 0) with coupled weight
decay 5e-4 and a short ramp-up. "Within noise" means the bf16 mean lies
within the seed-to-seed spread of float32 (reported as `max - min`) plus
one test example.

Run:  KERAS_BACKEND=tensorflow python benchmarks/bench_bf16_accuracy.py --json acc.json
"""

import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import _common  # noqa: E402


def train_once(policy, seed, epochs, batch, arrays, threads=None):
    import keras

    import keras_ahbf
    from keras_ahbf import data as kdata

    (x_train, y_train), (x_test, y_test) = arrays
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(seed)
    model = keras_ahbf.models.resnet_cifar(
        8, num_classes=10, num_branches=4, aux=1, input_shape=(8, 8, 1),
        weight_decay=5e-4, rampup_epochs=max(1, epochs // 2),
    )
    train = kdata.make_dataset(x_train, y_train, dataset="digits",
                               batch_size=batch, training=True, seed=seed)
    steps = -(-int(x_train.shape[0]) // batch) * epochs
    lr = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=steps)
    model.compile(keras.optimizers.SGD(lr, momentum=0.9, nesterov=True))
    test = kdata.make_dataset(x_test, y_test, dataset="digits",
                              batch_size=256, training=False)
    t0 = time.perf_counter()
    model.fit(train, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - t0
    logs = model.evaluate(test, verbose=0, return_dict=True)
    keras.mixed_precision.set_global_policy("float32")
    return {
        "policy": policy, "seed": seed, "fit_s": seconds,
        "target_accuracy": float(logs["branch_0_accuracy"]),
        "best_ta_accuracy": max(float(v) for k, v in logs.items()
                                if k.startswith("ta_") and k.endswith("_accuracy")),
        "test_loss": float(logs["loss"]),
    }


def run(*, seeds=(0, 1), epochs=10, batch=64, threads=2):
    import keras

    from benchmarks.bench_keras import configure_threads, versions
    from keras_ahbf import data as kdata

    thread_info = configure_threads(threads)
    arrays = kdata.load_arrays("digits")
    runs = [train_once(p, s, epochs, batch, arrays)
            for s in seeds for p in ("float32", "mixed_bfloat16")]
    by = {p: [r["target_accuracy"] for r in runs if r["policy"] == p]
          for p in ("float32", "mixed_bfloat16")}
    n_test = int(arrays[1][0].shape[0])
    f32, bf16 = by["float32"], by["mixed_bfloat16"]
    spread = max(f32) - min(f32)
    diff = statistics.mean(bf16) - statistics.mean(f32)
    return {
        "schema_version": _common.SCHEMA_VERSION,
        "kind": "bf16_accuracy",
        "backend": keras.backend.backend(),
        "threads": thread_info,
        "versions": versions(),
        "setup": {"dataset": "digits", "model": "resnet_cifar(8, B=4, aux=1)",
                  "epochs": epochs, "batch": batch, "seeds": list(seeds),
                  "test_examples": n_test},
        "runs": runs,
        "float32_mean": statistics.mean(f32),
        "bfloat16_mean": statistics.mean(bf16),
        "difference": diff,
        "float32_spread": spread,
        "within_noise": abs(diff) <= spread + 1.0 / n_test,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    r = run(seeds=tuple(int(s) for s in a.seeds.split(",")), epochs=a.epochs,
            batch=a.batch, threads=a.threads)
    print(f"{r['backend']}: target accuracy float32 {r['float32_mean']:.4f}, "
          f"mixed_bfloat16 {r['bfloat16_mean']:.4f} (diff {r['difference']:+.4f}, "
          f"float32 seed spread {r['float32_spread']:.4f}, within noise: "
          f"{r['within_noise']})", flush=True)
    if a.json:
        _common.write_json(a.json, r)
    return r


if __name__ == "__main__":
    main()
