"""Shared pytest fixtures: deterministic seeds and backend helpers."""

import os
import sys

import keras
import numpy as np
import pytest

# Allow `pytest` from a source checkout without installing the package.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def gradients(fn, inputs):
    """d fn(*inputs) / d inputs on the current backend (inputs: numpy)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variables = [tf.Variable(x) for x in inputs]
        with tf.GradientTape() as tape:
            out = fn(*variables)
        grads = tape.gradient(out, variables)
        return [
            np.zeros_like(x) if g is None else g.numpy()
            for x, g in zip(inputs, grads)
        ]
    if backend == "jax":
        import jax

        grads = jax.grad(lambda *a: fn(*a), argnums=tuple(range(len(inputs))))(
            *[jax.numpy.asarray(x) for x in inputs]
        )
        return [np.asarray(g) for g in grads]
    if backend == "torch":
        import torch

        tensors = [torch.tensor(x, requires_grad=True) for x in inputs]
        out = fn(*tensors)
        grads = torch.autograd.grad(out, tensors, allow_unused=True)
        return [
            np.zeros_like(x) if g is None else g.detach().cpu().numpy()
            for x, g in zip(inputs, grads)
        ]
    raise NotImplementedError(backend)


def trainable_count(model_or_layer):
    """Trainable parameters counted as PyTorch does (no BN statistics)."""
    return int(
        sum(np.prod(v.shape) for v in model_or_layer.trainable_variables)
    )


def learnable_images(n=192, size=8, num_classes=4, seed=0):
    """A small synthetic image task a tiny ResNet learns in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    x = rng.normal(size=(n, size, size, 3)).astype("float32") * 0.5
    half = size // 2
    for k in range(num_classes):
        # Each class brightens one quadrant.
        r, c = divmod(k % 4, 2)
        x[y == k, r * half : (r + 1) * half, c * half : (c + 1) * half, :] += 1.5
    return x, y.astype("int32")
