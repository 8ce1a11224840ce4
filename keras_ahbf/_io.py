"""Crash-safe file writing (not public API).

Every file a training run writes is produced the same way: the content goes
to a temporary file in the destination's own directory, the file is flushed
and `fsync`ed, then `os.replace` moves it over the destination (atomic on
POSIX and Windows within one file system) and the directory is `fsync`ed so
the rename itself survives a power cut. A process killed at any point (even
with SIGKILL) leaves either the complete old file or the complete new one,
never a half-written file; at worst a stray temporary file. Temporary
names carry the writer's process id (`.model.tmp-<pid>-<random>.keras`), so
the temporaries of a dead writer are recognised and deleted: by the next
`atomic_path` to the same destination, and for a whole folder by
`remove_stale_temporaries`; those of a live writer are left alone.
"""

import contextlib
import json
import math
import os
import shutil
import tempfile

TMP_MARKER = ".tmp-"


class CorruptFileError(ValueError):
    """A file of a run directory exists but cannot be read.

    The message names the file and what is wrong with it (not JSON, not a
    `.keras` zip archive, truncated, ...) on one line.
    """


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


def temporary_affixes(path):
    """(directory, prefix, suffix) of the temporary files of `path`."""
    directory, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    if ext == ".h5" and stem.endswith(".weights"):
        stem, ext = stem[: -len(".weights")], ".weights.h5"
    return directory, f".{stem}{TMP_MARKER}", ext


def is_temporary(name):
    """True if the file name `name` is that of a temporary file written here."""
    return name.startswith(".") and TMP_MARKER in name


def _writer_is_gone(name):
    """True unless the process that created temporary `name` may be running.

    The process id follows the last `TMP_MARKER`. Names without one (older
    versions), our own id (the id of a killed process reused, as in a
    container) and Windows (where `os.kill(pid, 0)` would kill) count as
    gone.
    """
    pid = name.rsplit(TMP_MARKER, 1)[-1].split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: the process exists (another user's).
        return False
    return False


def temporary_path(path):
    """A fresh, unused path next to `path` that keeps its extension.

    Keras decides the format of `model.save` from the extension, so
    `run/model.keras` gives `run/.model.tmp-<pid>-<random>.keras`.
    """
    directory, prefix, ext = temporary_affixes(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{prefix}{os.getpid()}-", suffix=ext, dir=directory
    )
    os.close(fd)
    os.remove(tmp)
    return tmp


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path; on success moves it over `path` atomically.

    The caller writes the complete file at the yielded path (with any
    library call: `model.save`, `savefig`, ...). If the block raises, the
    temporary file is deleted and `path` is left untouched. Temporaries of
    `path` left by a killed process are deleted first.

    Example:

    ```python
    with atomic_path("run/model.keras") as tmp:
        model.save(tmp)
    ```
    """
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    directory, prefix, suffix = temporary_affixes(path)
    remove_stale_temporaries(directory, prefix=prefix, suffix=suffix)
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
    """Reads a JSON file; returns None if it does not exist.

    Raises:
        CorruptFileError: if the file exists but is not valid UTF-8 JSON
            (e.g. truncated or overwritten); the message names the file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (ValueError, IsADirectoryError) as e:  # JSONDecodeError, UnicodeDecodeError.
        size = os.path.getsize(path) if os.path.isfile(path) else None
        what = "is empty (0 bytes)" if size == 0 else "is not valid JSON"
        raise CorruptFileError(
            f"{path} {what} ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]}); it was damaged or replaced "
            "after it was written."
        ) from None


def load_keras_model(path, compile=True):
    """`keras.saving.load_model(path)` with a one-line error naming `path`.

    Checks first that the file is a non-empty zip archive holding a
    `config.json` (what every `.keras` file is), so an empty, truncated or
    foreign file is reported as such rather than as a confusing Keras error.

    Raises:
        FileNotFoundError: if `path` does not exist.
        CorruptFileError: if the file is not a loadable `.keras` model.
    """
    import zipfile

    import keras

    import keras_ahbf

    keras_ahbf.register_all()  # The classes a checkpoint may hold.
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist.")
    size = os.path.getsize(path)
    if size == 0:
        raise CorruptFileError(
            f"{path} is empty (0 bytes), not a .keras model file (an "
            "interrupted copy?)."
        )
    if not zipfile.is_zipfile(path):
        raise CorruptFileError(
            f"{path} is not a .keras model file: not a zip archive ({size} "
            "bytes; truncated, or another kind of file)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CorruptFileError(
            f"{path} is not a readable .keras model file: "
            f"{type(e).__name__}: {e}"
        ) from None
    if "config.json" not in names:
        raise CorruptFileError(
            f"{path} is a zip archive but not a .keras model file: it has no "
            f"config.json (it holds {sorted(names)[:10]})."
        )
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as e:  # noqa: BLE001 - reported with the file name.
        message = " ".join(str(e).split())
        if len(message) > 400:
            message = message[:400] + " ..."
        raise CorruptFileError(
            f"Could not load the model in {path}: {type(e).__name__}: {message}"
        ) from e


def atomic_save_model(model, path):
    """`model.save(path)` (a `.keras` file) done atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def remove_stale_temporaries(directory, prefix=".", suffix=""):
    """Deletes temporary files and folders left in `directory` by a killed process.

    Temporary files of processes still running are kept.

    Args:
        directory: str. The folder.
        prefix, suffix: str. Only names with this beginning and end (those
            of one destination, as given by `temporary_affixes`).

    Returns:
        The list of deleted paths.
    """
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in os.listdir(directory):
        if (
            is_temporary(name)
            and name.startswith(prefix)
            and name.endswith(suffix)
            and _writer_is_gone(name)
        ):
            path = os.path.join(directory, name)
            if os.path.isdir(path) and not os.path.islink(path):
                # A temporary folder (a SavedModel export being written).
                shutil.rmtree(path, ignore_errors=True)
                if not os.path.exists(path):
                    removed.append(path)
            elif os.path.isfile(path):
                with contextlib.suppress(OSError):
                    os.remove(path)
                    removed.append(path)
    return removed
