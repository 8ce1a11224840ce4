"""A stage built by a user function of its depth."""

import warnings

import keras

from keras_ahbf.layers import _utils


def is_registered_function(fn) -> bool:
    """Whether `fn` can be found again by name when a model is loaded."""
    try:
        name = keras.saving.get_registered_name(fn)
        return keras.saving.get_registered_object(name) is fn
    except Exception:  # pragma: no cover - defensive
        return False


@keras.saving.register_keras_serializable(package="keras_ahbf")
class CallableStage(keras.layers.Layer):
    """Wraps `stage_fn(depth) -> layer` as a layer with a `depth` argument.

    ```
    y = stage_fn(depth)(x)
    ```

    `HierarchicalBranches` copies a template stage from its config with a
    larger depth; this layer lets any function that builds a stage of a
    given depth (a `keras.Sequential` of blocks, a functional sub-model,
    one of your own layers, ...) serve as that template. `stage_fn` is
    called once, in `build()`, and must return a new `keras.layers.Layer`
    (with fresh weights) on every call.

    To save and reload a model holding this layer as `.keras`, register
    `stage_fn` with `@keras.saving.register_keras_serializable()`; an
    unregistered function (or a `lambda`) trains fine but cannot be
    reloaded by name.

    Args:
        stage_fn: callable. `stage_fn(depth)` returns the stage layer.
        depth: int. Depth passed to `stage_fn` (>= 0).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: the stage input.
        training: bool. Passed to the wrapped stage.

    Returns:
        The output of the wrapped stage.

    Raises:
        TypeError: if `stage_fn` is not callable, or (when built) does not
            return a `keras.layers.Layer`.
        ValueError: on a negative `depth`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> def conv_stack(depth):
    ...     return keras.Sequential(
    ...         [keras.layers.Conv2D(8, 3, padding="same", activation="relu")
    ...          for _ in range(depth)])
    >>> stage = CallableStage(conv_stack, depth=2)
    >>> tuple(stage(np.zeros((1, 4, 4, 3), "float32")).shape)
    (1, 4, 4, 8)
    """

    def __init__(self, stage_fn, depth: int, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stage_fn, dict):
            stage_fn = keras.saving.deserialize_keras_object(stage_fn)
        if not callable(stage_fn) or isinstance(stage_fn, keras.layers.Layer):
            raise TypeError(
                "`stage_fn` must be a function `stage_fn(depth) -> layer`. "
                f"Received: stage_fn={stage_fn!r}"
            )
        self.stage_fn = stage_fn
        self.depth = _utils.check_int("depth", depth, 0)

    def _make(self):
        stage = self.stage_fn(self.depth)
        if not isinstance(stage, keras.layers.Layer):
            raise TypeError(
                "`stage_fn(depth)` must return a `keras.layers.Layer`. "
                f"Received: stage_fn({self.depth})={stage!r}"
            )
        return stage

    def build(self, input_shape):
        self.stage = self._make()
        if not self.stage.built:
            self.stage.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.stage(inputs, training=training)

    def compute_output_shape(self, input_shape):
        stage = self.stage if self.built else self._make()
        spec = stage.compute_output_spec(keras.KerasTensor(tuple(input_shape)))
        return tuple(spec.shape)

    def get_config(self):
        config = super().get_config()
        # The function itself: Keras serializes it (by registered name) when
        # the model is saved; `HierarchicalBranches` copies it in memory.
        config.update({"stage_fn": self.stage_fn, "depth": self.depth})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        stage_fn = config.pop("stage_fn")
        if isinstance(stage_fn, dict):
            try:
                stage_fn = keras.saving.deserialize_keras_object(stage_fn)
            except Exception as error:
                raise ValueError(
                    "Could not find the `stage_fn` of a `CallableStage` "
                    f"({stage_fn.get('config')!r}). Register it with "
                    "`@keras.saving.register_keras_serializable()` before "
                    "saving and loading the model."
                ) from error
        return cls(stage_fn, **config)


def warn_if_unregistered(stage_fn, stacklevel: int = 3):
    """Warns that a model using an unregistered `stage_fn` cannot be reloaded.

    `stacklevel` counts from this function (3: the caller of its caller).
    """
    if not is_registered_function(stage_fn):
        warnings.warn(
            f"`stage_fn` {getattr(stage_fn, '__name__', stage_fn)!r} is not "
            "registered: the model trains, but a saved `.keras` file cannot "
            "be reloaded. Decorate it with "
            "`@keras.saving.register_keras_serializable()` to fix this.",
            stacklevel=stacklevel,
        )
