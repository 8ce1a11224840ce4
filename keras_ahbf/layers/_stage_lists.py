"""Argument helpers for layers that hold several consecutive stages."""

import numbers

from keras_ahbf.layers import _utils


def int_list(name, value, minimum, length=None):
    """Returns `value` (an int or a list of ints) as a list of ints.

    An int is repeated `length` times (or made a 1-element list).
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [value] * (length or 1)
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError(
            f"`{name}` must be an integer or a non-empty list of integers. "
            f"Received: {name}={value!r}"
        )
    values = [_utils.check_int(name, v, minimum) for v in value]
    if length is not None and len(values) != length:
        raise ValueError(
            f"`{name}` must have one entry per stage ({length}). "
            f"Received: {name}={list(value)!r}"
        )
    return values
