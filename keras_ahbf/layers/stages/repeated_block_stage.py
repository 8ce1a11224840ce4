"""A stage made of a prefix network, a repeated block and a suffix network."""

import copy

import keras

from keras_ahbf.layers import _utils


def _serialize_model(name, model):
    if model is None or isinstance(model, dict):
        return model
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{name}` must be a functional `keras.Model` (or None). "
            f"Received: {name}={model!r}"
        )
    return keras.saving.serialize_keras_object(model)


def _fresh_model(config, name):
    """A new model (new weights) from a serialized functional model."""
    config = copy.deepcopy(config)
    if isinstance(config.get("config"), dict):
        config["config"]["name"] = name
    return keras.saving.deserialize_keras_object(config)


@keras.saving.register_keras_serializable(package="keras_ahbf")
class RepeatedBlockStage(keras.layers.Layer):
    """`prefix`, then `depth` copies of `block`, then `suffix`.

    ```
    y = suffix(block_{depth-1}( ... block_0(prefix(x)) ... ))
    ```

    Each copy of `block` (a functional model whose output has the shape of
    its input, e.g. one residual block of a ResNet) has its own weights;
    `prefix` and `suffix` are optional. `keras_ahbf.models.from_backbone`
    derives such a stage from the part of a network after the shared
    trunk: `depth = 1` reproduces that part, and `HierarchicalBranches`
    makes deeper branches by raising `depth`.

    Every sub-model is rebuilt from its config, with fresh weights, when
    the layer is built (the models passed in are only used as blueprints).

    Args:
        block: `keras.Model`. The repeated block (input and output of the
            same shape).
        depth: int. Number of copies of `block` (>= 1).
        prefix: `keras.Model` or None. Runs before the first block.
        suffix: `keras.Model` or None. Runs after the last block.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: the stage input (the input of `prefix`, or of `block`).
        training: bool. Whether BatchNorm / dropout run in training mode.

    Returns:
        The output of `suffix` (or of the last block).

    Raises:
        ValueError: on `depth < 1`, or a `block` whose output shape differs
            from its input shape.
        TypeError: if a model is not a `keras.Model`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> inp = keras.Input((4, 4, 8))
    >>> out = keras.layers.Add()([inp, keras.layers.Conv2D(8, 3, padding="same")(inp)])
    >>> stage = RepeatedBlockStage(keras.Model(inp, out), depth=3)
    >>> tuple(stage(np.zeros((2, 4, 4, 8), "float32")).shape)
    (2, 4, 4, 8)
    """

    def __init__(self, block, depth: int, prefix=None, suffix=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(block, keras.Model):
            block_in = tuple(block.inputs[0].shape[1:]) if len(block.inputs) == 1 else None
            block_out = tuple(block.outputs[0].shape[1:]) if len(block.outputs) == 1 else None
            if block_in is None or block_out is None or block_in != block_out:
                raise ValueError(
                    "`block` must have one input and one output of the same "
                    f"shape to be repeated. Received: input shapes "
                    f"{[tuple(t.shape) for t in block.inputs]}, output shapes "
                    f"{[tuple(t.shape) for t in block.outputs]}"
                )
        if block is None:
            raise TypeError("`block` must be a functional `keras.Model`.")
        self.block = _serialize_model("block", block)
        self.prefix = _serialize_model("prefix", prefix)
        self.suffix = _serialize_model("suffix", suffix)
        self.depth = _utils.check_int("depth", depth, 1)

    def build(self, input_shape):
        self.prefix_model = None
        self.suffix_model = None
        if self.prefix is not None:
            self.prefix_model = _fresh_model(self.prefix, "prefix")
        self.blocks = [
            _fresh_model(self.block, f"block_{i}") for i in range(self.depth)
        ]
        if self.suffix is not None:
            self.suffix_model = _fresh_model(self.suffix, "suffix")
        self.built = True

    def _models(self):
        models = [self.prefix_model] + list(self.blocks) + [self.suffix_model]
        return [m for m in models if m is not None]

    def call(self, inputs, training=None):
        x = inputs
        for model in self._models():
            x = model(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        if not self.built:
            self.build(input_shape)
        shape = tuple(input_shape)
        for model in self._models():
            spec = model.compute_output_spec(keras.KerasTensor(shape))
            shape = tuple(spec.shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "block": self.block,
                "depth": self.depth,
                "prefix": self.prefix,
                "suffix": self.suffix,
            }
        )
        return config
