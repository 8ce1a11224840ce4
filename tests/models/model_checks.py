"""Checks every AHBF-OKD model builder must pass (used by the model tests)."""

import os

import keras
import numpy as np

from tests.conftest import to_numpy


def build_uninitialized(builder, *args, **kwargs):
    """Builds a model without initialising its weights.

    Variables created in a `keras.StatelessScope` get their shapes but no
    values, so parameter counts of big models (and building them at their
    full input size) cost no random-number generation, which is slow on
    JAX. Only shapes may be used: do not call the model.
    """
    with keras.StatelessScope(initialize_variables=False):
        return builder(*args, **kwargs)


def target_count(model):
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
