"""The rules every check of images and labels shares, written once.

One class id per image, `(N,)` or `(N, 1)`; integer values in
`[0, num_classes)`; channels-last images and the channels-first hint; no
NaN/inf pixels. The checks of the three callers (`pipeline_checks`,
`fit_checks`, `loss_checks`) apply them and word the errors their own way.
"""

from __future__ import annotations

import sys

import numpy as np


def looks_channels_first(shape, expected=None):
    """True if an image of `shape` looks like `(channels, height, width)`.

    That is `expected` `(H, W, C)` transposed to `(C, H, W)`, or a leading
    axis of 1 or 3 followed by `(H, W)` (any `(H, W)` if `expected` is None).
    """
    shape = tuple(shape)
    if len(shape) != 3:
        return False
    if expected is not None:
        h, w, c = expected
        if shape == (c, h, w):
            return True
    if shape[0] not in (1, 3):
        return False
    return expected is None or shape[1:] == tuple(expected[:2])


def nonfinite(x):
    """`(count, first index)` of the NaN/inf values of a float array."""
    finite = np.isfinite(x)
    if finite.all():
        return 0, None
    count = int(np.size(finite) - np.count_nonzero(finite))
    return count, tuple(int(i) for i in np.argwhere(~finite)[0])


def as_class_ids(y):
    """`(N, 1)` labels as `(N,)`; other shapes unchanged."""
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


def first_non_integer(labels):
    """Index of the first fractional or non-finite float label, or None."""
    if labels.dtype.kind != "f":
        return None
    bad = ~(np.isfinite(labels) & (labels == np.round(labels)))
    return int(np.argmax(bad)) if bad.any() else None


def out_of_range(labels, num_classes):
    """`(first index, count)` of labels outside `[0, num_classes)`, or None."""
    outside = (labels < 0) | (labels >= num_classes)
    if not outside.any():
        return None
    return int(np.argmax(outside)), int(outside.sum())


def imported_tensorflow():
    """The `tensorflow` module if it is imported already, else None."""
    return sys.modules.get("tensorflow")
