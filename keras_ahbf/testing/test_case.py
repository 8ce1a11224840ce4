"""The checks every keras_ahbf layer and model builder must pass.

`run_layer_test` is the one layer test (in the style of keras-hub's
`TestCase.run_layer_test`): it builds and calls a layer, round-trips its
config, saves it inside a functional model as `.keras` and reloads it with
identical outputs, and runs it under the `mixed_float16` and
`mixed_bfloat16` policies. The model checks (`build_uninitialized`,
`check_fit_target_and_round_trip`, ...) are shared by the builder tests.

Example:

```python
from keras_ahbf.layers import VGGStage
from keras_ahbf.testing.test_case import run_layer_test

def test_vgg_stage():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    run_layer_test(VGGStage, {"filters": 8, "num_convs": 2}, x,
                   expected_output_shape=(2, 3, 3, 8))
```
"""

import os
import tempfile

import keras
import numpy as np

from keras_ahbf.testing.test_utils import to_numpy

MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")


def _is_shape(value) -> bool:
    return isinstance(value, (list, tuple)) and all(
        d is None or isinstance(d, (int, np.integer)) for d in value
    )


def flat_shapes(structure) -> list:
    """The shapes in a nest of shapes (tuples of ints are leaves)."""
    if _is_shape(structure):
        return [tuple(structure)]
    if isinstance(structure, dict):
        structure = [structure[k] for k in sorted(structure)]
    return [s for item in structure for s in flat_shapes(item)]


def _inputs_like(input_data):
    """`keras.Input`s matching an array or a list of arrays."""
    if isinstance(input_data, (list, tuple)):
        return [keras.Input(shape=x.shape[1:], dtype=x.dtype) for x in input_data]
    return keras.Input(shape=input_data.shape[1:], dtype=input_data.dtype)


def check_config_round_trip(layer):
    """`from_config(get_config())` gives the same config, also through
    `keras.saving.serialize_keras_object` (so the class is registered).

    Returns:
        The layer rebuilt from its config.
    """
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is type(layer)
    assert revived.get_config() == config
    return clone


def check_saved_in_functional_model(make_outputs, input_data, tmp_path=None):
    """Saves a functional model around a layer as `.keras` and reloads it.

    Args:
        make_outputs: callable, or a layer. Maps the `keras.Input`(s) to the
            model outputs.
        input_data: array or list of arrays. The model inputs.
        tmp_path: directory for the file (default: a temporary directory).

    Returns:
        The reloaded model, after checking it has the same weights and
        gives the same outputs as the saved one.
    """
    inputs = _inputs_like(input_data)
    outputs = keras.tree.flatten(make_outputs(inputs))
    model = keras.Model(inputs, outputs)
    before = model.predict(input_data, verbose=0)
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(tmp_path or scratch, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    after = loaded.predict(input_data, verbose=0)
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(keras.tree.flatten(before), keras.tree.flatten(after)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)
    return loaded


def check_mixed_precision(layer_cls, init_kwargs, input_data, call_kwargs=None,
                          policies=MIXED_PRECISION_POLICIES, global_policy=False):
    """Runs the layer under each mixed dtype policy.

    Its floating outputs must have the policy's compute dtype (float16 or
    bfloat16), its floating variables the variable dtype (float32), and a
    functional model around it must predict finite values on
    `input_data` (one compiled call: the backend has kernels for the
    compute dtype).

    With `global_policy=True` the policy is also set globally while the
    layer is built (for layers whose sub-layers come from user code, such
    as `CallableStage`); the previous global policy is restored.
    """
    for name in policies:
        previous = keras.config.dtype_policy()
        if global_policy:
            keras.config.set_dtype_policy(name)
        try:
            _check_policy(name, layer_cls, init_kwargs, input_data, call_kwargs)
        finally:
            keras.config.set_dtype_policy(previous)


def _check_policy(name, layer_cls, init_kwargs, input_data, call_kwargs):
    policy = keras.dtype_policies.get(name)
    inputs = _inputs_like(input_data)
    layer = layer_cls(**init_kwargs, dtype=name)
    outputs = keras.tree.flatten(layer(inputs, **(call_kwargs or {})))
    for output in outputs:
        dtype = keras.backend.standardize_dtype(output.dtype)
        if "float" in dtype:
            assert dtype == policy.compute_dtype, (name, dtype)
    for variable in layer.weights:
        dtype = keras.backend.standardize_dtype(variable.dtype)
        if "float" in dtype:
            assert dtype == policy.variable_dtype, (name, variable.path, dtype)
    values = keras.Model(inputs, outputs).predict(input_data, verbose=0)
    for value in keras.tree.flatten(values):
        assert np.all(np.isfinite(np.asarray(value, dtype="float32"))), name


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    *,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    call_kwargs=None,
    make_outputs=None,
    run_saving_check=True,
    mixed_precision="layer",
):
    """The shared test of a keras_ahbf layer.

    1. Builds and calls `layer_cls(**init_kwargs)` on `input_data`; checks
       the output shapes against `expected_output_shape` and
       `compute_output_shape`, and the weight counts.
    2. Round-trips the config (`check_config_round_trip`).
    3. Saves a functional model holding a new layer as `.keras`, reloads it
       and compares outputs (`check_saved_in_functional_model`).
    4. Runs the layer under `mixed_float16` and `mixed_bfloat16`
       (`check_mixed_precision`).

    Args:
        layer_cls: the layer class.
        init_kwargs: dict. Constructor arguments (without `dtype`).
        input_data: array or list of arrays (with a batch axis).
        expected_output_shape: shape or nest of shapes of the outputs.
        expected_num_trainable_weights: int. Number of trainable variables.
        expected_num_non_trainable_weights: int. Number of non-trainable
            variables (e.g. BatchNorm statistics).
        call_kwargs: dict. Extra call arguments (e.g. `training`).
        make_outputs: callable or None. Maps a new layer's outputs to the
            functional model's outputs in the saving check (default: all
            of them).
        run_saving_check: bool. Whether to run step 3.
        mixed_precision: `"layer"` (step 4 with the policy passed as the
            layer's `dtype`), `"global"` (also set as the global policy
            while the layer is built) or `None` (no step 4).

    Returns:
        The float32 layer of step 1 (built), for further checks.
    """
    call_kwargs = dict(call_kwargs or {})
    layer = layer_cls(**init_kwargs)
    outputs = layer(input_data, **call_kwargs)
    assert layer.built
    shapes = [tuple(o.shape) for o in keras.tree.flatten(outputs)]
    if expected_output_shape is not None:
        assert shapes == flat_shapes(expected_output_shape), shapes
    if isinstance(input_data, (list, tuple)):
        input_shape = [tuple(x.shape) for x in input_data]
    else:
        input_shape = tuple(input_data.shape)
    computed = flat_shapes(layer.compute_output_shape(input_shape))
    assert computed == shapes, (computed, shapes)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights

    check_config_round_trip(layer)

    if run_saving_check:
        def build(inputs):
            new_outputs = layer_cls(**init_kwargs)(inputs, **call_kwargs)
            return make_outputs(new_outputs) if make_outputs else new_outputs

        check_saved_in_functional_model(build, input_data)

    if mixed_precision not in ("layer", "global", None):
        raise ValueError(
            "`mixed_precision` must be 'layer', 'global' or None. "
            f"Received: mixed_precision={mixed_precision!r}"
        )
    if mixed_precision is not None:
        check_mixed_precision(
            layer_cls, init_kwargs, input_data, call_kwargs,
            global_policy=mixed_precision == "global",
        )
    return layer


# Model builders.


def build_uninitialized(builder, *args, **kwargs):
    """Builds a model without initialising its weights.

    Variables created in a `keras.StatelessScope` get their shapes but no
    values, so parameter counts of big models (and building them at their
    full input size) cost no random-number generation, which is slow on
    JAX. Only shapes may be used: do not call the model.
    """
    with keras.StatelessScope(initialize_variables=False):
        return builder(*args, **kwargs)


def target_count(model) -> int:
    """Trainable parameters of trunk + branch 0 (= `target_model()`'s, as
    `check_fit_target_and_round_trip` checks), without building the target
    model (which fails for uninitialised weights on PyTorch)."""
    variables = (
        model.trunk.trainable_variables
        + model.branches.stages[0].trainable_variables
        + model.branches.heads[0].trainable_variables
    )
    return int(sum(np.prod(v.shape) for v in variables))


def tiny_data(model, n=4, num_classes=None, seed=0):
    """A batch of random images at the model's input size and labels."""
    shape = model._input_shape_for_build[1:]
    rng = np.random.default_rng(seed)
    num_classes = num_classes or model.branches.num_classes
    x = rng.normal(size=(n,) + tuple(shape)).astype("float32")
    y = (np.arange(n) % num_classes).astype("int32")
    return x, y


def check_fit_target_and_round_trip(model, tmp_path, n=2):
    """One fit step on tiny data; the target model gives the model's
    inference logits; the .keras round trip keeps weights and outputs."""
    x, y = tiny_data(model, n)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    before = [to_numpy(v).copy() for v in model.trainable_variables[:3]]
    history = model.fit(x, y, batch_size=n, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [to_numpy(v) for v in model.trainable_variables[:3]]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))

    # Eager calls (no extra XLA compilations on JAX).
    logits = to_numpy(model(x, training=False))
    assert logits.shape == (n, model.branches.num_classes)
    assert np.all(np.isfinite(logits))
    target = model.target_model()
    np.testing.assert_allclose(
        to_numpy(target(x, training=False)), logits, rtol=1e-5, atol=1e-5
    )
    # The target is trunk + branch 0 only: no fusion or deeper branch weights.
    branch0 = model.trunk.trainable_variables + (
        model.branches.stages[0].trainable_variables
        + model.branches.heads[0].trainable_variables
    )
    assert len(target.trainable_variables) == len(branch0)

    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    np.testing.assert_allclose(
        to_numpy(loaded(x, training=False)), logits, rtol=1e-5, atol=1e-5
    )
    assert len(loaded.fusions) == model.num_branches - 1
    return loaded
