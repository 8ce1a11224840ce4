"""Local copies of CIFAR-10/100: `.npz` archives and the python batches.

`load_local(dataset, data_dir)` reads what `load_arrays(dataset, data_dir)`
accepts: an `.npz` file, a directory holding one, or the extracted official
python version (pickled batches, read by an unpickler that refuses
arbitrary globals). The arrays are returned as read; `load_arrays` validates
them.
"""

from __future__ import annotations

import os
import pathlib
import pickle

import numpy as np

from keras_ahbf.data.validation import DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
# Standard CIFAR python-batch layouts: folder name, train files, test files,
# label key.
PYTHON_BATCHES = {
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
    ),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels"),
}


def load_local(dataset, data_dir):
    """Reads a local CIFAR copy.

    Args:
        dataset: str. `"cifar10"` or `"cifar100"`.
        data_dir: str or path-like. An `.npz` file with `x_train`, `y_train`,
            `x_test`, `y_test`; a directory containing `<dataset>.npz` (or a
            single `<dataset>_*.npz`); the extracted python-batch folder, or
            its parent.

    Returns:
        `((x_train, y_train), (x_test, y_test), source)`: the arrays as read
        and the path they were read from.

    Raises:
        DataError: if nothing usable is found or a file is unreadable or
            malformed; the message names the file and what to pass.
    """
    path = pathlib.Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(
            f"data_dir={str(path)!r} does not exist. Pass an .npz file with "
            f"{', '.join(NPZ_KEYS)}, a directory containing "
            f"'{dataset}.npz', or the extracted "
            f"'{PYTHON_BATCHES[dataset][0]}' folder ({CIFAR_URL})."
        )
    if path.is_file():
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise DataError(
                f"{str(path)!r} is an archive; extract it first (e.g. "
                f"`tar -xzf {path.name}`) and pass the extracted "
                f"'{PYTHON_BATCHES[dataset][0]}' folder or its parent."
            )
        return (*load_npz(path), str(path))

    npz = path / f"{dataset}.npz"
    if npz.is_file():
        return (*load_npz(npz), str(npz))
    others = sorted(p for p in path.glob(f"{dataset}_*.npz") if p.is_file())
    if len(others) == 1:
        return (*load_npz(others[0]), str(others[0]))
    if len(others) > 1:
        raise DataError(
            f"data_dir={str(path)!r} contains several candidate files "
            f"{[p.name for p in others]} and no '{dataset}.npz'; pass the "
            "file itself as data_dir."
        )

    folder_name, train_files, test_files, _ = PYTHON_BATCHES[dataset]
    for folder in (path, path / folder_name):
        if folder.is_dir() and (
            folder.name == folder_name
            or any((folder / f).exists() for f in train_files + test_files)
        ):
            return (*load_python_batches(dataset, folder), str(folder))

    raise DataError(
        f"No {dataset} data found in data_dir={str(path)!r}: looked for "
        f"'{dataset}.npz', '{dataset}_*.npz' and the python-batch folder "
        f"'{folder_name}' (as data_dir itself or inside it). Pass an .npz "
        f"file with {', '.join(NPZ_KEYS)} or the extracted CIFAR python "
        f"version ({CIFAR_URL})."
    )


def load_npz(path):
    """`((x_train, y_train), (x_test, y_test))` from an `.npz` archive.

    Raises:
        DataError: for an empty, truncated or non-zip file, a single `.npy`
            array, or an archive missing one of the four arrays.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    if size == 0:
        raise DataError(
            f"{str(path)!r} is empty (0 bytes); it must be an .npz archive "
            f"with arrays {list(NPZ_KEYS)} (an interrupted download or copy?)."
        )
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"Could not read {str(path)!r}: {e}") from e
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        raise DataError(
            f"{str(path)!r} is not an .npz archive with arrays "
            f"{list(NPZ_KEYS)}: it does not start with the zip signature "
            f"(first bytes {magic!r}; a pickle, a damaged download or another "
            "kind of file)."
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(
                f"{str(path)!r} holds a single array of shape "
                f"{getattr(loaded, 'shape', None)} (.npy format), not an .npz "
                f"archive with arrays {list(NPZ_KEYS)}; write one with "
                "np.savez(path, x_train=..., y_train=..., x_test=..., "
                "y_test=...)."
            )
        with loaded as archive:
            files = set(archive.files)
            missing = [k for k in NPZ_KEYS if k not in files]
            if missing:
                raise DataError(
                    f"{str(path)!r} is missing the array(s) {missing}; it "
                    f"must contain {list(NPZ_KEYS)} (found "
                    f"{sorted(files)})."
                )
            arrays = {k: archive[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except Exception as e:
        import zipfile

        hint = ""
        if isinstance(e, (zipfile.BadZipFile, EOFError)):
            hint = " (not a valid zip archive: truncated, or not an .npz file)"
        raise DataError(
            f"Could not read {str(path)!r} as an .npz archive with arrays "
            f"{list(NPZ_KEYS)}{hint}: {type(e).__name__}: {e}"
        ) from e
    return (arrays["x_train"], arrays["y_train"]), (
        arrays["x_test"],
        arrays["y_test"],
    )


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batch files that refuses arbitrary globals.

    CIFAR's python version is a set of pickles of dicts holding NumPy arrays,
    bytes and lists; only the globals needed to rebuild those are allowed, so
    a tampered file cannot run code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("builtins", "object"),
        # Empty arrays pickle their (empty) buffer as `bytes()`.
        ("__builtin__", "bytes"),
        ("builtins", "bytes"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"global '{module}.{name}' is not allowed in a CIFAR batch file"
        )


def read_batch(path, label_key):
    """`(images, labels)` of one CIFAR batch file: uint8 NHWC, labels 1D.

    Raises:
        DataError: for a missing or unreadable file, a pickle that is not a
            dict or lacks `data` / `label_key`, or arrays of the wrong shape.
    """
    if not path.is_file():
        raise DataError(
            f"CIFAR batch file {str(path)!r} is missing; the folder must "
            "contain the files of the official python version "
            f"({CIFAR_URL})."
        )
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as e:
        raise DataError(
            f"Could not read CIFAR batch file {str(path)!r}: "
            f"{type(e).__name__}: {e}"
        ) from e
    if not isinstance(batch, dict):
        raise DataError(
            f"CIFAR batch file {str(path)!r} does not hold a dict (got "
            f"{type(batch).__name__})."
        )

    def get(key):
        for k in (key.encode(), key):
            if k in batch:
                return batch[k]
        raise DataError(
            f"CIFAR batch file {str(path)!r} has no {key!r} entry (keys: "
            f"{sorted(str(k) for k in batch)})."
        )

    try:
        data = np.asarray(get("data"))
        labels = np.asarray(get(label_key))
    except DataError:
        raise
    except Exception as e:
        raise DataError(
            f"CIFAR batch file {str(path)!r}: 'data' and {label_key!r} must "
            f"be arrays or lists: {type(e).__name__}: {e}"
        ) from e
    if labels.ndim != 1:
        raise DataError(
            f"CIFAR batch file {str(path)!r}: {label_key!r} must be a list of "
            f"class ids; got shape {labels.shape}."
        )
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"CIFAR batch file {str(path)!r}: 'data' must have shape "
            f"(N, 3072) (row-major 3x32x32); got {data.shape}."
        )
    if labels.shape[:1] != data.shape[:1]:
        raise DataError(
            f"CIFAR batch file {str(path)!r}: {data.shape[0]} images but "
            f"{labels.shape[0] if labels.ndim else 0} labels."
        )
    # Rows are the red, green then blue planes, each 32x32 row-major.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def load_python_batches(dataset, folder):
    """`((x_train, y_train), (x_test, y_test))` from a python-batch folder."""
    _, train_files, test_files, label_key = PYTHON_BATCHES[dataset]
    out = []
    for files in (train_files, test_files):
        parts = [read_batch(folder / f, label_key) for f in files]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        out.append((np.ascontiguousarray(x), y))
    return tuple(out)
