"""`PeerAttention`: per-peer aggregation weights from self-attention (OKDDip)."""

import keras
from keras import ops

from keras_ahbf.layers import _utils


@keras.saving.register_keras_serializable(package="keras_ahbf")
class PeerAttention(keras.layers.Layer):
    """Self-attention weights over `n` peers, one set of weights per peer.

    From the pooled features `h_a` of `n` peers, two linear projections
    without bias (shared by the peers) give a query and a key per peer, and
    each peer's weights over all peers (itself included) are the softmax of
    its query's dot products with the keys:

    ```
    q_a = W_q h_a,   k_b = W_k h_b          (projection_dim each)
    alpha_ab = exp(q_a . k_b) / sum_f exp(q_a . k_f)
    ```

    Row `a` of the result weights the peers' predictions into peer `a`'s
    own distillation target (`keras_ahbf.methods.okddip_loss`). This is the
    attention of OKDDip's authors' CIFAR code (`models/model_cifar/
    resnet_GL.py`: `query_weight`, `key_weight`, `torch.bmm`, softmax over
    the keys), with `projection_dim = channels // reduction` (their
    `input_channel // factor`, `factor=8`).

    Args:
        reduction: int. The projections have `channels // reduction`
            units (at least 1; >= 1; 8 in the authors' code). Ignored when
            `projection_dim` is given.
        projection_dim: int or None. Units of the query and key
            projections (>= 1).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: the peers' pooled features, `(batch, n, channels)`.

    Returns:
        The attention weights `(batch, n, n)`; every row sums to 1.

    Raises:
        ValueError: on a `reduction` or `projection_dim` < 1, or inputs
            that are not `(batch, n, channels)` with known `n` and
            `channels`.

    Example:

    >>> import numpy as np
    >>> layer = PeerAttention(reduction=4)
    >>> weights = layer(np.ones((2, 3, 16), "float32"))
    >>> tuple(weights.shape), layer.projection_units
    ((2, 3, 3), 4)

    Reference:
        Chen, Mei, Wang, Feng and Chen, "Online Knowledge Distillation with
        Diverse Peers", AAAI 2020 (arXiv:1912.00350); code:
        https://github.com/DefangChen/OKDDip-AAAI2020.
    """

    def __init__(self, reduction: int = 8, projection_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.reduction = _utils.check_int("reduction", reduction, 1)
        self.projection_dim = (
            None if projection_dim is None
            else _utils.check_int("projection_dim", projection_dim, 1)
        )
        self.projection_units = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "`PeerAttention` expects pooled features of shape (batch, "
                f"num_peers, channels). Received: input_shape={input_shape}"
            )
        channels = int(input_shape[2])
        units = self.projection_dim or max(1, channels // self.reduction)
        self.projection_units = units
        self.query = keras.layers.Dense(
            units, use_bias=False, name="query", dtype=self.dtype_policy
        )
        self.key = keras.layers.Dense(
            units, use_bias=False, name="key", dtype=self.dtype_policy
        )
        self.query.build(input_shape)
        self.key.build(input_shape)
        self.built = True

    def call(self, inputs):
        query = self.query(inputs)  # (batch, n, units)
        key = self.key(inputs)
        energy = ops.matmul(query, ops.transpose(key, (0, 2, 1)))  # (batch, n, n)
        return ops.softmax(energy, axis=-1)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return (input_shape[0], input_shape[1], input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "projection_dim": self.projection_dim})
        return config
