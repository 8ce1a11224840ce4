"""Log values as Python floats (shared by the callbacks; not public API)."""

import numpy as np
from keras import ops


def as_float(value):
    """`value` (a scalar tensor, array or number) as a float, or None.

    Returns None for anything that is not a single number, so such log
    entries are left out of the per-epoch rows.
    """
    try:
        return float(np.asarray(ops.convert_to_numpy(value)).reshape(()))
    except Exception:  # noqa: BLE001 - not a scalar: not logged.
        return None
