"""Channels-last vs channels-first convolutions in Keras, per backend.

The issue suggested offering channels-first where it is faster (Keras' torch
convolution transposes channels-last inputs). This measures it on a small
plain-Keras ResNet (a 3x3 stem and 5 residual blocks of 16 channels at
32x32, batch 128, 100 classes), so no keras_ahbf layer is involved:
process CPU time per `fit` step (median after 2 warm-up steps) and per
`predict_on_batch` of 256 images, one thread.

    KERAS_BACKEND=torch python benchmarks/bench_data_format.py channels_last
    KERAS_BACKEND=torch python benchmarks/bench_data_format.py channels_first

TensorFlow's own CPU kernels support channels-first convolutions only
through oneDNN (on by default on CPUs with AVX512-VNNI/BF16 or AMX; see
`TF_ENABLE_ONEDNN_OPTS`); elsewhere its weight-gradient convolution refuses
NCHW, and the script reports that in its JSON (`"unsupported": ...`) instead
of timings.

Run the two formats alternately, twice each, on a quiet machine; for JAX the
step is jit-compiled and XLA:CPU is limited to one thread with
`XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"`.
"""

import argparse
import json
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_format", choices=("channels_last", "channels_first"))
    ap.add_argument("--steps", type=int, default=12)
    a = ap.parse_args(argv)

    import keras
    import numpy as np

    keras.config.set_image_data_format(a.data_format)
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    axis = 1 if a.data_format == "channels_first" else -1

    def block(x, channels):
        y = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)(x)
        y = keras.layers.ReLU()(keras.layers.BatchNormalization(axis=axis)(y))
        y = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)(y)
        y = keras.layers.BatchNormalization(axis=axis)(y)
        return keras.layers.ReLU()(keras.layers.Add()([x, y]))

    shape = (16, 32, 32) if a.data_format == "channels_first" else (32, 32, 16)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    for _ in range(5):
        x = block(x, 16)
    outputs = keras.layers.Dense(100)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=backend == "jax",
    )
    rng = np.random.default_rng(0)
    xs = rng.random((128 * a.steps, *shape), dtype=np.float32)
    ys = rng.integers(0, 100, 128 * a.steps)
    steps = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.process_time()

        def on_train_batch_end(self, batch, logs=None):
            steps.append(time.process_time() - self.start)

    try:
        model.fit(xs, ys, batch_size=128, epochs=1, verbose=0, callbacks=[Timer()])
    except Exception as error:  # TensorFlow without oneDNN: NHWC-only kernels
        if backend != "tensorflow" or "only supports NHWC" not in str(error):
            raise
        result = {
            "backend": backend,
            "data_format": a.data_format,
            "unsupported": "TensorFlow's CPU convolution kernels support only "
            "NHWC here (oneDNN off); channels_first cannot train",
        }
        print(json.dumps(result))
        return result
    infer = []
    for _ in range(6):
        start = time.process_time()
        model.predict_on_batch(xs[:256])
        infer.append(time.process_time() - start)
    result = {
        "backend": backend,
        "data_format": a.data_format,
        "train_step_cpu_ms": 1000 * float(np.median(steps[2:])),
        "infer_256_cpu_ms": 1000 * float(np.median(infer[1:])),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
