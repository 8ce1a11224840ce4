"""Branches of increasing depth sharing one input: the AHBF hierarchy."""

import numbers

import keras
from keras import ops

from keras_ahbf.layers import _utils
from keras_ahbf.layers._arguments import check_rate


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


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

    When the template holds several consecutive stages, its depth argument
    may be a list of `S` integers (one per stage, e.g.
    `ResidualStages(depth=[2, 2])` for ResNet stages 3 and 4). The extra
    blocks then alternate between the stages, the first stage first, `aux`
    blocks at a time:

    ```
    depth_b[s] = depth_0[s] + aux * ceil((b - s) / S)     for b >= s
    depth_b[s] = depth_0[s]                               for b <  s
    ```

    (with `S = 2`: stage 0 gets `aux * ceil(b / 2)` extra blocks, stage 1
    `aux * floor(b / 2)`, as the paper's ImageNet ResNets).

    The classifier of each branch is a Dense layer on the pooled features
    or, with `head_hidden_units`, a small MLP
    `Dense(h_1) - ReLU - Dropout - ... - Dense(num_classes)` (the published
    CIFAR VGG classifier).

    Args:
        stage: `keras.layers.Layer`. The template stage of branch 0 (it is
            not used itself; each branch gets a copy built from its config).
        num_branches: int. Number of branches `B` (>= 1).
        aux: int. Extra depth per branch level (>= 0).
        num_classes: int. Number of classes of each branch's classifier.
        depth_key: str. Name of the template's depth argument (an int, or a
            list of ints for a multi-stage template).
        head_hidden_units: list of int. Widths of the hidden Dense layers
            of each classifier (default: none, a single Dense layer).
        head_dropout: float. Dropout rate after each hidden layer of the
            classifier, in `[0, 1)`.
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
        ValueError: if `stage` has no integer (or list of integers)
            `depth_key` in its config, or on a bad `num_branches`, `aux`,
            `num_classes`, `head_hidden_units` or `head_dropout`.

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
        head_hidden_units=(),
        head_dropout: float = 0.0,
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
        if isinstance(base_depth, (list, tuple)) and base_depth and all(
            _is_int(d) for d in base_depth
        ):
            base_depth = [int(d) for d in base_depth]
        elif not _is_int(base_depth):
            raise ValueError(
                f"The config of `stage` ({type(stage).__name__}) must hold an "
                f"integer (or a non-empty list of integers) `{depth_key}` "
                f"(set `depth_key` to the name of its depth argument). "
                f"Received: {depth_key}={base_depth!r}"
            )
        else:
            base_depth = int(base_depth)
        self.base_depth = base_depth
        if isinstance(head_hidden_units, int) and not isinstance(
            head_hidden_units, bool
        ):
            head_hidden_units = [head_hidden_units]
        if not isinstance(head_hidden_units, (list, tuple)):
            raise TypeError(
                "`head_hidden_units` must be a list of integers. "
                f"Received: head_hidden_units={head_hidden_units!r}"
            )
        self.head_hidden_units = [
            _utils.check_int("head_hidden_units", u, 1) for u in head_hidden_units
        ]
        self.head_dropout = check_rate("head_dropout", head_dropout)
        # Only the template's config is kept: it is not a sub-layer itself.
        self._stage_serialized = keras.saving.serialize_keras_object(stage)
        self.stages = [
            self._make_stage(stage, b) for b in range(self.num_branches)
        ]
        self.heads = [self._make_head(b) for b in range(self.num_branches)]

    @property
    def depths(self):
        """The depth of every branch's stage, target first.

        A list of ints, or of lists of ints for a multi-stage template.
        """
        return [self.depth_of(b) for b in range(self.num_branches)]

    def depth_of(self, b: int):
        """The depth (int or per-stage list) of branch `b`'s stage."""
        if isinstance(self.base_depth, list):
            stages = len(self.base_depth)
            return [
                d + self.aux * ((b + stages - 1 - s) // stages)
                for s, d in enumerate(self.base_depth)
            ]
        return self.base_depth + b * self.aux

    def _make_head(self, b):
        name = f"branch_{b}_classifier"
        if not self.head_hidden_units:
            return keras.layers.Dense(
                self.num_classes, name=name, dtype=self.dtype_policy
            )
        layers = []
        for i, units in enumerate(self.head_hidden_units):
            layers.append(
                keras.layers.Dense(
                    units, activation="relu", name=f"hidden_{i}",
                    dtype=self.dtype_policy,
                )
            )
            if self.head_dropout:
                layers.append(
                    keras.layers.Dropout(
                        self.head_dropout, name=f"dropout_{i}",
                        dtype=self.dtype_policy,
                    )
                )
        layers.append(
            keras.layers.Dense(
                self.num_classes, name="logits", dtype=self.dtype_policy
            )
        )
        return keras.Sequential(layers, name=name)

    def _make_stage(self, template, b):
        config = dict(self._stage_config)
        config[self.depth_key] = self.depth_of(b)
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
        return features, self.heads[index](pooled, training=training)

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
                "head_hidden_units": list(self.head_hidden_units),
                "head_dropout": self.head_dropout,
            }
        )
        return config
