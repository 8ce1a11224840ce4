"""Argument checks and the lazy TensorFlow imports of `keras_ahbf.data`.

TensorFlow and tensorflow-datasets are imported only when a function needs
them, so that `import keras_ahbf.data` stays cheap.
"""

from __future__ import annotations

import numbers
import os

import numpy as np


def check_int(name, value, *, minimum, allow_none=False):
    """`value` as an int >= `minimum` (or None); TypeError/ValueError else."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an integer"
            + (" or None" if allow_none else "")
            + f". Received: {name}={value!r} (of type {type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(
            f"`{name}` must be >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


def check_bool(name, value):
    """`value` as a bool; TypeError unless it is a (NumPy) bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be a bool. Received: {name}={value!r} "
            f"(of type {type(value).__name__})"
        )
    return bool(value)


def check_path(name, value):
    """TypeError unless `value` is a path (str or os.PathLike) or None."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a path (str or os.PathLike) or None. "
            f"Received: {name}={value!r}"
        )


def tf():
    """The `tensorflow` module, imported on first use."""
    try:
        import tensorflow
    except ImportError as e:  # pragma: no cover - tensorflow is a dependency
        raise ImportError(
            "keras_ahbf.data needs TensorFlow for its tf.data pipelines "
            "(on every Keras backend). Install it with "
            "`pip install tensorflow-cpu`."
        ) from e
    return tensorflow


def tfds():
    """The `tensorflow_datasets` module, imported on first use."""
    try:
        import tensorflow_datasets
    except ImportError as e:  # pragma: no cover - tfds is a dependency
        raise ImportError(
            "Loading data through tensorflow-datasets needs the "
            "`tensorflow-datasets` package: `pip install tensorflow-datasets`"
            ", or pass a local copy with `data_dir=`."
        ) from e
    return tensorflow_datasets


def tfds_data_dir():
    """`TFDS_DATA_DIR` or None, read at call time.

    tensorflow-datasets reads the variable only once, at import; reading it
    here lets it change within a process.
    """
    return os.environ.get("TFDS_DATA_DIR") or None
