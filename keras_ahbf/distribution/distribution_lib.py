"""`make_distribution` and `Distribution`: the engine choice, backend-free.

The engines themselves are created by the backend modules,
`keras_ahbf.distribution.tensorflow` (tf.distribute strategies) and
`keras_ahbf.distribution.jax` (`keras.distribution.DataParallel`), imported
only when their engine is asked for. Keras too is imported only inside the
functions, so `KINDS` can be read without starting a backend.
"""

from __future__ import annotations

import contextlib
import dataclasses

__all__ = [
    "KINDS",
    "Distribution",
    "make_distribution",
    "scale_loss_for_distribution",
]

KINDS = ("none", "mirrored", "multi-worker", "data-parallel")
_BACKENDS = {
    "none": ("tensorflow", "jax", "torch"),
    "mirrored": ("tensorflow",),
    "multi-worker": ("tensorflow",),
    "data-parallel": ("jax",),
}
_HINTS = {
    "tensorflow": "use 'mirrored' or 'multi-worker'",
    "jax": "use 'data-parallel'",
    "torch": "Keras' fit has no data-parallel engine for PyTorch; use 'none'",
}


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
        if self.engine is None:
            return contextlib.nullcontext()
        return self.engine.scope()


def _check_cpu_devices(cpu_devices):
    if cpu_devices is None:
        return None
    if (
        isinstance(cpu_devices, bool)
        or not isinstance(cpu_devices, int)
        or cpu_devices < 1
    ):
        raise ValueError(
            "`cpu_devices` must be a positive integer or None. "
            f"Received: cpu_devices={cpu_devices!r}"
        )
    return cpu_devices


def make_distribution(
    kind: str = "none", *, cpu_devices: int | None = None
) -> Distribution:
    """Creates a data-parallel engine for the active Keras backend.

    Call it at the start of the program, before any model or tensor is
    created: the engines configure the devices (and, for `"multi-worker"`,
    connect to the other workers) when they are created.

    | `kind` | backend | engine |
    | --- | --- | --- |
    | `"none"` | any | one device |
    | `"mirrored"` | TensorFlow | `tf.distribute.MirroredStrategy`: every local GPU (or `cpu_devices` logical CPUs) |
    | `"multi-worker"` | TensorFlow | `tf.distribute.MultiWorkerMirroredStrategy`: one process per host, cluster from `TF_CONFIG` |
    | `"data-parallel"` | JAX | `keras.distribution.DataParallel` over every device; multi-host after `keras.distribution.initialize()` |

    Args:
        kind: str. `"none"`, `"mirrored"`, `"multi-worker"` or
            `"data-parallel"` (see the table for the backend of each).
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
    import keras

    if kind not in KINDS:
        raise ValueError(
            f"`kind` must be one of {KINDS}. Received: kind={kind!r}"
        )
    cpu_devices = _check_cpu_devices(cpu_devices)
    backend = keras.backend.backend()
    if backend not in _BACKENDS[kind]:
        raise ValueError(
            f"`kind={kind!r}` needs the {' or '.join(_BACKENDS[kind])} "
            f"backend, but KERAS_BACKEND is {backend!r}: {_HINTS[backend]}."
        )
    if kind == "none":
        if cpu_devices not in (None, 1):
            raise ValueError(
                "`cpu_devices` only applies to a data-parallel `kind`. "
                f"Received: kind='none', cpu_devices={cpu_devices}"
            )
        return Distribution("none")
    if kind == "data-parallel":
        from keras_ahbf.distribution import jax as backend_lib

        engine, worker_index, num_workers = backend_lib.data_parallel(
            cpu_devices
        )
        num_replicas = int(engine.device_mesh.devices.size)
    else:
        from keras_ahbf.distribution import tensorflow as backend_lib

        engine, worker_index, num_workers = backend_lib.tf_distribute_strategy(
            kind, cpu_devices=cpu_devices
        )
        num_replicas = int(engine.num_replicas_in_sync)
    return Distribution(
        kind,
        num_replicas=num_replicas,
        worker_index=worker_index,
        num_workers=num_workers,
        engine=engine,
    )


def scale_loss_for_distribution(loss):
    """Divides a hand-written loss by the number of replicas in sync.

    Under `tf.distribute` each replica's loss is summed over the replicas,
    so a loss that is a mean over the replica's examples must be divided by
    the replica count for the update to equal the single-device one (Keras
    does the same for its own losses). The other backends' engines compute
    the loss over the global batch: nothing to scale.

    Args:
        loss: scalar tensor. The loss of this replica's examples.

    Returns:
        The scaled loss (`loss` itself with one replica or off TensorFlow).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return loss
    from keras_ahbf.distribution import tensorflow as backend_lib

    return backend_lib.scale_loss(loss)
