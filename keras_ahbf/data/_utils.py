"""Argument checks and the lazy TensorFlow imports of `keras_ahbf.data`.

The checks are `keras_ahbf.utils.validation`'s (the package's one set),
plus the two forms the data functions need: an optional integer and a bool
that may be a NumPy bool. TensorFlow and tensorflow-datasets are imported
only when a function needs them, so that `import keras_ahbf.data` stays
cheap.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from keras_ahbf.utils import validation
from keras_ahbf.utils.validation import check_int  # noqa: F401 (re-export)


def check_optional_int(name, value, minimum):
    """None, or `value` checked by `check_int` (an int >= `minimum`)."""
    return None if value is None else check_int(name, value, minimum)


def check_bool(name, value):
    """`keras_ahbf.utils.validation.check_bool`, accepting NumPy bools too."""
    return validation.check_bool(name, bool(value) if isinstance(value, np.bool_) else value)


def check_path(name, value):
    """TypeError unless `value` is a path (str or os.PathLike) or None."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a path (str or os.PathLike) or None. "
            f"Received: {name}={value!r}"
        )


def _import(module, message):
    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - both are dependencies
        raise ImportError(message) from e


def tf():
    """The `tensorflow` module, imported on first use."""
    return _import(
        "tensorflow",
        "keras_ahbf.data needs TensorFlow for its tf.data pipelines (on every "
        "Keras backend). Install it with `pip install tensorflow-cpu`.",
    )


def tfds():
    """The `tensorflow_datasets` module, imported on first use."""
    return _import(
        "tensorflow_datasets",
        "Loading data through tensorflow-datasets needs the "
        "`tensorflow-datasets` package: `pip install tensorflow-datasets`, "
        "or pass a local copy with `data_dir=`.",
    )


def tfds_data_dir():
    """`TFDS_DATA_DIR` or None, read at call time.

    tensorflow-datasets reads the variable only once, at import; reading it
    here lets it change within a process.
    """
    return os.environ.get("TFDS_DATA_DIR") or None
