"""The adaptive hierarchy-branch fusion module of AHBF-OKD."""

from typing import Optional

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers._arguments import check_bool
from keras_ahbf.layers.attention.cbam import CBAM
from keras_ahbf.layers.attention.non_local_block import NonLocalBlock
from keras_ahbf.layers.attention.squeeze_excitation import SqueezeExcitation
from keras_ahbf.layers.fast_conv2d import FastConv2D

# The attention block each `attention` value places after the BatchNorm on G.
ATTENTION_LAYERS = {
    "se": SqueezeExcitation,
    "cbam": CBAM,
    "nonlocal": NonLocalBlock,
}
ATTENTIONS = (None,) + tuple(ATTENTION_LAYERS)


def _check_initializer(initializer):
    """Returns `initializer` unless Keras cannot interpret it (checked now,
    not when the layer is built)."""
    if isinstance(initializer, str) and initializer == "default":
        return initializer
    resolved = None
    if not hasattr(initializer, "shape"):  # A tensor fits no kernel shape.
        try:
            resolved = keras.initializers.get(initializer)
        except (ValueError, TypeError):
            pass
    if not callable(resolved):
        raise ValueError(
            "`kernel_initializer` must be 'default' or a Keras initializer (a name "
            "such as 'he_normal', an `Initializer` or its config). "
            f"Received: kernel_initializer={initializer!r}"
        )
    return initializer


@keras.saving.register_keras_serializable(package="keras_ahbf")
class AdaptiveFusion(keras.layers.Layer):
    """Fuses two branches with learned, per-sample weights (AHBF-OKD).

    Given two feature maps `Fa`, `Fb` of shape `(N, H, W, Ca)` and
    `(N, H, W, Cb)` and the matching logits `za`, `zb` of shape `(N, K)`,
    the layer computes

    ```
    G = BatchNorm(Conv1x1_with_bias(concat([Fa, Fb], axis=-1)))   # C = Cb channels
    G = Attention(G)                                               # only with `attention`
    g = GlobalAveragePooling(G)                                    # (N, C)
    s = ReLU(BatchNorm(Dense_with_bias(g, units=2)))               # (N, 2)
    w = softmax(s, axis=-1)                                        # per-sample weights
    e = w[:, 0:1] * za + w[:, 1:2] * zb
    ```

    and returns the fused feature map `G` and fused logits `e` (and, with
    `return_weights=True`, the weights `w`, e.g. for logging). `Ca` and `Cb`
    may differ (DenseNet branches): the convolution maps `Ca + Cb -> Cb`.
    In AHBF-OKD one such module per level fuses the previous fused output
    with the next, deeper branch: `(G_m, e_m) = Fuse_m(G_{m-1}, F_m,
    e_{m-1}, z_m)`.

    The published attention variants are available with `attention=`:
    `"se"` (`SqueezeExcitation`), `"cbam"` (`CBAM`) and `"nonlocal"`
    (`NonLocalBlock`); they work for any channel count `C` (the published
    ones hard-code 64 channels).

    Args:
        attention: `None`, `"se"`, `"cbam"` or `"nonlocal"`. The attention
            block placed after the BatchNorm on `G` (`None`: the plain
            fusion of the paper).
        return_weights: bool. If `True`, `call` also returns the `(N, 2)`
            fusion weights.
        kernel_initializer: initializer for the 1x1 convolution (default:
            Kaiming normal, fan-out, as in the published code).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[features_a, features_b, logits_a, logits_b]`.
        training: bool. Whether the BatchNorm layers run in training mode.

    Returns:
        `(fused_features, fused_logits)`, or
        `(fused_features, fused_logits, weights)` when `return_weights=True`.
        The weights sum to 1 along the last axis; `weights[:, 0]` weighs
        `logits_a`.

    Raises:
        ValueError: on an unknown `attention` or `kernel_initializer`, or
            inputs that are not two 4D channels-last feature maps of equal
            height and width and two logits tensors of equal shape.

    Example:

    >>> import numpy as np
    >>> fuse = AdaptiveFusion(return_weights=True)
    >>> fa = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> fb = np.random.rand(2, 8, 8, 32).astype("float32")
    >>> za = np.random.rand(2, 10).astype("float32")
    >>> zb = np.random.rand(2, 10).astype("float32")
    >>> g, e, w = fuse([fa, fb, za, zb])
    >>> tuple(g.shape), tuple(e.shape), tuple(w.shape)
    ((2, 8, 8, 32), (2, 10), (2, 2))

    Reference:
        Gong et al., "Adaptive Hierarchy-Branch Fusion for Online Knowledge
        Distillation", AAAI 2023.
    """

    def __init__(
        self,
        attention: Optional[str] = None,
        return_weights: bool = False,
        kernel_initializer="default",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention not in ATTENTIONS:
            raise ValueError(
                f"`attention` must be one of {ATTENTIONS}. "
                f"Received: attention={attention!r}"
            )
        self.attention = attention
        self.return_weights = check_bool("return_weights", return_weights)
        self.kernel_initializer = _check_initializer(kernel_initializer)

    def _check_inputs(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 4:
            raise ValueError(
                "`AdaptiveFusion` expects a list of 4 inputs "
                "[features_a, features_b, logits_a, logits_b]. Received: "
                f"input_shape={input_shape}"
            )
        fa, fb, za, zb = (tuple(s) for s in input_shape)
        _utils.check_rank4_channels_last("features_a", fa)
        _utils.check_rank4_channels_last("features_b", fb)
        if fa[1:3] != fb[1:3]:
            raise ValueError(
                "`features_a` and `features_b` must have the same height and "
                f"width. Received: shapes {fa} and {fb}"
            )
        if len(za) != 2 or len(zb) != 2 or za[-1] != zb[-1]:
            raise ValueError(
                "`logits_a` and `logits_b` must be 2D (batch, classes) "
                f"tensors of the same shape. Received: shapes {za} and {zb}"
            )
        return fa, fb, za

    def build(self, input_shape):
        fa, fb, _ = self._check_inputs(input_shape)
        channels = fb[-1]
        init = _utils.resolve_initializer(self.kernel_initializer)
        self.conv = FastConv2D(
            channels,
            1,
            use_bias=True,
            kernel_initializer=init,
            name="conv",
            dtype=self.dtype_policy,
        )
        self.conv.build(fa[:3] + (fa[-1] + fb[-1],))
        self.bn = _utils.batch_norm("bn", self.dtype_policy)
        self.bn.build(fa[:3] + (channels,))
        self.fc = keras.layers.Dense(2, name="fc", dtype=self.dtype_policy)
        self.fc.build((fa[0], channels))
        self.bn_fc = _utils.batch_norm("bn_fc", self.dtype_policy)
        self.bn_fc.build((fa[0], 2))
        self.attention_layer = None
        if self.attention is not None:
            self.attention_layer = ATTENTION_LAYERS[self.attention](
                name=f"attention_{self.attention}", dtype=self.dtype_policy
            )
            self.attention_layer.build(fa[:3] + (channels,))
        self.built = True

    def call(self, inputs, training=None):
        features_a, features_b, logits_a, logits_b = inputs
        fused = self.conv(ops.concatenate([features_a, features_b], axis=-1))
        fused = self.bn(fused, training=training)
        if self.attention_layer is not None:
            fused = self.attention_layer(fused, training=training)
        pooled = ops.mean(fused, axis=(1, 2))
        scores = ops.relu(self.bn_fc(self.fc(pooled), training=training))
        weights = ops.softmax(scores, axis=-1)
        logits_a = ops.cast(logits_a, weights.dtype)
        logits_b = ops.cast(logits_b, weights.dtype)
        fused_logits = weights[:, 0:1] * logits_a + weights[:, 1:2] * logits_b
        if self.return_weights:
            return fused, fused_logits, weights
        return fused, fused_logits

    def compute_output_shape(self, input_shape):
        fa, fb, za = self._check_inputs(input_shape)
        shapes = (fa[:3] + (fb[-1],), tuple(za))
        if self.return_weights:
            shapes += ((za[0], 2),)
        return shapes

    def get_config(self):
        config = super().get_config()
        init = _utils.serialize_initializer(self.kernel_initializer)
        config.update(
            {
                "attention": self.attention,
                "return_weights": self.return_weights,
                "kernel_initializer": init,
            }
        )
        return config
