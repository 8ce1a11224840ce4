"""Argument checks shared by several layers (not public API).

The single-value checks (`check_int`, `check_float`, ...) are in
`keras_ahbf.layers._utils`; these helpers build on them for the argument
kinds several layers repeat: flags, rates in `[0, 1)`, the residual block
kind and per-stage lists of a multi-stage layer. Every error is one line
naming the argument and its value (`Received: name=value`).
"""

import numbers

from keras_ahbf.layers import _utils


def check_bool(name: str, value) -> bool:
    """Returns `value` unless it is not a bool (`1`, `"yes"` are rejected).

    Raises:
        TypeError: if `value` is not a bool.
    """
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_rate(name: str, value) -> float:
    """Returns `value` as a float in `[0, 1)` (a dropout rate).

    Raises:
        TypeError: if `value` is not a number.
        ValueError: if `value` is outside `[0, 1)`.
    """
    rate = _utils.check_float(name, value, 0.0)
    if rate >= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")
    return rate


def check_choice(name: str, value, choices):
    """Returns `value` if it is one of `choices` (listed sorted if not).

    Raises:
        ValueError: if `value` is not in `choices`.
    """
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {sorted(choices)}. Received: {name}={value!r}"
        )
    return value


def int_list(name: str, value, minimum: int, length=None) -> list:
    """Returns `value` (an int or a list of ints) as a list of ints.

    An int is repeated `length` times (or made a 1-element list). Used by
    the multi-stage layers for their per-stage arguments.

    Raises:
        TypeError: if `value` is neither an int nor a non-empty list of ints.
        ValueError: on an entry below `minimum`, or a list whose length is not
            `length`.
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
