"""Gradients on the current backend, for tests that check them against NumPy.

Keras has no backend-independent gradient function, so this calls the
backend's own (TensorFlow's `GradientTape`, `jax.grad`,
`torch.autograd.grad`). It lives here because backend imports are confined
to `keras_ahbf/data/` and `keras_ahbf/distribution/` (the per-backend
engines); the backend is imported inside the function.
`keras_ahbf.testing.test_utils.gradients` is the name tests use.
"""

from __future__ import annotations

__all__ = ["gradients"]


def gradients(fn, inputs):
    """`d fn(*inputs) / d inputs` on the current backend.

    Args:
        fn: callable. Takes one tensor per input, returns a scalar tensor.
        inputs: list of NumPy arrays.

    Returns:
        A list of NumPy arrays, the gradient for each input (zeros where
        `fn` does not depend on it).

    Raises:
        NotImplementedError: on another backend.
    """
    import keras
    import numpy as np

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
