"""Backend kernels: the fast paths where Keras' generic ops are the bottleneck.

Every kernel here has the `keras.ops` implementation of the layer that uses
it as its reference and fallback: `FusedBatchNormalization` falls back to
`keras.layers.BatchNormalization.call`, `FastConv2D` to
`keras.layers.Conv2D.convolution_op`. The kernel for the running backend is
chosen once per process:

| kernel | TensorFlow | PyTorch | JAX |
| --- | --- | --- | --- |
| `fused_batch_norm` | `FusedBatchNormV3` | `torch.native_batch_norm` | reference (XLA fuses it) |
| `conv2d` | reference | `conv2d` on the channels-last view, no copies | reference |

Switch them off with `KERAS_AHBF_KERNELS=0` in the environment, or
`keras_ahbf.kernels.set_enabled(False)` (or the `kernels_enabled(False)`
context manager) before the model is traced. The saved `.keras` files
hold the same variables either way, so a model saved with the kernels on
loads and predicts the same with them off or on another backend.
"""

from keras_ahbf.kernels.registry import active_kernels
from keras_ahbf.kernels.registry import available_kernels
from keras_ahbf.kernels.registry import get_kernel
from keras_ahbf.kernels.switch import ENV_VAR
from keras_ahbf.kernels.switch import enabled
from keras_ahbf.kernels.switch import kernels_enabled
from keras_ahbf.kernels.switch import set_enabled

__all__ = [
    "ENV_VAR",
    "active_kernels",
    "available_kernels",
    "enabled",
    "get_kernel",
    "kernels_enabled",
    "set_enabled",
]
