"""Squeeze-and-excitation channel attention."""

import keras
from keras import ops

from keras_ahbf.layers import _utils


@keras.saving.register_keras_serializable(package="keras_ahbf")
class SqueezeExcitation(keras.layers.Layer):
    """Squeeze-and-excitation: rescales channels by a learned gate.

    For a feature map `x` of shape `(N, H, W, C)`:

    ```
    s = GlobalAveragePooling(x)                                   # (N, C)
    a = sigmoid(W_2 ReLU(W_1 s))       W_1: C -> max(1, C // r), W_2: back to C (no biases)
    y = x * a[:, None, None, :]
    ```

    This is the SE variant of the AHBF-OKD fusion module (applied to the
    fused features after their BatchNorm); unlike the published code it
    works for any channel count `C` (the published block hard-codes 64).

    Args:
        reduction: int. Reduction ratio `r` of the bottleneck (>= 1).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.

    Returns:
        A tensor of the same shape as `inputs`.

    Raises:
        ValueError: on `reduction < 1` or an input that is not 4D
            channels-last with a known channel count.

    Example:

    >>> import numpy as np
    >>> se = SqueezeExcitation(reduction=4)
    >>> tuple(se(np.ones((2, 4, 4, 8), "float32")).shape)
    (2, 4, 4, 8)

    Reference:
        Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.
    """

    def __init__(self, reduction: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.reduction = _utils.check_int("reduction", reduction, 1)

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        _utils.build_channel_mlp(self, input_shape, self.reduction)
        self.built = True

    def call(self, inputs):
        squeezed = ops.mean(inputs, axis=(1, 2))
        gate = ops.sigmoid(self.fc2(ops.relu(self.fc1(squeezed))))
        return inputs * gate[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction})
        return config
