"""Fixtures of the callback tests: a small compiled model and its data."""

import keras
import pytest

from keras_ahbf import training
from keras_ahbf.testing.test_utils import learnable_images

# Fastest for a few tiny steps: eager TensorFlow (no tracing), jitted JAX
# (its eager mode is slow), plain PyTorch.
FAST = dict(
    run_eagerly=keras.backend.backend() == "tensorflow",
    jit_compile=keras.backend.backend() == "jax",
)


@pytest.fixture
def make_model():
    """`make_model(num_branches=3, rampup=4)`: a compiled 8x8 ResNet-8 OnlineKDModel."""

    def make(num_branches=3, rampup=4):
        config = training.resolve_config(
            "cifar10", backbone="resnet8", num_branches=num_branches, aux=1,
            epochs=4, rampup_epochs=rampup, batch_size=32,
        )
        model = training.build_model(config, num_classes=4, input_shape=(8, 8, 3))
        return training.compile_model(model, config, steps=2, **FAST)

    return make


@pytest.fixture(scope="package")
def data():
    return learnable_images(n=64, size=8, num_classes=4)
