"""Runs one training step with and without a data-parallel engine and prints
the losses and the largest weight difference as JSON.

Run as a subprocess (device counts must be set before TensorFlow/JAX start);
`tests/distribution/test_data_parallel.py` does:
    python -m keras_ahbf.testing.distribution_equivalence tf_mirrored|jax_data_parallel
    python -m keras_ahbf.testing.distribution_equivalence single|tf_multi_worker OUT.npz
The last two print one run (single device, or this process's worker of a
MultiWorkerMirroredStrategy cluster given by TF_CONFIG) and save its weights
to OUT.npz, so a test can compare processes.
BatchNorm layers are frozen (inference mode) in both runs, so the per-replica
batch statistics of tf.distribute cannot cause a difference. The engines are
`keras_ahbf.make_distribution`'s: this module imports no backend itself.
"""

import json
import os
import sys

ENGINE = sys.argv[1] if __name__ == "__main__" else None
if ENGINE == "jax_data_parallel":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_ahbf.models import resnet_cifar  # noqa: E402
from keras_ahbf.testing.test_utils import learnable_images  # noqa: E402


def run(scope):
    keras.utils.set_random_seed(3)
    with scope:
        model = resnet_cifar(
            8, num_classes=4, num_branches=3, aux=1, input_shape=(8, 8, 3),
            rampup_epochs=0, weight_decay=1e-3,
        )
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        model.compile(keras.optimizers.SGD(0.1))
    x, y = learnable_images(n=32)
    evaluated = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    weights = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    return evaluated["loss"], history.history["loss"][0], weights


def main():
    import contextlib

    from keras_ahbf.distribution import make_distribution

    if ENGINE == "tf_mirrored":
        # Created first: it splits the CPU into 2 logical devices, which
        # TensorFlow allows only before it starts.
        distribution = make_distribution("mirrored", cpu_devices=2)
        single = run(contextlib.nullcontext())
        multi = run(distribution.scope())
    elif ENGINE == "jax_data_parallel":
        # XLA_FLAGS (2 host devices) was set above, before JAX started.
        single = run(contextlib.nullcontext())
        distribution = make_distribution("data-parallel")  # Sets it globally.
        multi = run(contextlib.nullcontext())
    elif ENGINE in ("single", "tf_multi_worker"):
        if ENGINE == "single":
            distribution = make_distribution("none")
        else:
            distribution = make_distribution("multi-worker")  # Cluster from TF_CONFIG.
        result = run(distribution.scope())
        np.savez(sys.argv[2], *result[2])
        print(json.dumps({
            "replicas": distribution.num_replicas,
            "eval_loss": result[0],
            "train_loss": result[1],
        }))
        return
    else:
        raise SystemExit(f"unknown engine {ENGINE!r}")
    diff = max(float(np.abs(a - b).max()) for a, b in zip(single[2], multi[2]))
    print(json.dumps({
        "replicas": distribution.num_replicas,
        "eval_loss": [single[0], multi[0]],
        "train_loss": [single[1], multi[1]],
        "max_weight_diff": diff,
    }))


if __name__ == "__main__":
    main()
