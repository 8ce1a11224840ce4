"""`FastConv2D`: Keras' Conv2D without the PyTorch backend's layout copies."""

import keras

from keras_ahbf import kernels


@keras.saving.register_keras_serializable(package="keras_ahbf")
class FastConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` convolving through `keras_ahbf.kernels` where faster.

    The same layer, arguments, variables and equation as Keras' (for each
    output position `p` and filter `o`, with the kernel `W` of shape
    `(kh, kw, in_channels, filters)`):

    ```
    y[p, o] = sum_{i, j, c} x[s * p + d * (i, j) - pad, c] * W[i, j, c, o] + b[o]
    ```

    On the PyTorch backend Keras copies every channels-last input to
    contiguous channels-first memory and back before convolving; the
    `conv2d` kernel convolves the channels-last view directly. It is used
    for channels-last inputs whose padding is symmetric (`"valid"`, or
    `"same"` with stride 1 and odd kernel sizes); every other case, every
    other backend, and the kernels switched off (`KERAS_AHBF_KERNELS=0`) use
    `keras.layers.Conv2D.convolution_op`. Both are tested equal.

    Args:
        filters: int. Output channels, as in `keras.layers.Conv2D`.
        kernel_size: int or tuple. As in `keras.layers.Conv2D`.
        **kwargs: the other arguments of `keras.layers.Conv2D`.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.

    Returns:
        The convolved tensor, as `keras.layers.Conv2D` returns it.

    Example:

    >>> import numpy as np
    >>> conv = FastConv2D(8, 3, padding="same")
    >>> tuple(conv(np.zeros((2, 6, 6, 3), "float32")).shape)
    (2, 6, 6, 8)
    """

    def _symmetric_padding(self):
        if self.padding == "valid":
            return (0, 0)
        if any(s != 1 for s in self.strides):
            return None
        if any(k % 2 == 0 for k in self.kernel_size):
            return None
        return tuple(
            d * (k - 1) // 2 for k, d in zip(self.kernel_size, self.dilation_rate)
        )

    def convolution_op(self, inputs, kernel):
        conv2d = kernels.get_kernel("conv2d")
        padding = self._symmetric_padding()
        if conv2d is None or padding is None or self.data_format != "channels_last":
            return super().convolution_op(inputs, kernel)
        return conv2d(
            inputs,
            kernel,
            tuple(self.strides),
            padding,
            tuple(self.dilation_rate),
            self.groups,
        )
