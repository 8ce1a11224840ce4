"""Shared pytest fixtures: deterministic seeds.

The package is imported as installed (`pip install -e .`); pytest puts the
repository root on the import path itself (`tests/` is a package, rootdir
`pyproject.toml`), which is how `tests/benchmarks` imports `benchmarks`.
Shared test helpers live in `keras_ahbf.testing`, not here.
"""

import keras
import pytest


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()
