"""What every `keras-ahbf` command shares: errors, exit codes, output checks
and quiet backend start-up. Imports nothing heavy (no Keras, no backend)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys

EXIT_USAGE = 2
EXIT_NONFINITE = 3
EXIT_INTERRUPTED = 130

# `--log-level` -> TF_CPP_MIN_LOG_LEVEL (what the backends' C++ code prints)
# and the level of the Python loggers of TensorFlow, absl and JAX.
LOG_LEVELS = {
    "error": ("2", logging.ERROR),
    "warning": ("1", logging.WARNING),
    "info": ("0", logging.INFO),
}
DEFAULT_LOG_LEVEL = "error"
_BACKEND_LOGGERS = ("tensorflow", "absl", "jax", "jax._src.xla_bridge")


class CLIError(Exception):
    """A user error: printed as one line, exit code `code`.

    Args:
        message: str. What is wrong, naming the option and its value.
        code: int. The exit code (`EXIT_USAGE` by default).
    """

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def one_line(error) -> str:
    """The message of an exception (or a string) on one line."""
    return " ".join(str(error).split())


def say(*args) -> None:
    """`print` to stdout, flushed (progress of long commands)."""
    print(*args, flush=True)


def percent(value) -> str:
    """`0.1234` as `" 12.34%"`, None as `"   n/a"`."""
    return "   n/a" if value is None else f"{100 * value:6.2f}%"


def tensorboard_available() -> bool:
    """True if `keras.callbacks.TensorBoard` can write logs here."""
    return (
        importlib.util.find_spec("tensorflow") is not None
        and importlib.util.find_spec("tensorboard") is not None
    )


def check_output_path(option: str, path: str, kind: str = "directory") -> str:
    """Checks, before anything is built, that `path` can be created as `kind`.

    A `kind="directory"` path must be a directory or not exist yet; a
    `kind="file"` path must not be a directory. In both cases no parent of
    `path` may be an existing file (which would end in a
    `NotADirectoryError` after the work was done), and the folder that
    will receive the new entries (the directory itself if it exists, else
    its nearest existing parent) must be writable. Nothing is written: the
    permissions are read with `os.access` (which a root user passes).

    Args:
        option: str. The command-line option, e.g. `"--output"`.
        path: str. Its value (not empty).
        kind: str. `"directory"` or `"file"`.

    Returns:
        `path` made absolute.

    Raises:
        CLIError: naming the option and the path.
    """
    if not isinstance(path, str) or not path.strip():
        raise CLIError(f"{option} must name a path. Received: {option} {path!r}")
    absolute = os.path.abspath(os.path.expanduser(path))
    if kind == "directory" and os.path.exists(absolute) and not os.path.isdir(absolute):
        raise CLIError(f"{option} {path} is an existing file, not a directory.")
    if kind == "file" and os.path.isdir(absolute):
        raise CLIError(f"{option} {path} is an existing directory, not a file.")
    parent = os.path.dirname(absolute)
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise CLIError(f"{option} {path} is below {parent}, which is a file, not a directory.")
    receiver = absolute if kind == "directory" and os.path.isdir(absolute) else parent
    if not os.access(receiver, os.W_OK | os.X_OK):
        where = "" if receiver == absolute else f" (in {receiver})"
        raise CLIError(f"{option} {path} cannot be written{where}: permission denied.")
    return absolute


def configure_backend_logging(level: str | None) -> bool:
    """Sets how much the backends print, before any of them is imported.

    With `level=None` (no `--log-level`) and `TF_CPP_MIN_LOG_LEVEL` unset,
    the start-up lines of TensorFlow's C++ code and absl (`I0000 ...
    oneDNN custom operations are on ...`, CPU feature notes) are hidden.
    An explicit `--log-level`, or a `TF_CPP_MIN_LOG_LEVEL` set by the user,
    is used as given.

    Args:
        level: str or None. A key of `LOG_LEVELS`.

    Returns:
        True if the start-up lines are to be hidden (`quiet_imports`).
    """
    user_set = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    if level is None and user_set:
        return False
    cpp_level, python_level = LOG_LEVELS[level or DEFAULT_LOG_LEVEL]
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = cpp_level
    for name in _BACKEND_LOGGERS:
        logging.getLogger(name).setLevel(python_level)
    return level is None or level == "error"


@contextlib.contextmanager
def quiet_imports(hide: bool):
    """Hides what native code writes to stderr while the backends load.

    TensorFlow logs "oneDNN custom operations are on" from a static
    initializer, before absl logging reads any setting, so no environment
    variable silences it; the file descriptor 2 is pointed at `os.devnull`
    for the duration of the imports instead (Python exceptions still
    propagate and are reported afterwards).
    """
    if not hide:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_command(name: str, hide_backend_logs: bool):
    """Imports the module of command `name` (Keras and the backend with it)."""
    with quiet_imports(hide_backend_logs):
        module = importlib.import_module(f"keras_ahbf.cli.{name}")
        preload = getattr(module, "preload_backends", None)
        if preload is not None:
            preload()
    return module
