"""Shared pytest fixtures: deterministic seeds, and the `hypothesis` profiles.

The package is imported as installed (`pip install -e .`); pytest puts the
repository root on the import path itself (`tests/` is a package, rootdir
`pyproject.toml`), which is how `tests/benchmarks` imports `benchmarks`.
Shared test helpers live in `keras_ahbf.testing`, not here.

The property-based tests (`test_properties*.py`) run with the `ci` profile
of `hypothesis` by default: derandomised (the same examples in every run, so
a failure reproduces), a bounded number of examples, no deadline (the first
example of a test pays for the backend's start-up). `HYPOTHESIS_PROFILE=dev`
selects a randomised profile with more examples for local bug hunting; a
failure prints the `@reproduce_failure` blob to replay it.
"""

import os

import keras
import pytest

try:
    import hypothesis
except ImportError:  # The property-based tests skip themselves without it.
    hypothesis = None

if hypothesis is not None:
    _COMMON = dict(
        deadline=None,
        # No "explain" phase: it re-runs a failing example ~100 times.
        phases=[p for p in hypothesis.Phase if p is not hypothesis.Phase.explain],
        print_blob=True,
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.function_scoped_fixture,
        ],
    )
    hypothesis.settings.register_profile(
        "ci", derandomize=True, max_examples=40, database=None, **_COMMON
    )
    hypothesis.settings.register_profile("dev", max_examples=200, **_COMMON)
    hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


# The files that take longest (minutes each: subprocess runs, SIGKILL
# cases, multi-process distribution). Under pytest-xdist `--dist loadfile`
# a worker takes files in collection order, so a long file collected last
# leaves the other worker idle at the end; starting with the longest files
# (longest processing time first) balances the two workers. Serial runs
# keep pytest's order.
_LONGEST_FIRST = (
    "tests/test_sigkill.py",
    "tests/distribution/test_cli_distribute.py",
    "tests/examples/test_train_examples.py",
    "tests/cli/test_train.py",
    "tests/test_bad_input.py",
    "tests/benchmarks/test_benchmarks_smoke.py",
)


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {path: i for i, path in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
