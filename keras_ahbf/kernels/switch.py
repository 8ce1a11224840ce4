"""The global on/off switch of keras_ahbf's backend kernels."""

import contextlib
import os

ENV_VAR = "KERAS_AHBF_KERNELS"
_OFF_VALUES = ("0", "false", "off", "no")
_state = {"enabled": None}


def _from_env():
    value = os.environ.get(ENV_VAR, "1").strip().lower()
    return value not in _OFF_VALUES


def enabled() -> bool:
    """Whether keras_ahbf's backend kernels are used (default `True`).

    Read from the `KERAS_AHBF_KERNELS` environment variable (`0`, `false`,
    `off` or `no` switch the kernels off) until `set_enabled()` is called.
    """
    if _state["enabled"] is None:
        return _from_env()
    return _state["enabled"]


def set_enabled(flag: bool):
    """Switches keras_ahbf's backend kernels on or off for this process.

    Takes effect for layers called afterwards; a function already traced
    (`tf.function`, `jax.jit`) keeps the path it was traced with.

    Args:
        flag: bool. `True` to use the kernels where the backend has them,
            `False` for the `keras.ops` reference everywhere. `None` goes
            back to the `KERAS_AHBF_KERNELS` environment variable.

    Raises:
        TypeError: if `flag` is not a bool or `None`.
    """
    if flag is not None and not isinstance(flag, bool):
        raise TypeError(f"`flag` must be a bool or None. Received: flag={flag!r}")
    _state["enabled"] = flag


@contextlib.contextmanager
def kernels_enabled(flag: bool):
    """Context manager: `set_enabled(flag)` inside, the previous state after."""
    previous = _state["enabled"]
    set_enabled(flag)
    try:
        yield
    finally:
        _state["enabled"] = previous
