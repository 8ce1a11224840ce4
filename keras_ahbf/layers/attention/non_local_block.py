"""The embedded-Gaussian non-local block (self-attention over positions)."""

from typing import Optional

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers.fast_conv2d import FastConv2D


@keras.saving.register_keras_serializable(package="keras_ahbf")
class NonLocalBlock(keras.layers.Layer):
    """Non-local block: every position attends to every other position.

    For a feature map `x` of shape `(N, H, W, C)`, with `P = H * W`
    positions and `C' = inter_channels` (default `max(1, C // 2)`):

    ```
    theta, phi, g = Conv1x1_{C'}(x)  (three convolutions, no bias), reshaped to (N, P, C')
    A = softmax(theta @ phi^T, axis=-1)          # (N, P, P), each row sums to 1
    y = x + Conv1x1_C(reshape(A @ g, (N, H, W, C')))   # no bias
    ```

    The non-local variant of the AHBF-OKD fusion module. Unlike the
    published code it works for any channel count (the published block
    hard-codes 64) and keeps positions and channels apart when flattening
    (the published block reshapes the `C / 2`-channel maps to `C` rows,
    which mixes channels with positions, and normalises the attention
    over queries instead of keys).

    Args:
        inter_channels: int or None. Width `C'` of the embeddings
            (default: half the input channels, at least 1).
        kernel_initializer: initializer for the convolutions (default:
            Kaiming normal, fan-out).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.

    Returns:
        A tensor of the same shape as `inputs`.

    Raises:
        ValueError: on `inter_channels < 1` or an input that is not 4D
            channels-last with a known channel count.

    Example:

    >>> import numpy as np
    >>> block = NonLocalBlock()
    >>> tuple(block(np.ones((2, 4, 4, 8), "float32")).shape)
    (2, 4, 4, 8)

    Reference:
        Wang et al., "Non-local Neural Networks", CVPR 2018.
    """

    def __init__(
        self,
        inter_channels: Optional[int] = None,
        kernel_initializer="default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if inter_channels is not None:
            inter_channels = _utils.check_int("inter_channels", inter_channels, 1)
        self.inter_channels = inter_channels
        self.kernel_initializer = kernel_initializer

    def _conv(self, filters, name):
        init = _utils.resolve_initializer(self.kernel_initializer)
        return FastConv2D(
            filters,
            1,
            use_bias=False,
            kernel_initializer=init,
            name=name,
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        input_shape = tuple(input_shape)
        channels = input_shape[-1]
        inter = self.inter_channels or max(1, channels // 2)
        self._inter = inter
        self.theta = self._conv(inter, "theta")
        self.phi = self._conv(inter, "phi")
        self.g = self._conv(inter, "g")
        for conv in (self.theta, self.phi, self.g):
            conv.build(input_shape)
        self.out_conv = self._conv(channels, "out_conv")
        self.out_conv.build(input_shape[:3] + (inter,))
        self.built = True

    def call(self, inputs):
        shape = ops.shape(inputs)
        height, width = shape[1], shape[2]
        positions = height * width

        def flat(t):
            return ops.reshape(t, (-1, positions, self._inter))

        theta = flat(self.theta(inputs))
        phi = flat(self.phi(inputs))
        g = flat(self.g(inputs))
        attention = ops.softmax(
            ops.matmul(theta, ops.transpose(phi, (0, 2, 1))), axis=-1
        )
        y = ops.reshape(ops.matmul(attention, g), (-1, height, width, self._inter))
        return inputs + self.out_conv(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        init = _utils.serialize_initializer(self.kernel_initializer)
        config.update(
            {
                "inter_channels": self.inter_channels,
                "kernel_initializer": init,
            }
        )
        return config
