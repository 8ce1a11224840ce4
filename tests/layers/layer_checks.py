"""Checks every keras_ahbf layer must pass (used by the layer tests)."""

import os

import keras
import numpy as np

from tests.conftest import to_numpy


def check_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    return clone


def check_saved_in_functional_model(tmp_path, make_outputs, inputs_np):
    """Wraps a layer in a functional model, saves it as .keras, reloads it
    and checks the reloaded model gives the same outputs."""
    inputs = [keras.Input(shape=x.shape[1:]) for x in inputs_np]
    outputs = make_outputs(inputs if len(inputs) > 1 else inputs[0])
    model = keras.Model(inputs, outputs)
    feed = inputs_np if len(inputs_np) > 1 else inputs_np[0]
    before = model.predict(feed, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = loaded.predict(feed, verbose=0)
    for a, b in zip(keras.tree.flatten(before), keras.tree.flatten(after)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-6)
    return loaded
