"""Coupled L2 weight decay as a loss term: the one implementation.

Both training models add it to their loss in `compute_loss`:
`OnlineKDModel(weight_decay=...)` and `keras_ahbf.models.BaselineModel`
(the target network trained alone, `training.build_baseline`). The weight
decay is an argument of the model, so it is saved with it.
"""

from keras import ops


def coupled_l2(variables, weight_decay):
    """PyTorch-style coupled L2: `0.5 * weight_decay * sum_w sum(w ** 2)`.

    Its gradient is `weight_decay * w` for every weight, what PyTorch's
    `SGD(weight_decay=...)` adds to the gradient before momentum (Keras'
    optimizer `weight_decay` argument is decoupled instead: it shrinks the
    weights directly). The squares are summed in float32, whatever the
    variables' dtype.

    Args:
        variables: list of variables or tensors (the model's
            `trainable_variables`: kernels, biases, BatchNorm scales and
            offsets).
        weight_decay: float (>= 0). The coefficient.

    Returns:
        A float32 scalar tensor.

    Example:

    ```python
    l2 = coupled_l2(model.trainable_variables, 5e-4)
    ```
    """
    squares = [ops.sum(ops.square(ops.cast(v, "float32"))) for v in variables]
    if not squares:
        return ops.zeros((), "float32")
    return 0.5 * weight_decay * ops.sum(ops.stack(squares))
