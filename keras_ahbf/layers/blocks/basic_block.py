"""The two-convolution residual block of ResNet."""

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers.fast_conv2d import FastConv2D


@keras.saving.register_keras_serializable(package="keras_ahbf")
class BasicBlock(keras.layers.Layer):
    """The ResNet basic block: two 3x3 convolutions and a shortcut.

    ```
    y = ReLU(BN(Conv3x3(ReLU(BN(Conv3x3_stride(x))))) + shortcut(x))
    shortcut(x) = x                                  if strides == 1 and C_in == filters
                = BN(Conv1x1_stride(x))              otherwise
    ```

    Convolutions have no bias; BatchNorm uses PyTorch's momentum (0.1, i.e.
    Keras `momentum=0.9`) and epsilon (1e-5), as the published models do.
    The output has `filters * BasicBlock.expansion` (= `filters`) channels.

    Args:
        filters: int. Number of output channels.
        strides: int. Stride of the first convolution and the shortcut.
        kernel_initializer: initializer for the convolutions (default:
            Kaiming normal, fan-out).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.
        training: bool. Whether BatchNorm runs in training mode.

    Returns:
        Tensor of shape `(batch, height / strides, width / strides, filters)`.

    Example:

    >>> import numpy as np
    >>> block = BasicBlock(32, strides=2)
    >>> tuple(block(np.zeros((1, 8, 8, 16), "float32")).shape)
    (1, 4, 4, 32)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    expansion = 1

    def __init__(
        self, filters: int, strides: int = 1, kernel_initializer="default", **kwargs
    ):
        super().__init__(**kwargs)
        self.filters = _utils.check_int("filters", filters, 1)
        self.strides = _utils.check_int("strides", strides, 1)
        self.kernel_initializer = kernel_initializer

    def _conv(self, filters, size, strides, name):
        # A strided 3x3 convolution pads one pixel on every side, as PyTorch's
        # `padding=1` in the published ResNets: Keras' "same" would pad only
        # the bottom and right, which shifts the sampling grid by one pixel
        # against the 1x1 strided shortcut. `_apply_conv` adds the padding.
        init = _utils.resolve_initializer(self.kernel_initializer)
        return FastConv2D(
            filters,
            size,
            strides=strides,
            padding="valid" if strides > 1 and size > 1 else "same",
            use_bias=False,
            kernel_initializer=init,
            name=name,
            dtype=self.dtype_policy,
        )

    @staticmethod
    def _pad_for(conv):
        return conv.kernel_size[0] // 2 if conv.padding == "valid" else 0

    def _apply_conv(self, conv, x):
        """Runs `conv`, with symmetric zero padding when it is strided."""
        pad = self._pad_for(conv)
        if pad:
            x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return conv(x)

    def _padded_shape(self, conv, shape):
        """The shape `conv` sees after `_apply_conv`'s padding."""
        pad = self._pad_for(conv)
        if pad:
            grow = lambda size: None if size is None else size + 2 * pad  # noqa: E731
            shape = (shape[0], grow(shape[1]), grow(shape[2]), shape[3])
        return shape

    def _build_conv(self, conv, shape):
        """Builds `conv` for inputs of `shape`; returns its output shape."""
        shape = self._padded_shape(conv, shape)
        conv.build(shape)
        return conv.compute_output_shape(shape)

    def _build_conv_bn(self, index, filters, size, strides, shape):
        """Creates and builds `conv<index>` and `bn<index>` for inputs of `shape`.

        Returns:
            `(conv, bn, output shape)`.
        """
        conv = self._conv(filters, size, strides, f"conv{index}")
        shape = self._build_conv(conv, shape)
        bn = _utils.batch_norm(f"bn{index}", self.dtype_policy)
        bn.build(shape)
        return conv, bn, shape

    def _shortcut_layers(self, input_shape, out_channels):
        """Creates the projection shortcut when the shape changes."""
        if self.strides == 1 and input_shape[-1] == out_channels:
            self.shortcut_conv = None
            self.shortcut_bn = None
            return
        self.shortcut_conv = self._conv(out_channels, 1, self.strides, "shortcut_conv")
        self.shortcut_conv.build(input_shape)
        self.shortcut_bn = _utils.batch_norm("shortcut_bn", self.dtype_policy)
        self.shortcut_bn.build(self.shortcut_conv.compute_output_shape(input_shape))

    def _shortcut(self, inputs, training):
        if self.shortcut_conv is None:
            return inputs
        return self.shortcut_bn(self.shortcut_conv(inputs), training=training)

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        input_shape = tuple(input_shape)
        self.conv1, self.bn1, shape = self._build_conv_bn(
            1, self.filters, 3, self.strides, input_shape
        )
        self.conv2, self.bn2, _ = self._build_conv_bn(2, self.filters, 3, 1, shape)
        self._shortcut_layers(input_shape, self.filters)
        self.built = True

    def call(self, inputs, training=None):
        x = ops.relu(self.bn1(self._apply_conv(self.conv1, inputs), training=training))
        x = self.bn2(self.conv2(x), training=training)
        return ops.relu(x + self._shortcut(inputs, training))

    def compute_output_shape(self, input_shape):
        return self._output_shape(input_shape, self.filters * self.expansion)

    def _output_shape(self, input_shape, channels):
        def down(size):
            return None if size is None else -(-size // self.strides)

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), channels)

    def get_config(self):
        config = super().get_config()
        init = _utils.serialize_initializer(self.kernel_initializer)
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "kernel_initializer": init,
            }
        )
        return config
