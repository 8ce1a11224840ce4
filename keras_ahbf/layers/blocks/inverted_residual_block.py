"""The MobileNetV2 inverted residual block."""

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers.fast_conv2d import FastConv2D


@keras.saving.register_keras_serializable(package="keras_ahbf")
class InvertedResidualBlock(keras.layers.Layer):
    """MobileNetV2 block: expand, depthwise convolution, linear projection.

    With `C_in` input channels and expansion `t`:

    ```
    h = ReLU(BN(Conv1x1_{t*C_in}(x)))                 # expansion
    h = ReLU(BN(DepthwiseConv3x3_stride(h)))           # spatial filtering
    h = BN(Conv1x1_filters(h))                         # linear bottleneck
    y = x + h   if strides == 1 and C_in == filters,   else h
    ```

    Convolutions have no bias. As in the MobileNetV2 of the AHBF-OKD (and
    CRD) CIFAR code, the activation is ReLU and the expansion convolution
    is kept even when `t = 1` (the original MobileNetV2 uses ReLU6 and
    drops it).

    Args:
        filters: int. Output channels.
        strides: int. Stride of the depthwise convolution (1 or 2).
        expansion: int. Expansion factor `t` (>= 1).
        kernel_initializer: initializer for the convolutions (default:
            Kaiming normal, fan-out).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.
        training: bool. Whether BatchNorm runs in training mode.

    Returns:
        Tensor of shape `(batch, height / strides, width / strides,
        filters)`.

    Raises:
        ValueError: on non-positive sizes.

    Example:

    >>> import numpy as np
    >>> block = InvertedResidualBlock(24, strides=2, expansion=6)
    >>> tuple(block(np.zeros((1, 8, 8, 16), "float32")).shape)
    (1, 4, 4, 24)

    Reference:
        Sandler et al., "MobileNetV2: Inverted Residuals and Linear
        Bottlenecks", CVPR 2018.
    """

    def __init__(
        self,
        filters: int,
        strides: int = 1,
        expansion: int = 6,
        kernel_initializer="default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = _utils.check_int("filters", filters, 1)
        self.strides = _utils.check_int("strides", strides, 1)
        self.expansion = _utils.check_int("expansion", expansion, 1)
        self.kernel_initializer = kernel_initializer

    def _init(self):
        return _utils.resolve_initializer(self.kernel_initializer)

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        input_shape = tuple(input_shape)
        hidden = input_shape[-1] * self.expansion
        self.expand_conv = FastConv2D(
            hidden, 1, use_bias=False, kernel_initializer=self._init(),
            name="expand_conv", dtype=self.dtype_policy,
        )
        self.expand_conv.build(input_shape)
        shape = input_shape[:3] + (hidden,)
        self.expand_bn = _utils.batch_norm("expand_bn", self.dtype_policy)
        self.expand_bn.build(shape)
        self.depthwise_conv = keras.layers.DepthwiseConv2D(
            3, strides=self.strides, padding="same", use_bias=False,
            depthwise_initializer=self._init(), name="depthwise_conv",
            dtype=self.dtype_policy,
        )
        self.depthwise_conv.build(shape)
        shape = self.depthwise_conv.compute_output_shape(shape)
        self.depthwise_bn = _utils.batch_norm("depthwise_bn", self.dtype_policy)
        self.depthwise_bn.build(shape)
        self.project_conv = FastConv2D(
            self.filters, 1, use_bias=False, kernel_initializer=self._init(),
            name="project_conv", dtype=self.dtype_policy,
        )
        self.project_conv.build(shape)
        self.project_bn = _utils.batch_norm("project_bn", self.dtype_policy)
        self.project_bn.build(shape[:3] + (self.filters,))
        self.residual = self.strides == 1 and input_shape[-1] == self.filters
        self.built = True

    def call(self, inputs, training=None):
        x = ops.relu(self.expand_bn(self.expand_conv(inputs), training=training))
        x = ops.relu(self.depthwise_bn(self.depthwise_conv(x), training=training))
        x = self.project_bn(self.project_conv(x), training=training)
        return inputs + x if self.residual else x

    def compute_output_shape(self, input_shape):
        def down(size):
            return None if size is None else -(-size // self.strides)

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), self.filters)

    def get_config(self):
        config = super().get_config()
        init = _utils.serialize_initializer(self.kernel_initializer)
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "expansion": self.expansion,
                "kernel_initializer": init,
            }
        )
        return config
