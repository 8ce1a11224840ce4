"""Shared helpers for keras_ahbf layers (not public API)."""

import numbers

import keras

from keras_ahbf.layers.fused_batch_normalization import FusedBatchNormalization
from keras_ahbf.utils.validation import check_float  # noqa: F401 (re-export)
from keras_ahbf.utils.validation import check_int  # noqa: F401 (re-export)

# PyTorch's BatchNorm defaults (momentum 0.1 on the new statistic, eps 1e-5)
# expressed the Keras way; the paper's numbers were obtained with them.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv_initializer():
    """Kaiming-normal, fan-out initialiser, as in the published ResNets."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def resolve_initializer(initializer):
    """`"default"` means `conv_initializer()`; anything else is Keras'."""
    if isinstance(initializer, str) and initializer == "default":
        return conv_initializer()
    return initializer


def serialize_initializer(initializer):
    """The `get_config()` form of a `kernel_initializer` argument."""
    if isinstance(initializer, str):
        return initializer
    return keras.initializers.serialize(initializer)


def check_rank4_channels_last(name, shape):
    """Raises unless `shape` is a 4D NHWC shape."""
    if shape is None or len(shape) != 4:
        raise ValueError(
            f"`{name}` must be a 4D (batch, height, width, channels) tensor. "
            f"Received: {name} with shape {shape}"
        )
    if shape[-1] is None:
        raise ValueError(
            f"The channel dimension of `{name}` must be known. "
            f"Received: {name} with shape {shape}"
        )


def build_channel_mlp(layer, input_shape, reduction):
    """Builds the bias-free `C -> max(1, C // r) -> C` channel MLP.

    Shared by `SqueezeExcitation` and `CBAM`: creates and builds the two
    `Dense` layers as `layer.fc1` and `layer.fc2` (names `"fc1"`, `"fc2"`,
    the layer's dtype policy), from an NHWC `input_shape`.
    """
    channels = input_shape[-1]
    hidden = max(1, channels // reduction)
    layer.fc1 = keras.layers.Dense(
        hidden, use_bias=False, name="fc1", dtype=layer.dtype_policy
    )
    layer.fc1.build((input_shape[0], channels))
    layer.fc2 = keras.layers.Dense(
        channels, use_bias=False, name="fc2", dtype=layer.dtype_policy
    )
    layer.fc2.build((input_shape[0], hidden))


def batch_norm(name, dtype):
    """The package's BatchNorm: PyTorch's defaults, the fused kernel."""
    return FusedBatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name, dtype=dtype
    )
