"""PyTorch kernels: ATen's fused BatchNorm and convolutions without copies.

- `fused_batch_norm`: `torch.native_batch_norm`, one kernel forward and one
  backward, instead of Keras' BatchNormalization built from ~15 elementwise
  ops.
- `conv2d`: Keras' torch convolution copies every NHWC input to contiguous
  NCHW and then back to channels-last memory. `x.permute(0, 3, 1, 2)` of an
  NHWC tensor is already an NCHW tensor in channels-last memory, the layout
  oneDNN convolves in, so it is passed to `conv2d` as it is.
"""

import torch
import torch.nn.functional as F
from keras import ops

NAMES = ("fused_batch_norm", "conv2d")


def fused_batch_norm(x, gamma, beta, epsilon, training, mean=None, variance=None):
    """`(y, batch_mean, batch_variance)` of an NHWC `x` (float32 parameters).

    In training the batch statistics are returned, the variance biased (as
    `keras.ops.moments`), recovered from the kernel's saved inverse standard
    deviation. Otherwise `mean` and `variance` normalise and are returned.
    """
    xt = ops.convert_to_tensor(x).permute(0, 3, 1, 2)
    if training:
        y, batch_mean, invstd = torch.native_batch_norm(
            xt, gamma, beta, None, None, True, 0.0, epsilon
        )
        batch_var = torch.clamp(invstd.detach().pow(-2) - epsilon, min=0.0)
        return y.permute(0, 2, 3, 1), batch_mean.detach(), batch_var
    y = F.batch_norm(xt, mean, variance, gamma, beta, False, 0.0, epsilon)
    return y.permute(0, 2, 3, 1), mean, variance


def conv2d(x, kernel, strides, padding, dilation_rate, groups):
    """NHWC convolution of `x` with an HWIO `kernel`; NHWC result.

    `padding` is a pair of ints (symmetric padding of height and width),
    already resolved by the caller from Keras' `"same"` / `"valid"`.
    """
    x = ops.convert_to_tensor(x)
    w = ops.convert_to_tensor(kernel).permute(3, 2, 0, 1)
    if not w.is_contiguous(memory_format=torch.channels_last):
        w = w.contiguous(memory_format=torch.channels_last)
    y = F.conv2d(
        x.permute(0, 3, 1, 2),
        w,
        stride=strides,
        padding=padding,
        dilation=dilation_rate,
        groups=groups,
    )
    return y.permute(0, 2, 3, 1)
