"""keras_ahbf: online knowledge distillation with Adaptive Hierarchy-Branch
Fusion (AHBF-OKD, AAAI 2023) for Keras 3 on TensorFlow, JAX and PyTorch.

The subpackages are imported on first use (PEP 562), so that
`import keras_ahbf.cli.main` (the `keras-ahbf` command) or
`keras_ahbf.plots` start without Keras and a backend. The custom layers and
models are registered with Keras as soon as Keras is imported, before or
after `keras_ahbf`: a saved model loads with `keras.saving.load_model` after
`import keras_ahbf`, as before.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# Public name -> (module, attribute or None for the module itself).
_LAZY = {
    "CollaborativeLearningModel": ("keras_ahbf.methods", "CollaborativeLearningModel"),
    "KDCLModel": ("keras_ahbf.methods", "KDCLModel"),
    "MutualLearningModel": ("keras_ahbf.methods", "MutualLearningModel"),
    "NativeEnsembleModel": ("keras_ahbf.methods", "NativeEnsembleModel"),
    "OKDDipModel": ("keras_ahbf.methods", "OKDDipModel"),
    "OnlineDistillationModel": ("keras_ahbf.methods", "OnlineDistillationModel"),
    "OnlineKDModel": ("keras_ahbf.online_kd_model", "OnlineKDModel"),
    "RampupCallback": ("keras_ahbf.callbacks", "RampupCallback"),
    "ahbf_loss": ("keras_ahbf.losses", "ahbf_loss"),
    "callbacks": ("keras_ahbf.callbacks", None),
    "distribution": ("keras_ahbf.distribution", None),
    "kernels": ("keras_ahbf.kernels", None),
    "layers": ("keras_ahbf.layers", None),
    "losses": ("keras_ahbf.losses", None),
    "make_distribution": ("keras_ahbf.distribution", "make_distribution"),
    "methods": ("keras_ahbf.methods", None),
    "models": ("keras_ahbf.models", None),
    "training": ("keras_ahbf.training", None),
}
# The modules whose import registers every serializable class with Keras.
_REGISTERING = (
    "keras_ahbf.layers",
    "keras_ahbf.models",
    "keras_ahbf.online_kd_model",
    "keras_ahbf.methods",
    "keras_ahbf.training",
    "keras_ahbf.callbacks",
)

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_ahbf' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def register_all():
    """Imports every module that registers a Keras serializable class.

    Called automatically once Keras is imported; needed only by code that
    deserializes `keras_ahbf` objects before importing Keras itself.
    """
    for module_name in _REGISTERING:
        importlib.import_module(module_name)


def _importing_keras_ahbf():
    """True while a `keras_ahbf` module is being imported (partly initialised)."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name.startswith("keras_ahbf.")
    )


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Runs `register_all` right after the first `import keras` completes.

    When that import comes from a `keras_ahbf` module being imported, the
    registration is left to the import chain itself (registering from
    inside it would be a circular import); `keras_ahbf` loads its own
    models through `_io.load_keras_model`, which calls `register_all`.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            if not _importing_keras_ahbf():
                register_all()

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    register_all()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
