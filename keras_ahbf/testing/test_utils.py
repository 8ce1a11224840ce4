"""Small helpers of the keras_ahbf tests: tensors to NumPy, parameter
counts, gradients on the current backend and a tiny learnable image task."""

import keras
import numpy as np


def to_numpy(x) -> np.ndarray:
    """`x` (a tensor of any backend, or an array) as a NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def trainable_count(model_or_layer) -> int:
    """Trainable parameters counted as PyTorch does (no BN statistics)."""
    return int(
        sum(np.prod(v.shape) for v in model_or_layer.trainable_variables)
    )


def gradients(fn, inputs):
    """`d fn(*inputs) / d inputs` on the current backend, as NumPy arrays.

    `keras_ahbf.distribution.gradients.gradients`, where the backend imports
    are allowed; see it for the arguments.
    """
    from keras_ahbf.distribution.gradients import gradients as backend_gradients

    return backend_gradients(fn, inputs)


def learnable_images(n=192, size=8, num_classes=4, seed=0):
    """A small synthetic image task a tiny ResNet learns in a few epochs.

    Each class brightens one quadrant of Gaussian-noise images.

    Returns:
        `(x, y)`: float32 images `(n, size, size, 3)` and int32 labels.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    x = rng.normal(size=(n, size, size, 3)).astype("float32") * 0.5
    half = size // 2
    for k in range(num_classes):
        r, c = divmod(k % 4, 2)
        x[y == k, r * half : (r + 1) * half, c * half : (c + 1) * half, :] += 1.5
    return x, y.astype("int32")
