"""Argument validation: the one set of checks used by layers, models, the
training configuration and the command line.

Every check raises `TypeError` for a value of the wrong type and
`ValueError` for a value out of range, naming the argument and the value
received (`Received: lr=nan`). The module imports nothing heavy, so the
command line can validate a configuration before Keras or a backend is
loaded.
"""

import math
import numbers


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """Returns `value` as an int; raises unless it is an integer in range.

    Bools are rejected (`True` is an `int` in Python but never a count).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}. Received: {name}={value}")
    return int(value)


def check_float(
    name: str,
    value,
    minimum: float | None = None,
    exclusive: bool = False,
    maximum: float | None = None,
    exclusive_maximum: bool = False,
) -> float:
    """Returns `value` as a float; raises unless it is a finite number in range.

    NaN and infinities are always refused: no option of the package means
    anything at NaN or infinity, and accepting them only postpones the
    failure to the middle of training.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # An int beyond the float range.
        finite = False
    if not finite:
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value}")
    if minimum is not None and (value < minimum or (exclusive and value == minimum)):
        op = ">" if exclusive else ">="
        raise ValueError(f"`{name}` must be {op} {minimum}. Received: {name}={value}")
    if maximum is not None and (
        value > maximum or (exclusive_maximum and value == maximum)
    ):
        op = "<" if exclusive_maximum else "<="
        raise ValueError(f"`{name}` must be {op} {maximum}. Received: {name}={value}")
    return float(value)


def check_bool(name: str, value) -> bool:
    """Returns `value`; raises `TypeError` unless it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_choice(name: str, value, choices) -> str:
    """Returns `value`; raises `ValueError` unless it is one of `choices`."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}"
        )
    return value
