"""A DenseNet dense block."""

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers._arguments import check_bool
from keras_ahbf.layers._arguments import check_rate
from keras_ahbf.layers.fast_conv2d import FastConv2D


@keras.saving.register_keras_serializable(package="keras_ahbf")
class DenseBlock(keras.layers.Layer):
    """A DenseNet dense block: every layer sees all earlier feature maps.

    With `x_0` the input (`C_in` channels) and growth rate `k`:

    ```
    h_i = Conv3x3_k(ReLU(BN(Conv1x1_{w*k}(ReLU(BN(concat(x_0 ... x_i)))))))   bottleneck
    h_i = Conv3x3_k(ReLU(BN(concat(x_0 ... x_i))))                            otherwise
    x_{i+1} = h_i                        i = 0 ... num_layers - 1 (convolutions without bias)
    y = concat(x_0 ... x_L)                              # C_in + num_layers * k channels
    y = ReLU(BN(y))                                      (if final_bn_relu)
    ```

    With `final_bn_relu=True` the block also applies the BatchNorm and
    ReLU that end a DenseNet before its pooling: this is the last dense
    block of an AHBF-OKD DenseNet branch, copied by `HierarchicalBranches`
    with `depth_key="num_layers"`, so branches differ in depth *and* in
    output channels (`C_in + depth_b * k`).

    Args:
        growth_rate: int. Channels `k` added by each layer.
        num_layers: int. Number of layers `L` (>= 1).
        bottleneck: bool. Use the 1x1 bottleneck convolution (DenseNet-BC).
        bottleneck_width: int. The bottleneck has `bottleneck_width * k`
            channels (4 in DenseNet-BC).
        dropout_rate: float. Dropout after each 3x3 convolution, `[0, 1)`.
        final_bn_relu: bool. End with BatchNorm + ReLU on the output.
        kernel_initializer: initializer for the convolutions (default:
            Kaiming normal, fan-out).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.
        training: bool. Whether BatchNorm and dropout run in training mode.

    Returns:
        Tensor of shape
        `(batch, height, width, channels + num_layers * growth_rate)`.

    Raises:
        ValueError: on non-positive sizes or a `dropout_rate` outside
            `[0, 1)`.

    Example:

    >>> import numpy as np
    >>> block = DenseBlock(growth_rate=12, num_layers=3, final_bn_relu=True)
    >>> tuple(block(np.zeros((2, 8, 8, 24), "float32")).shape)
    (2, 8, 8, 60)

    Reference:
        Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.
    """

    def __init__(
        self,
        growth_rate: int,
        num_layers: int,
        bottleneck: bool = True,
        bottleneck_width: int = 4,
        dropout_rate: float = 0.0,
        final_bn_relu: bool = False,
        kernel_initializer="default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.growth_rate = _utils.check_int("growth_rate", growth_rate, 1)
        self.num_layers = _utils.check_int("num_layers", num_layers, 1)
        self.bottleneck = check_bool("bottleneck", bottleneck)
        self.bottleneck_width = _utils.check_int("bottleneck_width", bottleneck_width, 1)
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.final_bn_relu = check_bool("final_bn_relu", final_bn_relu)
        self.kernel_initializer = kernel_initializer

    def output_channels(self, input_channels: int) -> int:
        """Channels of the output for `input_channels` input channels."""
        return input_channels + self.num_layers * self.growth_rate

    def _conv(self, filters, size, name):
        init = _utils.resolve_initializer(self.kernel_initializer)
        return FastConv2D(
            filters, size, padding="same", use_bias=False,
            kernel_initializer=init, name=name, dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        spatial = tuple(input_shape[:3])
        channels = input_shape[-1]
        width = self.bottleneck_width * self.growth_rate
        # One flat list per sub-layer kind (Keras tracks lists of layers).
        self.norms1, self.convs1, self.norms2, self.convs2 = [], [], [], []
        self.dropouts = []
        for i in range(self.num_layers):
            bn1 = _utils.batch_norm(f"layer_{i}_bn1", self.dtype_policy)
            bn1.build(spatial + (channels,))
            self.norms1.append(bn1)
            conv_in = channels
            if self.bottleneck:
                conv1 = self._conv(width, 1, f"layer_{i}_conv1")
                conv1.build(spatial + (channels,))
                bn2 = _utils.batch_norm(f"layer_{i}_bn2", self.dtype_policy)
                bn2.build(spatial + (width,))
                self.convs1.append(conv1)
                self.norms2.append(bn2)
                conv_in = width
            conv2 = self._conv(self.growth_rate, 3, f"layer_{i}_conv2")
            conv2.build(spatial + (conv_in,))
            self.convs2.append(conv2)
            if self.dropout_rate:
                self.dropouts.append(
                    keras.layers.Dropout(
                        self.dropout_rate, name=f"layer_{i}_dropout",
                        dtype=self.dtype_policy,
                    )
                )
            channels += self.growth_rate
        self.final_bn = None
        if self.final_bn_relu:
            self.final_bn = _utils.batch_norm("final_bn", self.dtype_policy)
            self.final_bn.build(spatial + (channels,))
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for i in range(self.num_layers):
            h = ops.relu(self.norms1[i](x, training=training))
            if self.bottleneck:
                h = self.convs1[i](h)
                h = ops.relu(self.norms2[i](h, training=training))
            h = self.convs2[i](h)
            if self.dropout_rate:
                h = self.dropouts[i](h, training=training)
            x = ops.concatenate([x, h], axis=-1)
        if self.final_bn is not None:
            x = ops.relu(self.final_bn(x, training=training))
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.output_channels(input_shape[-1]),)

    def get_config(self):
        config = super().get_config()
        init = _utils.serialize_initializer(self.kernel_initializer)
        config.update(
            {
                "growth_rate": self.growth_rate,
                "num_layers": self.num_layers,
                "bottleneck": self.bottleneck,
                "bottleneck_width": self.bottleneck_width,
                "dropout_rate": self.dropout_rate,
                "final_bn_relu": self.final_bn_relu,
                "kernel_initializer": init,
            }
        )
        return config
