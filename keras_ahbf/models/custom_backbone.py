"""Turn any Keras network into an AHBF-OKD model (`from_backbone`)."""

import re

import keras

from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.stages.callable_stage import CallableStage
from keras_ahbf.layers.stages.callable_stage import warn_if_unregistered
from keras_ahbf.layers.stages.repeated_block_stage import RepeatedBlockStage
from keras_ahbf.models import _backbone_split
from keras_ahbf.models._arguments import check_branch_arguments
from keras_ahbf.online_kd_model import OnlineKDModel


def _default_name(backbone):
    # Variable paths start with the model name; PyTorch rejects "." in them.
    return "ahbf_" + re.sub(r"[^0-9A-Za-z_]", "_", backbone.name)


def _check_branch_shapes(branches, trunk_shape):
    try:
        if not branches.built:
            branches.build(trunk_shape)
        feats, _ = branches.compute_output_shape(trunk_shape)
    except Exception as error:
        raise ValueError(
            "Could not build the branch stages on the trunk output of shape "
            f"{trunk_shape}: {error}"
        ) from error
    shapes = [tuple(f) for f in feats]
    for b, shape in enumerate(shapes):
        if len(shape) != 4 or shape[-1] is None:
            raise ValueError(
                "Every branch stage must output a 4D (batch, height, width, "
                f"channels) feature map with known channels. Branch {b} "
                f"(depth {branches.depths[b]}) outputs shape {shape}."
            )
    spatial = {s[1:3] for s in shapes}
    if len(spatial) > 1:
        raise ValueError(
            "The branch outputs do not fit together: the fusion modules need "
            "feature maps of the same height and width, but the branches "
            "(depths " + ", ".join(str(d) for d in branches.depths) + ") "
            f"output shapes {shapes}. Make the extra depth keep the spatial "
            "size (stride 1 in the added blocks)."
        )
    return shapes


def _image_input(backbone):
    """The one image input of a functional `backbone`."""
    if not isinstance(backbone, keras.Model):
        raise TypeError(
            f"`backbone` must be a `keras.Model`. Received: backbone={backbone!r}"
        )
    try:
        inputs = backbone.inputs
        outputs = backbone.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise TypeError(
            "`backbone` must be a functional model (or a Sequential model "
            "starting with `keras.Input`), so that it can be split at a layer."
        )
    return _backbone_split.single(inputs, "The input of `backbone`")


def _template_stage(backbone, split, stage, base_depth, depth_key, repeat_block):
    """The template of the branch stages, from the `stage` argument.

    Returns:
        `(template, depth_key, parts)`: the template layer, the name of its
        depth argument and, for a stage derived from `backbone`, its
        `(prefix, block, suffix)` models (else `None`).
    """
    if stage is None:
        if base_depth is not None:
            raise ValueError(
                "`base_depth` is only used with a callable `stage`; a derived "
                "stage starts at depth 1 (the block as in `backbone`)."
            )
        parts = _backbone_split.derive_stage(backbone, split, repeat_block)
        prefix, block, suffix = parts
        template = RepeatedBlockStage(block, depth=1, prefix=prefix, suffix=suffix)
        return template, "depth", parts
    if isinstance(stage, keras.layers.Layer):
        return stage, depth_key, None
    if callable(stage):
        if base_depth is None:
            raise ValueError(
                "With a function `stage`, pass `base_depth`, the depth of "
                "branch 0 (the target network)."
            )
        warn_if_unregistered(stage, stacklevel=4)
        return CallableStage(stage, depth=base_depth), "depth", None
    raise TypeError(
        "`stage` must be None (derive it from `backbone`), a template "
        "layer or a function `stage_fn(depth) -> layer`. "
        f"Received: stage={stage!r}"
    )


def _copy_derived_weights(parts, stage):
    """Starts a derived branch-0 stage from the backbone's weights."""
    copies = (stage.prefix_model, stage.blocks[0], stage.suffix_model)
    for original, copy_ in zip(parts, copies):
        if original is not None:
            copy_.set_weights(original.get_weights())


def from_backbone(
    backbone,
    trunk_end: str,
    stage=None,
    *,
    num_classes: int,
    num_branches: int = 4,
    aux: int = 1,
    fusion="conv",
    base_depth=None,
    depth_key: str = "depth",
    repeat_block=None,
    head_hidden_units=(),
    head_dropout: float = 0.0,
    copy_weights: bool = True,
    name=None,
    **kd_options,
):
    """Builds an AHBF-OKD `OnlineKDModel` from any functional Keras network.

    The network is split after the layer `trunk_end`: everything up to
    and including it becomes the shared trunk (it shares its layers and
    weights with `backbone`); `num_branches` branches of increasing depth
    follow, each ending with global average pooling and a classifier, and
    `num_branches - 1` `AdaptiveFusion` modules fuse them.

    The branch stage of depth `d` comes from one of:

    - `stage=None` (derived): the part of `backbone` after `trunk_end`,
      with its last residual block (or the block named by `repeat_block`)
      repeated. Branch 0 is exactly that part (`depth 1`, weights copied
      from `backbone` when `copy_weights`), branch `b` repeats the block
      `1 + b * aux` times (fresh weights). So `target_model()` is
      `backbone` plus a new classifier. `backbone` must end with a 4D
      feature map (e.g. `keras.applications.*(include_top=False)`).
    - `stage=` a template layer whose config holds an integer depth
      argument named `depth_key` (e.g. `keras_ahbf.layers.ResidualStage`
      or your own registered layer): the branches are copies of it with
      depth `depth_0 + b * aux`; the layers of `backbone` after
      `trunk_end` are not used.
    - `stage=` a function `stage_fn(depth) -> keras.layers.Layer` with
      `base_depth` the depth of branch 0 (wrapped in `CallableStage`;
      register it with `@keras.saving.register_keras_serializable()` to
      reload saved models).

    All branch stages must output feature maps of the same height and width
    (the channel counts may differ); this is checked here, before training.

    Args:
        backbone: `keras.Model`. A functional (or built Sequential) network
            with one image input.
        trunk_end: str. Name of the last layer of the shared trunk (a layer
            of `backbone.layers` with a 4D output), e.g. `"block_12_add"`
            for `keras.applications.MobileNetV2`.
        stage: None, `keras.layers.Layer` or callable. See above.
        num_classes: int. Number of classes (>= 1).
        num_branches: int. Number of branches `B` (>= 2).
        aux: int. Extra depth per branch level (>= 0).
        fusion: str or list. `"conv"`, `"se"`, `"cbam"`, `"nonlocal"` or a
            list of `AdaptiveFusion` layers.
        base_depth: int. Depth of branch 0 (only with a callable `stage`).
        depth_key: str. Name of the depth argument of a template `stage`.
        repeat_block: pair of str or None. `(first_layer, last_layer)` of
            the block to repeat when deriving the stage (default: the last
            residual block after `trunk_end`).
        head_hidden_units: list of int. Hidden widths of the classifiers
            (default: a single Dense layer).
        head_dropout: float. Dropout between the classifier's layers.
        copy_weights: bool. With a derived stage, start branch 0 from
            `backbone`'s weights (e.g. pretrained ones).
        name: str. Model name (default `"ahbf_<backbone name>"`).
        **kd_options: `OnlineKDModel` options (`temperature`, `kd_weight`,
            `lambda_ta`, `lambda_branch`, `rampup_epochs`,
            `stop_teacher_gradient`, `weight_decay`).

    Returns:
        An uncompiled `OnlineKDModel` (built when `backbone`'s input shape
        is fully known).

    Raises:
        ValueError: if `trunk_end` is not a layer of `backbone` (the
            message lists valid names) or does not output a 4D feature map,
            no repeatable block can be derived, the branch stages output
            feature maps of different heights / widths or ranks, or on bad
            sizes.
        TypeError: on a `backbone`, `stage` or `repeat_block` of the wrong
            type.

    Example:

    ```python
    backbone = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), include_top=False, alpha=0.35)
    model = keras_ahbf.models.from_backbone(
        backbone, "block_12_add", num_classes=10, num_branches=3, aux=1)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    ```
    """
    image_input = _image_input(backbone)
    check_branch_arguments(num_branches, aux, num_classes)
    split = _backbone_split.trunk_output(backbone, trunk_end)
    template, depth_key, parts = _template_stage(
        backbone, split, stage, base_depth, depth_key, repeat_block
    )
    trunk = keras.Model(image_input, split, name="trunk")
    branches = HierarchicalBranches(
        template,
        num_branches=num_branches,
        aux=aux,
        num_classes=num_classes,
        depth_key=depth_key,
        head_hidden_units=head_hidden_units,
        head_dropout=head_dropout,
        name="branches",
    )
    _check_branch_shapes(branches, (None,) + tuple(split.shape)[1:])
    model = OnlineKDModel(
        trunk, branches, fusion, name=name or _default_name(backbone), **kd_options
    )
    if parts is not None and copy_weights:
        _copy_derived_weights(parts, branches.stages[0])
    return model
