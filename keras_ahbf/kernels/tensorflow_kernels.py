"""TensorFlow kernels: TensorFlow's fused BatchNorm op (`FusedBatchNormV3`).

Keras' `BatchNormalization` is built from ~15 generic ops forward and ~25
backward; the fused op computes the statistics, the normalisation and their
gradient in one kernel each way, on CPU (oneDNN or Eigen) and under XLA.
"""

import tensorflow as tf

NAMES = ("fused_batch_norm",)


def fused_batch_norm(x, gamma, beta, epsilon, training, mean=None, variance=None):
    """`(y, batch_mean, batch_variance)` of an NHWC `x` (float32 parameters).

    In training the batch statistics are returned, the variance biased (as
    `keras.ops.moments`; the op itself returns the Bessel-corrected one).
    Otherwise `mean` and `variance` normalise and are returned unchanged.
    """
    if training:
        empty = tf.constant([], dtype=tf.float32)
        y, batch_mean, batch_var, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=gamma,
            offset=beta,
            mean=empty,
            variance=empty,
            epsilon=epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=True,
        )
        shape = tf.shape(x)
        n = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
        batch_var = batch_var * ((n - 1.0) / tf.maximum(n, 1.0))
        return y, tf.stop_gradient(batch_mean), tf.stop_gradient(batch_var)
    y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=gamma,
        offset=beta,
        mean=mean,
        variance=variance,
        epsilon=epsilon,
        data_format="NHWC",
        is_training=False,
    )
    return y, mean, variance


conv2d = None
