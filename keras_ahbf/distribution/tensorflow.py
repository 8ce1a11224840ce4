"""The TensorFlow engines: `tf.distribute` strategies, the replica scaling
of the loss, and the keras-team/keras#20585 multi-worker workaround.

TensorFlow and Keras are imported inside the functions, so importing this
module (as `OnlineKDModel` does on every backend) starts no backend.

The workaround: Keras 3's TensorFlow trainer fails under
`MultiWorkerMirroredStrategy` in two places, both outside the training
computation. (1) Before the first epoch it averages a whole nested input
batch across workers just to learn its shapes, which the collective reduce
rejects; (2) it reduces each scalar log value across workers with `axis=0`,
which needs rank >= 1. `symbolic_build_inputs` and `multi_worker_logs`,
called by `OnlineKDModel._maybe_symbolic_build` and its `train_step` /
`test_step`, are inert unless a multi-worker strategy is active: they take
the shapes from this worker's own batch and return the logs as shape-(1,)
tensors (the mean over workers is unchanged). The gradients are Keras' own.

Private hooks used here (each checked by `tests/distribution/
test_keras_hooks.py`, which fails if Keras or TensorFlow changes them):
`keras.Model._maybe_symbolic_build(iterator, data_batch)` of Keras'
TensorFlow trainer (overridden by the model) and
`tf.distribute.Strategy.extended._in_multi_worker_mode()` (the test Keras
itself uses to take the failing code paths).
"""

from __future__ import annotations

import json
import os

__all__ = [
    "in_multi_worker_mode",
    "multi_worker_logs",
    "scale_loss",
    "symbolic_build_inputs",
    "tf_config_task",
    "tf_distribute_strategy",
]


def tf_config_task():
    """`(worker index, number of workers)` from `TF_CONFIG`, validated.

    The chief (or worker 0 when there is no chief) has index 0.

    Raises:
        ValueError: if `TF_CONFIG` is unset, not JSON with `cluster` and
            `task`, lists no workers, gives another task type than `worker`
            or `chief`, or an index outside the cluster.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "kind='multi-worker' needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}. Received: TF_CONFIG unset'
        )
    try:
        config = json.loads(raw)
        cluster = config["cluster"]
        task = config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"TF_CONFIG must be JSON with 'cluster' and 'task': {{'type', 'index'}} "
            f"({type(e).__name__}: {e}). Received: TF_CONFIG={raw!r}"
        ) from None
    workers = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
    if task_type not in ("chief", "worker") or not workers:
        raise ValueError(
            "TF_CONFIG must list the cluster's 'worker' (and optional 'chief') "
            f"addresses and give this process's task type 'worker' or 'chief'. "
            f"Received: TF_CONFIG={raw!r}"
        )
    members = len(cluster.get(task_type, []))
    if not 0 <= index < members:
        raise ValueError(
            f"TF_CONFIG task index {index} is outside the {members} '{task_type}' "
            f"address(es) of the cluster. Received: TF_CONFIG={raw!r}"
        )
    # The chief (or worker 0 when there is no chief) writes the run's files.
    if task_type == "worker" and "chief" in cluster:
        index += len(cluster["chief"])
    return index, len(workers)


def _mirrored(tf, cpu_devices):
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if cpu_devices not in (None, 1):
            raise ValueError(
                f"`cpu_devices` only applies to machines without GPUs; this one "
                f"has {len(gpus)}. Received: cpu_devices={cpu_devices}"
            )
        return tf.distribute.MirroredStrategy()
    count = cpu_devices or 1
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count
            )
        except RuntimeError:
            if len(tf.config.list_logical_devices("CPU")) != count:
                raise ValueError(
                    f"`cpu_devices={count}` can no longer be applied: TensorFlow "
                    "already initialised its devices. Create the distribution at "
                    "the start of the program, before any tensor or model."
                ) from None
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(count)])


def tf_distribute_strategy(kind, *, cpu_devices=None):
    """A `tf.distribute` strategy for `keras_ahbf.make_distribution`.

    Args:
        kind: str. `"mirrored"` (every local GPU, else `cpu_devices` logical
            CPUs) or `"multi-worker"` (one process per host, cluster from
            `TF_CONFIG`).
        cpu_devices: int or None. Without GPUs, the number of logical CPU
            devices to mirror over (`"mirrored"` only).

    Returns:
        `(strategy, worker_index, num_workers)`.

    Raises:
        ValueError: for an unknown `kind`, a `cpu_devices` that cannot be
            applied (TensorFlow already initialised its devices, or the
            machine has GPUs), or a missing/malformed `TF_CONFIG`.
    """
    import tensorflow as tf

    if kind == "mirrored":
        return _mirrored(tf, cpu_devices), 0, 1
    if kind == "multi-worker":
        if cpu_devices not in (None, 1):
            raise ValueError(
                "`cpu_devices` applies to kind='mirrored' or 'data-parallel' only. "
                f"Received: kind='multi-worker', cpu_devices={cpu_devices}"
            )
        index, workers = tf_config_task()
        return tf.distribute.MultiWorkerMirroredStrategy(), index, workers
    raise ValueError(
        f"`kind` must be 'mirrored' or 'multi-worker'. Received: kind={kind!r}"
    )


def scale_loss(loss):
    """`loss / num_replicas_in_sync` of the current `tf.distribute` strategy.

    The same scaling Keras applies to its own losses, from public
    TensorFlow API: outside any strategy (the default strategy) there is
    one replica and `loss` is returned unchanged.
    """
    import tensorflow as tf
    from keras import ops

    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if num_replicas > 1:
        loss = ops.multiply(loss, ops.cast(1.0 / num_replicas, loss.dtype))
    return loss


def in_multi_worker_mode(model):
    """True if `model` is trained by a multi-worker `tf.distribute` strategy.

    False on the other backends (their models have no `distribute_strategy`)
    and under single-worker strategies.
    """
    strategy = getattr(model, "distribute_strategy", None)
    extended = getattr(strategy, "extended", None)
    in_mode = getattr(extended, "_in_multi_worker_mode", None)
    return bool(in_mode()) if callable(in_mode) else False


def symbolic_build_inputs(model, iterator=None, data_batch=None):
    """The `(iterator, data_batch)` to pass to Keras' `_maybe_symbolic_build`.

    Unchanged unless `model` trains under a multi-worker strategy; then this
    worker's first batch (replica 0's part) replaces the iterator, so Keras
    does not average the batch across workers to learn its shapes.
    """
    if iterator is None or data_batch is not None:
        return iterator, data_batch
    if not in_multi_worker_mode(model):
        return iterator, data_batch
    import keras

    for _, _, batches in iterator:
        batch = next(batches)
        break
    strategy = model.distribute_strategy
    data_batch = keras.tree.map_structure(
        lambda v: strategy.experimental_local_results(v)[0], batch
    )
    return None, data_batch


def multi_worker_logs(model, logs):
    """`logs` as shape-(1,) tensors under a multi-worker strategy, else as is."""
    if not in_multi_worker_mode(model):
        return logs
    from keras import ops

    return {k: ops.reshape(v, (1,)) for k, v in logs.items()}
