"""`GradientScale`: the identity forward, the gradient multiplied by a constant backward."""

import keras
from keras import ops

from keras_ahbf.layers import _utils


@keras.saving.register_keras_serializable(package="keras_ahbf")
class GradientScale(keras.layers.Layer):
    """Passes its input through unchanged and scales the gradient flowing back.

    ```
    y = stop_gradient(x) + scale * (x - stop_gradient(x))
    ```

    The value of `y` is `x` (exactly: `x - stop_gradient(x)` is 0), and
    `dy/dx = scale`, so every gradient reaching `x` through this layer is
    multiplied by `scale`. It is written with `keras.ops` only (no
    backend-specific custom gradient), so it works the same on TensorFlow,
    JAX and PyTorch, inside `jit` too.

    This is the *backpropagation rescaling* of collaborative learning's
    intermediate-level representation (ILR) sharing: put after the layers
    shared by `H` heads with `scale=1/H`, the shared layers receive the
    mean of the heads' gradients instead of their sum (Song and Chai,
    2018). `scale=-1` gives a gradient reversal layer.

    Args:
        scale: float. Factor of the gradient (finite; 0 blocks it, negative
            values reverse it).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: a floating tensor of any shape.

    Returns:
        A tensor equal to `inputs`.

    Raises:
        TypeError: if `scale` is not a number.
        ValueError: if `scale` is NaN or infinite.

    Example:

    >>> import numpy as np
    >>> layer = GradientScale(scale=0.25)
    >>> x = np.arange(3, dtype="float32")
    >>> np.asarray(layer(x)).tolist()
    [0.0, 1.0, 2.0]

    Reference:
        Song and Chai, "Collaborative Learning for Deep Neural Networks",
        NeurIPS 2018 (section 3, backpropagation rescaling).
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _utils.check_float("scale", scale)
        self.supports_masking = True

    def call(self, inputs):
        if self.scale == 1.0:
            return inputs
        constant = ops.stop_gradient(inputs)
        return constant + self.scale * (inputs - constant)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale})
        return config
