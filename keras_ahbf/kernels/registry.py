"""Which kernels the current backend has, chosen once per process."""

import importlib

import keras

from keras_ahbf.kernels.switch import enabled

_MODULES = {
    "tensorflow": "keras_ahbf.kernels.tensorflow_kernels",
    "torch": "keras_ahbf.kernels.torch_kernels",
}
_cache = {}


def _module():
    backend = keras.backend.backend()
    if backend not in _cache:
        name = _MODULES.get(backend)
        _cache[backend] = importlib.import_module(name) if name else None
    return _cache[backend]


def available_kernels() -> tuple:
    """Names of the kernels the current backend has (on or off)."""
    module = _module()
    return tuple(module.NAMES) if module is not None else ()


def active_kernels() -> tuple:
    """Names of the kernels in use: `available_kernels()` if `enabled()`."""
    return available_kernels() if enabled() else ()


def get_kernel(name: str):
    """The backend function `name`, or `None` (no kernel, or switched off)."""
    if not enabled():
        return None
    module = _module()
    return getattr(module, name, None) if module is not None else None
