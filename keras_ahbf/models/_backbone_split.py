"""Splitting a functional Keras network for `from_backbone` (not public API).

`from_backbone` cuts a backbone after its `trunk_end` layer. This module
holds the graph work: finding the split layer and its output tensor, and
deriving the branch stage from the layers after it (a prefix network, the
repeated residual block and a suffix network, see `RepeatedBlockStage`).
"""

import difflib
import math

import keras


def single(tensors, what):
    """The one tensor of `tensors`; `what` names them in the error."""
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


def split_layer(backbone, trunk_end):
    """The layer of `backbone` named `trunk_end` (close names on a typo)."""
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


def trunk_output(backbone, trunk_end):
    """The output tensor of layer `trunk_end`: where the trunk ends.

    Raises:
        TypeError: if `trunk_end` is not a string.
        ValueError: if `backbone` has no such layer (the message lists
            valid names), it is the input layer, or its output is not one
            4D feature map with known channels.
    """
    layer = split_layer(backbone, trunk_end)
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
    split = single(split, f"The output of `trunk_end` layer {trunk_end!r}")
    if len(split.shape) != 4 or split.shape[-1] is None:
        raise ValueError(
            f"`trunk_end` layer {trunk_end!r} must output a 4D (batch, height, "
            f"width, channels) feature map. Received: shape {_shape(split)}"
        )
    return split


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


def derive_stage(backbone, split, repeat_block):
    output = single(backbone.outputs, "The output of `backbone`")
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
        block_in = single(first.input, f"The input of layer {first.name!r}")
        block_out = single(last.output, f"The output of layer {last.name!r}")
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
