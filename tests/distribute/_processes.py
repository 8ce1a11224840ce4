"""Subprocess helpers of the distribution tests (a backend fixes its devices
when it starts, so every multi-device run is a fresh process)."""

import socket
import subprocess

import pytest


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
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish in {timeout} s:\n{err[-3000:]}")
    return proc.returncode, out, err
