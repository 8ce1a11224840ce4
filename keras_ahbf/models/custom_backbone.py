"""Turn any Keras network into an AHBF-OKD model (`from_backbone`)."""

import difflib
import math
import re

import keras

from keras_ahbf.layers import _utils
from keras_ahbf.layers.callable_stage import CallableStage, warn_if_unregistered
from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.layers.repeated_block_stage import RepeatedBlockStage
from keras_ahbf.online_kd_model import OnlineKDModel


def _single(tensors, what):
    flat = keras.tree.flatten(tensors)
    if len(flat) != 1:
        raise ValueError(
            f"{what} must be a single tensor. Received: {len(flat)} tensors"
        )
    return flat[0]


def _shape(tensor):
    return tuple(tensor.shape)


def _feature_layer_names(backbone):
    names = []
    for layer in backbone.layers:
        try:
            output = layer.output
        except (AttributeError, ValueError):
            continue
        if not isinstance(output, (list, tuple)) and len(output.shape) == 4:
            names.append(layer.name)
    return names


def _get_split_layer(backbone, trunk_end):
    if not isinstance(trunk_end, str):
        raise TypeError(
            "`trunk_end` must be the name of a layer of `backbone`. "
            f"Received: trunk_end={trunk_end!r}"
        )
    names = [layer.name for layer in backbone.layers]
    if trunk_end not in names:
        candidates = _feature_layer_names(backbone)
        close = difflib.get_close_matches(trunk_end, candidates, n=5, cutoff=0.5)
        hint = close or candidates[-8:]
        raise ValueError(
            f"`backbone` ({backbone.name}) has no layer named {trunk_end!r}. "
            f"{'Close' if close else 'Some valid'} names of layers with a 4D "
            f"feature-map output: {hint} ({len(candidates)} in total; see "
            "`[l.name for l in backbone.layers]`). Received: "
            f"trunk_end={trunk_end!r}"
        )
    return backbone.get_layer(trunk_end)


def _layer_inputs(layer):
    try:
        return keras.tree.flatten(layer.input)
    except (AttributeError, ValueError):
        return []


def _consumers(tensor, layers):
    return [l for l in layers if any(x is tensor for x in _layer_inputs(l))]


def _extend_through_activations(tensor, layers):
    """Follows weight-free, shape-preserving single consumers (e.g. the ReLU
    after a residual addition) so that a block ends where the next begins."""
    while True:
        consumers = _consumers(tensor, layers)
        if len(consumers) != 1:
            return tensor
        (layer,) = consumers
        inputs = _layer_inputs(layer)
        try:
            output = layer.output
        except (AttributeError, ValueError):
            return tensor
        if (
            layer.weights
            or len(inputs) != 1
            or isinstance(output, (list, tuple))
            or _shape(output) != _shape(tensor)
        ):
            return tensor
        tensor = output


def _weight_count(model):
    return sum(math.prod(w.shape) for w in model.weights) if model is not None else 0


def _split_tail(split, block_in, block_out, output, tail_count):
    """Returns `(prefix, block, suffix)` models or raises `ValueError`."""
    try:
        prefix = None if block_in is split else keras.Model(split, block_in)
        block = keras.Model(block_in, block_out)
        suffix = None if block_out is output else keras.Model(block_out, output)
    except ValueError as error:
        raise ValueError(
            "The repeated block must be self-contained: the network after "
            "it may only use its output, and the block only its input. "
            f"({error})"
        ) from None
    counts = sum(_weight_count(m) for m in (prefix, block, suffix))
    if counts != tail_count:
        raise ValueError(
            "The repeated block is not self-contained: prefix, block and "
            f"suffix hold {counts} weights, the network after `trunk_end` "
            f"{tail_count} (a layer is shared or a connection skips the "
            "block)."
        )
    if _shape(block_in) != _shape(block_out):
        raise ValueError(
            "The repeated block must keep the shape of its input. Received: "
            f"input shape {_shape(block_in)}, output shape {_shape(block_out)}"
        )
    return prefix, block, suffix


def _derive_stage(backbone, split, repeat_block):
    output = _single(backbone.outputs, "The output of `backbone`")
    if output is split:
        raise ValueError(
            "`trunk_end` is the last layer of `backbone`: nothing is left "
            "to derive the branches from. Split earlier or pass `stage=`."
        )
    if len(output.shape) != 4:
        raise ValueError(
            "To derive the branches, `backbone` must end with a 4D feature "
            "map (e.g. keras.applications models with `include_top=False, "
            f"pooling=None`). Received: output shape {_shape(output)}"
        )
    try:
        tail = keras.Model(split, output)
    except ValueError:
        raise ValueError(
            "The network after `trunk_end` also uses tensors computed before "
            "it (a connection skips the split point); split at a stage "
            "boundary."
        ) from None
    tail_layers = [
        l for l in tail.layers if not isinstance(l, keras.layers.InputLayer)
    ]
    tail_count = _weight_count(tail)
    if repeat_block is not None:
        if (
            not isinstance(repeat_block, (list, tuple))
            or len(repeat_block) != 2
            or not all(isinstance(n, str) for n in repeat_block)
        ):
            raise TypeError(
                "`repeat_block` must be a pair of layer names "
                "(first layer of the block, last layer of the block). "
                f"Received: repeat_block={repeat_block!r}"
            )
        tail_names = [l.name for l in tail_layers]
        for n in repeat_block:
            if n not in tail_names:
                raise ValueError(
                    f"`repeat_block` names {n!r}, which is not a layer after "
                    f"`trunk_end`. Some valid names: {tail_names[:4]} ... "
                    f"{tail_names[-4:]}"
                )
        first, last = (backbone.get_layer(n) for n in repeat_block)
        block_in = _single(first.input, f"The input of layer {first.name!r}")
        block_out = _single(last.output, f"The output of layer {last.name!r}")
        return _split_tail(split, block_in, block_out, output, tail_count)
    # Automatic: the last residual block (an Add whose one input is the
    # block input) after the split.
    for layer in reversed(tail_layers):
        if not isinstance(layer, keras.layers.Add):
            continue
        block_out = _extend_through_activations(layer.output, tail_layers)
        for block_in in _layer_inputs(layer):
            if _shape(block_in) != _shape(layer.output):
                continue
            try:
                return _split_tail(split, block_in, block_out, output, tail_count)
            except ValueError:
                continue
    raise ValueError(
        "Could not find a repeatable residual block after `trunk_end` "
        f"({_trunk_end_name(split)}). Name one with "
        "`repeat_block=(first_layer, last_layer)` or pass `stage=`."
    )


def _trunk_end_name(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history else "?"


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
    image_input = _single(inputs, "The input of `backbone`")
    _utils.check_int("num_branches", num_branches, 2)
    _utils.check_int("aux", aux, 0)
    _utils.check_int("num_classes", num_classes, 1)
    layer = _get_split_layer(backbone, trunk_end)
    if isinstance(layer, keras.layers.InputLayer):
        raise ValueError(
            "`trunk_end` must not be the input layer: the trunk needs at "
            f"least one layer. Received: trunk_end={trunk_end!r}"
        )
    try:
        split = layer.output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"Layer {trunk_end!r} has no single output to split at ({error})."
        ) from None
    split = _single(split, f"The output of `trunk_end` layer {trunk_end!r}")
    if len(split.shape) != 4 or split.shape[-1] is None:
        raise ValueError(
            f"`trunk_end` layer {trunk_end!r} must output a 4D (batch, height, "
            f"width, channels) feature map. Received: shape {_shape(split)}"
        )

    parts = None
    if stage is None:
        if base_depth is not None:
            raise ValueError(
                "`base_depth` is only used with a callable `stage`; a derived "
                "stage starts at depth 1 (the block as in `backbone`)."
            )
        parts = _derive_stage(backbone, split, repeat_block)
        prefix, block, suffix = parts
        template = RepeatedBlockStage(block, depth=1, prefix=prefix, suffix=suffix)
        depth_key = "depth"
    elif isinstance(stage, keras.layers.Layer):
        template = stage
    elif callable(stage):
        if base_depth is None:
            raise ValueError(
                "With a function `stage`, pass `base_depth`, the depth of "
                "branch 0 (the target network)."
            )
        warn_if_unregistered(stage)
        template = CallableStage(stage, depth=base_depth)
        depth_key = "depth"
    else:
        raise TypeError(
            "`stage` must be None (derive it from `backbone`), a template "
            "layer or a function `stage_fn(depth) -> layer`. "
            f"Received: stage={stage!r}"
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
    _check_branch_shapes(branches, (None,) + _shape(split)[1:])
    model = OnlineKDModel(
        trunk, branches, fusion, name=name or _default_name(backbone), **kd_options
    )
    if parts is not None and copy_weights:
        stage0 = branches.stages[0]
        for original, copy_ in zip(
            parts, (stage0.prefix_model, stage0.blocks[0], stage0.suffix_model)
        ):
            if original is not None:
                copy_.set_weights(original.get_weights())
    return model
