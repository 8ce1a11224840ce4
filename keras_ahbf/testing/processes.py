"""Subprocess helpers of the tests: a backend fixes its devices when it
starts, so every multi-device run is a fresh process, and so is every check
of what an import loads."""

import os
import socket
import subprocess


def free_ports(n):
    """`n` TCP ports of localhost that are free right now."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def communicate(proc, timeout=600):
    """`(returncode, stdout, stderr)` of `proc`; fails the test on a hang."""
    import pytest

    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish in {timeout} s:\n{err[-3000:]}")
    return proc.returncode, out, err


def repository_env(root, **extra):
    """`os.environ` with `root` first on `PYTHONPATH`, without `TF_CONFIG`
    and `XLA_FLAGS` (a child sets its own), updated with `extra`."""
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def modules_imported_by(statement, modules=("keras", "tensorflow", "jax", "torch")):
    """Which of `modules` a fresh Python process has imported after `statement`.

    Args:
        statement: str. Python code to run, e.g. `"import keras_ahbf.data"`.
        modules: names of the modules to look for.

    Returns:
        The sorted list of those found in `sys.modules`.
    """
    import json
    import sys

    code = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted(set({list(modules)!r}) & set(sys.modules))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        check=True, env=dict(os.environ),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
