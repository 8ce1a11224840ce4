"""A VGG stage: 3x3 convolutions with BatchNorm, then max-pooling."""

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers._arguments import check_bool
from keras_ahbf.layers.fast_conv2d import FastConv2D


@keras.saving.register_keras_serializable(package="keras_ahbf")
class VGGStage(keras.layers.Layer):
    """A VGG stage: `num_convs` Conv-BN-ReLU units and a 2x2 max-pool.

    ```
    x_{i+1} = ReLU(BN(Conv3x3_with_bias(x_i)))      i = 0 ... num_convs - 1
    y = MaxPool2x2(x_{num_convs})                   (if pool)
    ```

    As in the CIFAR VGGs of the AHBF-OKD code, the convolutions keep
    their bias and are followed by BatchNorm (PyTorch momentum / epsilon).
    `HierarchicalBranches` copies it with `depth_key="num_convs"` to give
    each VGG branch a deeper last stage.

    Args:
        filters: int. Output channels of every convolution.
        num_convs: int. Number of convolutions (>= 1).
        pool: bool. Whether to end with a 2x2, stride-2 max-pooling.
        kernel_initializer: initializer for the convolutions (default:
            Kaiming normal, fan-out).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`.
        training: bool. Whether BatchNorm runs in training mode.

    Returns:
        Tensor of shape `(batch, height // 2, width // 2, filters)` (the
        height and width are kept when `pool=False`).

    Raises:
        ValueError: on a non-positive `filters` or `num_convs`.

    Example:

    >>> import numpy as np
    >>> stage = VGGStage(filters=32, num_convs=2)
    >>> tuple(stage(np.zeros((2, 8, 8, 16), "float32")).shape)
    (2, 4, 4, 32)

    Reference:
        Simonyan & Zisserman, "Very Deep Convolutional Networks for
        Large-Scale Image Recognition", ICLR 2015.
    """

    def __init__(
        self,
        filters: int,
        num_convs: int,
        pool: bool = True,
        kernel_initializer="default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = _utils.check_int("filters", filters, 1)
        self.num_convs = _utils.check_int("num_convs", num_convs, 1)
        self.pool = check_bool("pool", pool)
        self.kernel_initializer = kernel_initializer

    def build(self, input_shape):
        _utils.check_rank4_channels_last("inputs", input_shape)
        shape = tuple(input_shape)
        init = _utils.resolve_initializer(self.kernel_initializer)
        self.convs, self.bns = [], []
        for i in range(self.num_convs):
            conv = FastConv2D(
                self.filters, 3, padding="same", use_bias=True,
                kernel_initializer=init, name=f"conv_{i}", dtype=self.dtype_policy,
            )
            conv.build(shape)
            shape = shape[:3] + (self.filters,)
            bn = _utils.batch_norm(f"bn_{i}", self.dtype_policy)
            bn.build(shape)
            self.convs.append(conv)
            self.bns.append(bn)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for conv, bn in zip(self.convs, self.bns):
            x = ops.relu(bn(conv(x), training=training))
        if self.pool:
            x = ops.max_pool(x, pool_size=2, strides=2, padding="valid")
        return x

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if self.pool:
            height = None if height is None else height // 2
            width = None if width is None else width // 2
        return (input_shape[0], height, width, self.filters)

    def get_config(self):
        config = super().get_config()
        init = _utils.serialize_initializer(self.kernel_initializer)
        config.update(
            {
                "filters": self.filters,
                "num_convs": self.num_convs,
                "pool": self.pool,
                "kernel_initializer": init,
            }
        )
        return config
