"""Branches of increasing depth sharing one input: the AHBF hierarchy."""

from typing import Optional

import keras
from keras import ops

from keras_ahbf.layers import _utils


@keras.saving.register_keras_serializable(package="keras_ahbf")
class HierarchicalBranches(keras.layers.Layer):
    """`num_branches` copies of a stage, branch `b` deeper by `b * aux`.

    From a template stage layer whose config has an integer depth argument
    (`depth_key`, e.g. `ResidualStage(..., depth=5)`), this layer creates one
    stage per branch with

    ```
    depth_b = depth_0 + b * aux          for b = 0 ... num_branches - 1
    F_b = stage_b(x)                     # branch feature map (before pooling)
    z_b = Dense_b(GlobalAveragePooling(F_b))   # branch logits
    ```

    Branch 0 is the target network's head; the deeper branches only exist
    during training. Any serializable Keras layer with a depth-like integer
    argument can serve as the template (a VGG stage with `num_convs`, a dense
    block with `num_layers`, a user's own stage, ...).

    Args:
        stage: `keras.layers.Layer`. The template stage of branch 0 (it is
            not used itself; each branch gets a copy built from its config).
        num_branches: int. Number of branches `B` (>= 1).
        aux: int. Extra depth per branch level (>= 0).
        num_classes: int. Number of classes of each branch's classifier.
        depth_key: str. Name of the template's depth argument.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: the shared (trunk) feature map, `(batch, height, width,
            channels)`.
        training: bool. Whether BatchNorm runs in training mode.

    Returns:
        `(features, logits)`: two lists of `num_branches` tensors, the branch
        feature maps `F_b` and logits `z_b` (`(batch, num_classes)`), target
        branch first.

    Raises:
        ValueError: if `stage` has no integer `depth_key` in its config, or
            on a bad `num_branches`, `aux` or `num_classes`.

    Example:

    >>> import numpy as np
    >>> from keras_ahbf.layers import ResidualStage
    >>> branches = HierarchicalBranches(
    ...     ResidualStage(filters=64, depth=1, strides=2),
    ...     num_branches=3, aux=1, num_classes=10)
    >>> feats, logits = branches(np.zeros((2, 8, 8, 32), "float32"))
    >>> [s.depth for s in branches.stages]
    [1, 2, 3]
    """

    def __init__(
        self,
        stage: keras.layers.Layer,
        num_branches: int,
        aux: int,
        num_classes: int,
        depth_key: str = "depth",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(stage, dict):
            stage = keras.saving.deserialize_keras_object(stage)
        if not isinstance(stage, keras.layers.Layer):
            raise TypeError(
                "`stage` must be a `keras.layers.Layer` whose config has a "
                f"`{depth_key}` argument. Received: stage={stage!r}"
            )
        self.num_branches = _utils.check_int("num_branches", num_branches, 1)
        self.aux = _utils.check_int("aux", aux, 0)
        self.num_classes = _utils.check_int("num_classes", num_classes, 1)
        self.depth_key = depth_key
        self._stage_config = stage.get_config()
        base_depth = self._stage_config.get(depth_key)
        if isinstance(base_depth, bool) or not isinstance(base_depth, int):
            raise ValueError(
                f"The config of `stage` ({type(stage).__name__}) must hold an "
                f"integer `{depth_key}` (set `depth_key` to the name of its "
                f"depth argument). Received: {depth_key}={base_depth!r}"
            )
        self.base_depth = base_depth
        # Only the template's config is kept: it is not a sub-layer itself.
        self._stage_serialized = keras.saving.serialize_keras_object(stage)
        self._stage_class = type(stage)
        self.stages = [
            self._make_stage(stage, b) for b in range(self.num_branches)
        ]
        self.heads = [
            keras.layers.Dense(
                self.num_classes, name=f"branch_{b}_classifier", dtype=self.dtype_policy
            )
            for b in range(self.num_branches)
        ]

    @property
    def depths(self):
        """The depth of every branch's stage, target first."""
        return [self.base_depth + b * self.aux for b in range(self.num_branches)]

    def _make_stage(self, template, b):
        config = dict(self._stage_config)
        config[self.depth_key] = self.depths[b]
        config["name"] = f"branch_{b}_stage"
        config["dtype"] = self.dtype_policy
        return type(template).from_config(config)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        for stage, head in zip(self.stages, self.heads):
            stage.build(input_shape)
            features = stage.compute_output_shape(input_shape)
            head.build((input_shape[0], features[-1]))
        self.built = True

    def call_branch(self, index: int, inputs, training=None):
        """Runs one branch: returns its `(features, logits)`."""
        features = self.stages[index](inputs, training=training)
        pooled = ops.mean(features, axis=(1, 2))
        return features, self.heads[index](pooled)

    def call(self, inputs, training=None):
        features, logits = [], []
        for b in range(self.num_branches):
            f, z = self.call_branch(b, inputs, training=training)
            features.append(f)
            logits.append(z)
        return features, logits

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        feats = [s.compute_output_shape(input_shape) for s in self.stages]
        logits = [(input_shape[0], self.num_classes)] * self.num_branches
        return feats, logits

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stage": self._stage_serialized,
                "num_branches": self.num_branches,
                "aux": self.aux,
                "num_classes": self.num_classes,
                "depth_key": self.depth_key,
            }
        )
        return config
