"""The three-convolution (1x1-3x3-1x1) residual block of ResNet."""

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers.blocks.basic_block import BasicBlock


@keras.saving.register_keras_serializable(package="keras_ahbf")
class Bottleneck(BasicBlock):
    """The ResNet bottleneck block: 1x1, 3x3 and 1x1 convolutions.

    ```
    y = ReLU(BN(Conv1x1_{4f}(ReLU(BN(Conv3x3_stride_f(ReLU(BN(Conv1x1_f(x)))))))) + shortcut(x))
    shortcut(x) = x if strides == 1 and C_in == 4 * filters else BN(Conv1x1_stride(x))
    ```

    The output has `filters * Bottleneck.expansion` (= `4 * filters`)
    channels. The stride sits on the 3x3 convolution (as in the published
    CIFAR ResNet-110 and torchvision's ResNet v1.5).

    Args:
        filters: int. Width of the bottleneck; the block outputs
            `4 * filters` channels.
        strides: int. Stride of the 3x3 convolution and the shortcut.
        kernel_initializer: initializer for the convolutions (default:
            Kaiming normal, fan-out).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.
        training: bool. Whether BatchNorm runs in training mode.

    Returns:
        Tensor of shape
        `(batch, height / strides, width / strides, 4 * filters)`.

    Example:

    >>> import numpy as np
    >>> block = Bottleneck(16, strides=2)
    >>> tuple(block(np.zeros((1, 8, 8, 16), "float32")).shape)
    (1, 4, 4, 64)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    expansion = 4

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        input_shape = tuple(input_shape)
        out_channels = self.filters * self.expansion
        self.conv1, self.bn1, shape = self._build_conv_bn(1, self.filters, 1, 1, input_shape)
        self.conv2, self.bn2, shape = self._build_conv_bn(
            2, self.filters, 3, self.strides, shape
        )
        self.conv3, self.bn3, _ = self._build_conv_bn(3, out_channels, 1, 1, shape)
        self._shortcut_layers(input_shape, out_channels)
        self.built = True

    def call(self, inputs, training=None):
        x = ops.relu(self.bn1(self.conv1(inputs), training=training))
        x = ops.relu(self.bn2(self._apply_conv(self.conv2, x), training=training))
        x = self.bn3(self.conv3(x), training=training)
        return ops.relu(x + self._shortcut(inputs, training))
