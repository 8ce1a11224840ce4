"""`FusedBatchNormalization`: Keras' BatchNormalization on a fused kernel."""

import keras
from keras import ops

from keras_ahbf import kernels


@keras.saving.register_keras_serializable(package="keras_ahbf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by the backend's fused kernel.

    The same layer, arguments, variables and equations as Keras':

    ```
    y = gamma * (x - mean) / sqrt(variance + epsilon) + beta
    ```

    with the batch's `mean` and (biased) `variance` in training, after which
    `moving = momentum * moving + (1 - momentum) * batch`, and the moving
    statistics at inference. Where the backend has a fused BatchNorm kernel
    (`keras_ahbf.kernels`: TensorFlow's `FusedBatchNormV3`, PyTorch's
    `native_batch_norm`) and the call is the plain case (4D channels-last
    input, no mask, no renorm, not synchronized), one kernel computes it
    forward and one backward; otherwise, on JAX, or with the kernels switched
    off (`KERAS_AHBF_KERNELS=0`), `keras.layers.BatchNormalization.call`
    does. Both are tested equal, and the saved variables are the same.

    Args:
        **kwargs: the arguments of `keras.layers.BatchNormalization`.

    Call arguments:
        inputs: tensor. The input.
        training: bool. Batch statistics (and a moving-statistics update) if
            `True`, the moving statistics otherwise.
        mask: optional tensor. As in Keras' layer (the reference path).

    Returns:
        A tensor of the input's shape, in the layer's compute dtype.

    Example:

    >>> import numpy as np
    >>> bn = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> y = bn(np.random.rand(2, 4, 4, 3).astype("float32"), training=True)
    >>> tuple(y.shape)
    (2, 4, 4, 3)
    """

    def _fused_kernel(self, inputs, mask):
        if mask is not None or self.renorm or self.synchronized:
            return None
        if len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return None
        return kernels.get_kernel("fused_batch_norm")

    def call(self, inputs, training=None, mask=None):
        kernel = self._fused_kernel(inputs, mask)
        if kernel is None:
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        if self.scale:
            gamma = ops.cast(self.gamma, "float32")
        else:
            gamma = ops.ones((channels,), "float32")
        if self.center:
            beta = ops.cast(self.beta, "float32")
        else:
            beta = ops.zeros((channels,), "float32")
        x = ops.cast(inputs, "float32")
        if training and self.trainable:
            y, mean, variance = kernel(x, gamma, beta, self.epsilon, True)
            self.moving_mean.assign(
                self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * self.momentum
                + variance * (1.0 - self.momentum)
            )
        else:
            y, _, _ = kernel(
                x,
                gamma,
                beta,
                self.epsilon,
                False,
                mean=ops.cast(self.moving_mean, "float32"),
                variance=ops.cast(self.moving_variance, "float32"),
            )
        return ops.cast(y, self.compute_dtype)
