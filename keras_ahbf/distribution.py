"""Data-parallel training of `OnlineKDModel` on the engines Keras already has.

`make_distribution(kind)` returns a `Distribution`; build, compile (or load)
and fit the model inside its `scope()`:

| `kind` | backend | engine |
| --- | --- | --- |
| `"none"` | any | one device |
| `"mirrored"` | TensorFlow | `tf.distribute.MirroredStrategy`: every local GPU (or `cpu_devices` logical CPUs) |
| `"multi-worker"` | TensorFlow | `tf.distribute.MultiWorkerMirroredStrategy`: one process per host, cluster from `TF_CONFIG` |
| `"data-parallel"` | JAX | `keras.distribution.DataParallel` over every device; multi-host after `keras.distribution.initialize()` |

The batch size given to `fit` (or to the `tf.data` pipeline) is the *global*
batch: each of the `num_replicas` replicas computes the loss of
`batch_size / num_replicas` examples and the gradients are summed, so the
update equals the single-device update on the same global batch (the
distillation loss divides itself by the replica count; see
`OnlineKDModel.compute_loss`). Only BatchNorm differs: its batch statistics are
computed per replica.

PyTorch: Keras' `fit` has no data-parallel engine for the torch backend, so
only `"none"` is accepted there.

This module imports no backend: the `tf.distribute` strategies are created by
`keras_ahbf.data` (the one module allowed to import TensorFlow, which also owns
the input pipelines the strategies shard).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import keras

from keras_ahbf import data

__all__ = ["KINDS", "Distribution", "make_distribution"]

KINDS = ("none", "mirrored", "multi-worker", "data-parallel")
_BACKENDS = {
    "none": ("tensorflow", "jax", "torch"),
    "mirrored": ("tensorflow",),
    "multi-worker": ("tensorflow",),
    "data-parallel": ("jax",),
}
_JAX_DEVICE_FLAG = "--xla_force_host_platform_device_count"


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A data-parallel engine: where to build and fit a model.

    Args:
        kind: str. One of `KINDS`.
        num_replicas: int. Number of model replicas in sync (all workers).
        worker_index: int. Index of this process among the workers (0 is the
            chief, which alone writes checkpoints and exports).
        num_workers: int. Number of processes taking part.
        engine: the `tf.distribute.Strategy` or
            `keras.distribution.Distribution`, or None for `"none"`.
    """

    kind: str
    num_replicas: int = 1
    worker_index: int = 0
    num_workers: int = 1
    engine: object = None

    @property
    def is_chief(self) -> bool:
        """True for the process that writes the run's files."""
        return self.worker_index == 0

    def scope(self):
        """Context manager to build, compile, load and fit models in."""
        if self.kind in ("mirrored", "multi-worker"):
            return self.engine.scope()
        if self.kind == "data-parallel":
            return self.engine.scope()
        return contextlib.nullcontext()


def _check_cpu_devices(cpu_devices):
    if cpu_devices is None:
        return None
    if isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int) or cpu_devices < 1:
        raise ValueError(
            f"`cpu_devices` must be a positive integer or None. Received: cpu_devices={cpu_devices!r}"
        )
    return cpu_devices


def _jax_data_parallel(cpu_devices):
    if os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") not in ("", "1"):
        # Multi-host: the coordinator address, process count and id come from
        # KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID.
        keras.distribution.initialize()
    if cpu_devices is not None and cpu_devices > 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if _JAX_DEVICE_FLAG not in flags:
            # Read when JAX creates its CPU client, i.e. at the first
            # computation; checked below.
            os.environ["XLA_FLAGS"] = f"{flags} {_JAX_DEVICE_FLAG}={cpu_devices}".strip()
    devices = keras.distribution.list_devices()
    if cpu_devices is not None and devices and devices[0].startswith("cpu"):
        if len(devices) != cpu_devices:
            raise ValueError(
                f"`cpu_devices={cpu_devices}` was requested but JAX already started "
                f"with {len(devices)} CPU device(s). Call make_distribution() before "
                f"any JAX computation, or set XLA_FLAGS={_JAX_DEVICE_FLAG}={cpu_devices} "
                "before starting Python."
            )
    engine = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(engine)
    # The process index has no public accessor (keras.distribution keeps it
    # in `_process_id`); `num_processes` is public.
    num_workers = int(engine.num_processes)
    worker_index = int(getattr(engine, "_process_id", 0))
    return Distribution(
        "data-parallel",
        num_replicas=len(devices),
        worker_index=worker_index,
        num_workers=num_workers,
        engine=engine,
    )


def make_distribution(kind: str = "none", *, cpu_devices: int | None = None) -> Distribution:
    """Creates a data-parallel engine for the active Keras backend.

    Call it at the start of the program, before any model or tensor is
    created: the engines configure the devices (and, for `"multi-worker"`,
    connect to the other workers) when they are created.

    Args:
        kind: str. `"none"`, `"mirrored"`, `"multi-worker"` or
            `"data-parallel"` (see the module docstring for the backend of
            each).
        cpu_devices: int or None. On a machine without accelerators, split
            the CPU into this many devices so that a data-parallel run can be
            tried (and tested) on one machine: logical CPU devices for
            `"mirrored"`, XLA host devices for `"data-parallel"`. None uses
            the machine's devices as they are.

    Returns:
        A `Distribution`; use `with distribution.scope():` around building,
        compiling, loading and fitting the model.

    Raises:
        ValueError: if `kind` is unknown or not available on the active
            backend, if `cpu_devices` is invalid or can no longer be
            applied, or if `TF_CONFIG` is missing or malformed for
            `"multi-worker"`.

    Example:

    ```python
    distribution = keras_ahbf.make_distribution("mirrored")
    with distribution.scope():
        model = keras_ahbf.models.resnet_cifar(32, num_classes=100)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9))
        model.fit(train_ds, epochs=300)
    ```
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
    cpu_devices = _check_cpu_devices(cpu_devices)
    backend = keras.backend.backend()
    if backend not in _BACKENDS[kind]:
        hint = {
            "tensorflow": "use 'mirrored' or 'multi-worker'",
            "jax": "use 'data-parallel'",
            "torch": "Keras' fit has no data-parallel engine for PyTorch; use 'none'",
        }[backend]
        raise ValueError(
            f"`kind={kind!r}` needs the {' or '.join(_BACKENDS[kind])} backend, but "
            f"KERAS_BACKEND is {backend!r}: {hint}."
        )
    if kind == "none":
        if cpu_devices not in (None, 1):
            raise ValueError(
                f"`cpu_devices` only applies to a data-parallel `kind`. Received: "
                f"kind='none', cpu_devices={cpu_devices}"
            )
        return Distribution("none")
    if kind == "data-parallel":
        return _jax_data_parallel(cpu_devices)
    strategy, worker_index, num_workers = data.tf_distribute_strategy(
        kind, cpu_devices=cpu_devices
    )
    return Distribution(
        kind,
        num_replicas=int(strategy.num_replicas_in_sync),
        worker_index=worker_index,
        num_workers=num_workers,
        engine=strategy,
    )
