"""CBAM: channel then spatial attention."""

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers.fast_conv2d import FastConv2D


@keras.saving.register_keras_serializable(package="keras_ahbf")
class CBAM(keras.layers.Layer):
    """Convolutional block attention module: channel, then spatial gate.

    For a feature map `x` of shape `(N, H, W, C)`, with a shared two-layer
    MLP `M(v) = W_2 ReLU(W_1 v)` (`W_1: C -> max(1, C // r)`, no biases):

    ```
    a_c = sigmoid(M(AvgPool(x)) + M(MaxPool(x)))                 # (N, C)
    x'  = x * a_c[:, None, None, :]
    a_s = sigmoid(Conv_kxk([mean_c(x'), max_c(x')]))             # (N, H, W, 1), no bias
    y   = x' * a_s
    ```

    The CBAM variant of the AHBF-OKD fusion module; unlike the published
    code it works for any channel count (the published block hard-codes
    64).

    Args:
        reduction: int. Reduction ratio `r` of the channel MLP (>= 1).
        kernel_size: int. Size of the spatial-attention convolution (odd,
            >= 1; the paper uses 7).
        kernel_initializer: initializer of the spatial convolution (default:
            Kaiming normal, fan-out).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.

    Returns:
        A tensor of the same shape as `inputs`.

    Raises:
        ValueError: on a bad `reduction` or `kernel_size`, or an input that
            is not 4D channels-last with a known channel count.

    Example:

    >>> import numpy as np
    >>> cbam = CBAM(reduction=4)
    >>> tuple(cbam(np.ones((2, 4, 4, 8), "float32")).shape)
    (2, 4, 4, 8)

    Reference:
        Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018.
    """

    def __init__(
        self,
        reduction: int = 16,
        kernel_size: int = 7,
        kernel_initializer="default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.reduction = _utils.check_int("reduction", reduction, 1)
        self.kernel_size = _utils.check_int("kernel_size", kernel_size, 1)
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"`kernel_size` must be odd. Received: kernel_size={kernel_size}"
            )
        self.kernel_initializer = kernel_initializer

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        _utils.build_channel_mlp(self, input_shape, self.reduction)
        init = _utils.resolve_initializer(self.kernel_initializer)
        self.spatial_conv = FastConv2D(
            1,
            self.kernel_size,
            padding="same",
            use_bias=False,
            kernel_initializer=init,
            name="spatial_conv",
            dtype=self.dtype_policy,
        )
        self.spatial_conv.build(tuple(input_shape[:3]) + (2,))
        self.built = True

    def _mlp(self, v):
        return self.fc2(ops.relu(self.fc1(v)))

    def call(self, inputs):
        avg = ops.mean(inputs, axis=(1, 2))
        peak = ops.max(inputs, axis=(1, 2))
        channel_gate = ops.sigmoid(self._mlp(avg) + self._mlp(peak))
        x = inputs * channel_gate[:, None, None, :]
        pooled = ops.concatenate(
            [ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)],
            axis=-1,
        )
        return x * ops.sigmoid(self.spatial_conv(pooled))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        init = _utils.serialize_initializer(self.kernel_initializer)
        config.update(
            {
                "reduction": self.reduction,
                "kernel_size": self.kernel_size,
                "kernel_initializer": init,
            }
        )
        return config
