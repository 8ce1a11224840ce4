"""Argument checks shared by the model builders (not public API).

Every builder checks its branch arguments and its input shape the same
way; the checks live here once. Each error is one line naming the argument
and its value (`Received: name=value`).
"""

import keras

from keras_ahbf.layers import _utils


def check_branch_arguments(num_branches, aux, num_classes) -> None:
    """Checks the arguments every AHBF-OKD builder takes.

    Args:
        num_branches: int. Number of branches (>= 2: a target and at least
            one deeper branch to fuse with).
        aux: int. Extra depth per branch level (>= 0).
        num_classes: int. Number of classes (>= 1).

    Raises:
        TypeError: if an argument is not an int.
        ValueError: if an argument is below its minimum.
    """
    _utils.check_int("num_branches", num_branches, 2)
    _utils.check_int("aux", aux, 0)
    _utils.check_int("num_classes", num_classes, 1)


def check_input_shape(input_shape, min_size: int = 1, network=None, why=None):
    """Returns a channels-last `(height, width, channels)` input shape.

    Args:
        input_shape: the builder's `input_shape` argument.
        min_size: int. Smallest height and width the network accepts.
        network: str. The network, for the message on a too small image
            (e.g. `"A CIFAR VGG"`).
        why: str or None. Why it needs `min_size` pixels (e.g. `"halves
            the image five times"`).

    Returns:
        `input_shape` as a tuple.

    Raises:
        ValueError: if `input_shape` is not three positive ints, looks
            channels-first, is smaller than `min_size`, or Keras is set to
            `channels_first`.
    """
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 3
        or not all(isinstance(d, int) and d > 0 for d in input_shape)
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels) with positive "
            f"integers. Received: input_shape={input_shape!r}"
        )
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras_ahbf models are channels-last. Received: "
            f"keras.config.image_data_format()={keras.config.image_data_format()!r}"
        )
    height, width, channels = input_shape
    if channels > 4 and height <= 4:
        raise ValueError(
            "`input_shape` looks channels-first; keras_ahbf expects "
            f"(height, width, channels). Received: input_shape={tuple(input_shape)}"
        )
    if height < min_size or width < min_size:
        needs = f"{why} and needs" if why else "needs images of"
        raise ValueError(
            f"{network} {needs} at least {min_size}x{min_size} pixels. "
            f"Received: input_shape={tuple(input_shape)}"
        )
    return tuple(input_shape)
