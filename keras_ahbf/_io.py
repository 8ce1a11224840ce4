"""Crash-safe file writing (not public API).

Every file a training run writes is produced the same way: the content goes
to a temporary file in the destination's own directory, the file is flushed
and `fsync`ed, then `os.replace` moves it over the destination (atomic on
POSIX and Windows within one file system) and the directory is `fsync`ed so
the rename itself survives a power cut. A process killed at any point (even
with SIGKILL) leaves either the complete old file or the complete new one,
never a half-written file; at worst a stray temporary file, which
`remove_stale_temporaries` deletes.
"""

import contextlib
import json
import math
import os
import tempfile

TMP_MARKER = ".tmp-"


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open folders.
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse.
        pass
    finally:
        os.close(fd)


def _fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def temporary_path(path):
    """A fresh, unused path next to `path` that keeps its extension.

    Keras decides the format of `model.save` from the extension, so
    `run/model.keras` gives `run/.model.tmp-<random>.keras`.
    """
    directory, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    if ext == ".h5" and stem.endswith(".weights"):
        stem, ext = stem[: -len(".weights")], ".weights.h5"
    fd, tmp = tempfile.mkstemp(
        prefix=f".{stem}{TMP_MARKER}", suffix=ext, dir=directory
    )
    os.close(fd)
    os.remove(tmp)
    return tmp


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path; on success moves it over `path` atomically.

    The caller writes the complete file at the yielded path (with any
    library call: `model.save`, `savefig`, ...). If the block raises, the
    temporary file is deleted and `path` is left untouched.

    Example:

    ```python
    with atomic_path("run/model.keras") as tmp:
        model.save(tmp)
    ```
    """
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(os.path.dirname(path))


def atomic_write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_safe(value):
    """Replaces NaN/inf floats by None so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def atomic_write_json(path, obj):
    """Writes `obj` as indented, strict JSON to `path` atomically."""
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def read_json(path):
    """Reads a JSON file; returns None if it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def atomic_save_model(model, path):
    """`model.save(path)` (a `.keras` file) done atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def remove_stale_temporaries(directory):
    """Deletes temporary files left in `directory` by a killed process.

    Returns:
        The list of deleted paths.
    """
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in os.listdir(directory):
        if name.startswith(".") and TMP_MARKER in name:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                with contextlib.suppress(OSError):
                    os.remove(path)
                    removed.append(path)
    return removed
