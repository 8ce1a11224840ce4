"""The JAX engine: `keras.distribution.DataParallel` over every device.

JAX is imported inside the functions. The process index comes from JAX's
public `jax.process_index()` (Keras keeps the same value in the private
`DataParallel._process_id`).
"""

from __future__ import annotations

import os

__all__ = ["data_parallel"]

JAX_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def data_parallel(cpu_devices=None):
    """Creates and sets a `keras.distribution.DataParallel` over every device.

    Multi-host runs (`KERAS_DISTRIBUTION_NUM_PROCESSES` > 1) first call
    `keras.distribution.initialize()`, which reads the coordinator address,
    process count and id from `KERAS_DISTRIBUTION_JOB_ADDRESSES` /
    `_NUM_PROCESSES` / `_PROCESS_ID`.

    Args:
        cpu_devices: int or None. On a CPU-only machine, the number of XLA
            host devices to split the CPU into (read when JAX starts).

    Returns:
        `(engine, worker_index, num_workers)`.

    Raises:
        ValueError: if `cpu_devices` is given but JAX already started with
            another number of CPU devices.
    """
    import jax
    import keras

    if os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") not in ("", "1"):
        keras.distribution.initialize()
    if cpu_devices is not None and cpu_devices > 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if JAX_DEVICE_FLAG not in flags:
            # Read when JAX creates its CPU client, i.e. at the first
            # computation; checked below.
            os.environ["XLA_FLAGS"] = (
                f"{flags} {JAX_DEVICE_FLAG}={cpu_devices}".strip()
            )
    devices = keras.distribution.list_devices()
    if cpu_devices is not None and devices and devices[0].startswith("cpu"):
        if len(devices) != cpu_devices:
            raise ValueError(
                f"`cpu_devices={cpu_devices}` was requested but JAX already "
                f"started with {len(devices)} CPU device(s). Call "
                "make_distribution() before any JAX computation, or set "
                f"XLA_FLAGS={JAX_DEVICE_FLAG}={cpu_devices} before starting "
                "Python."
            )
    engine = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(engine)
    return engine, int(jax.process_index()), int(engine.num_processes)
