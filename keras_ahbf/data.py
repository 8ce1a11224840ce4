"""Datasets and `tf.data` input pipelines for AHBF-OKD experiments.

This is the only module of `keras_ahbf` that uses TensorFlow and
tensorflow-datasets. Both are imported lazily, inside the functions that need
them, so `import keras_ahbf` stays cheap. The pipelines it builds are plain
`tf.data.Dataset`s built from TensorFlow ops (and Keras preprocessing layers,
which Keras runs backend-independently inside `tf.data`), so they can be
passed to `model.fit` on every Keras backend: TensorFlow, JAX and PyTorch.

Sources:

- `"digits"`: scikit-learn's bundled 8x8 handwritten digits (no download),
  for smoke tests and quick runs.
- `"cifar10"` / `"cifar100"`: a local copy (an `.npz` file with `x_train`,
  `y_train`, `x_test`, `y_test`, a directory holding one, or the standard
  CIFAR python-batch folders), otherwise tensorflow-datasets.
- `"imagenet2012"`: tensorflow-datasets with the manually downloaded tar files
  (see `load_imagenet`).

Augmentation follows section 4 of the AHBF-OKD spec: for CIFAR a 4-pixel zero
pad, a random 32x32 crop and a random horizontal flip, then per-channel
normalisation `(x / 255 - mean) / std`; evaluation normalises only.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import pathlib
import pickle
import socket
import threading
from collections.abc import Mapping

import numpy as np

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetInfo",
    "imagenet_preprocess",
    "load_arrays",
    "load_imagenet",
    "make_dataset",
    "normalization_stats",
    "tf_distribute_strategy",
    "validate_arrays",
]


class DataError(ValueError):
    """Raised when a data set is missing, unreadable or malformed.

    The message names the file or array concerned and the problem found, for
    instance a label outside `[0, num_classes)` together with the offending
    value. It is raised by the loaders before any training starts.
    """


@dataclasses.dataclass(frozen=True)
class DatasetInfo(Mapping):
    """Static description of a supported data set.

    Fields can be read as attributes (`info.num_classes`) or as mapping keys
    (`info["num_classes"]`).

    Args:
        name: str. Key of the data set in `DATASETS`.
        num_classes: int. Number of classes; labels lie in
            `[0, num_classes)`.
        image_shape: tuple. `(height, width, channels)` of the images fed to
            the model (channels-last).
        mean: tuple. Per-channel mean of `x / 255`, used for normalisation.
        std: tuple. Per-channel standard deviation of `x / 255`.
        tfds_name: str or None. Name in tensorflow-datasets, if any.
        source: str. Short description of where the data comes from.
    """

    name: str
    num_classes: int
    image_shape: tuple
    mean: tuple
    std: tuple
    tfds_name: str | None
    source: str

    def __getitem__(self, key):
        if key in self._keys():
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self):
        return len(self._keys())

    @classmethod
    def _keys(cls):
        return tuple(f.name for f in dataclasses.fields(cls))


# Digits statistics: computed once over all 1,797 images of
# `sklearn.datasets.load_digits()` after the 0..16 -> 0..255 uint8 conversion
# done by `load_arrays` (mean 0.30531, std 0.37589 of x / 255), rounded to
# four decimals. They are constants so that nothing is computed at run time.
DATASETS = {
    "digits": DatasetInfo(
        name="digits",
        num_classes=10,
        image_shape=(8, 8, 1),
        mean=(0.3053,),
        std=(0.3759,),
        tfds_name=None,
        source="sklearn.datasets.load_digits (bundled with scikit-learn)",
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        num_classes=10,
        image_shape=(32, 32, 3),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        tfds_name="cifar10",
        source="local copy (data_dir) or tensorflow-datasets 'cifar10'",
    ),
    "cifar100": DatasetInfo(
        name="cifar100",
        num_classes=100,
        image_shape=(32, 32, 3),
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        tfds_name="cifar100",
        source="local copy (data_dir) or tensorflow-datasets 'cifar100'",
    ),
    "imagenet2012": DatasetInfo(
        name="imagenet2012",
        num_classes=1000,
        image_shape=(224, 224, 3),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        tfds_name="imagenet2012",
        source="tensorflow-datasets 'imagenet2012' with manually "
        "downloaded tar files",
    ),
}

STRONG_AUGMENTATIONS = ("randaugment", "mixup", "cutmix")

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_DOWNLOAD_HOST = "www.cs.toronto.edu"
# Standard CIFAR python-batch layouts: folder name, train files, test files,
# label key.
_PYTHON_BATCHES = {
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
    ),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels"),
}
_IMAGENET_TARS = {
    "train": "ILSVRC2012_img_train.tar",
    "validation": "ILSVRC2012_img_val.tar",
    "test": "ILSVRC2012_img_test.tar",
}
_IMAGENET_SIZE = 224
_IMAGENET_RESIZE = 256


# --------------------------------------------------------------------------
# Argument checks.


def _check_dataset(dataset, allowed=None):
    allowed = tuple(DATASETS) if allowed is None else allowed
    if not isinstance(dataset, str) or dataset not in allowed:
        raise ValueError(
            f"`dataset` must be one of {list(allowed)}. "
            f"Received: dataset={dataset!r}"
        )
    return DATASETS[dataset]


def _check_int(name, value, *, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an integer"
            + (" or None" if allow_none else "")
            + f". Received: {name}={value!r} (of type {type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(
            f"`{name}` must be >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be a bool. Received: {name}={value!r} "
            f"(of type {type(value).__name__})"
        )
    return bool(value)


def _tf():
    try:
        import tensorflow as tf
    except ImportError as e:  # pragma: no cover - tensorflow is a dependency
        raise ImportError(
            "keras_ahbf.data needs TensorFlow for its tf.data pipelines "
            "(on every Keras backend). Install it with "
            "`pip install tensorflow-cpu`."
        ) from e
    return tf


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - tfds is a dependency
        raise ImportError(
            "Loading data through tensorflow-datasets needs the "
            "`tensorflow-datasets` package: `pip install tensorflow-datasets`"
            ", or pass a local copy with `data_dir=`."
        ) from e
    return tfds


def _tfds_data_dir():
    # Read at call time (tfds reads TFDS_DATA_DIR only once, at import), so
    # that the variable can be changed within a process.
    return os.environ.get("TFDS_DATA_DIR") or None


# --------------------------------------------------------------------------
# Validation.


def validate_arrays(x, y, num_classes, *, name="train", image_shape=None):
    """Checks an image/label pair of arrays and returns them in canonical form.

    These are the checks behind `DataError`: `x` must be a non-empty rank-4
    channels-last array `(N, H, W, C)` with 1 or 3 channels and pixel values
    in `[0, 255]` (uint8, another integer dtype, or a finite float array on
    the 0..255 scale); `y` must hold `N` integer class ids in
    `[0, num_classes)`, with shape `(N,)` or `(N, 1)`.

    Args:
        x: array-like. Images, channels-last.
        y: array-like. Integer class labels.
        num_classes: int. Number of classes.
        name: str. What the arrays are (a split, a file), used in messages.
        image_shape: tuple or None. If given, the required `(H, W, C)`.

    Returns:
        Tuple `(x, y)`: `x` as uint8 `(N, H, W, C)` (floats are rounded),
        `y` as int64 `(N,)`. Arrays already in that form are not copied.

    Raises:
        DataError: if the arrays are malformed; the message names `name` and
            the problem.
        ValueError: if `num_classes` is not a positive integer.

    Example:

    >>> import numpy as np
    >>> x = np.zeros((2, 8, 8, 1), "uint8")
    >>> x, y = validate_arrays(x, [0, 9], num_classes=10)
    >>> y.dtype
    dtype('int64')
    """
    num_classes = _check_int("num_classes", num_classes, minimum=1)
    try:
        x = np.asarray(x)
        y = np.asarray(y)
    except Exception as e:
        raise DataError(f"{name}: could not convert data to arrays: {e}")

    # Images.
    if x.dtype == bool or x.dtype.kind not in "uif":
        raise DataError(
            f"{name}: images must be a numeric array (uint8 0..255); got "
            f"dtype {x.dtype}."
        )
    if x.ndim != 4:
        hint = ""
        if x.ndim == 3:
            hint = (
                " For grayscale images add a channel axis, e.g. "
                "x[..., None]."
            )
        raise DataError(
            f"{name}: images must be a rank-4 channels-last array "
            f"(N, height, width, channels); got rank {x.ndim} with shape "
            f"{x.shape}.{hint}"
        )
    if x.shape[0] == 0:
        raise DataError(f"{name}: images are empty (shape {x.shape}).")
    if 0 in x.shape[1:]:
        raise DataError(f"{name}: images have an empty axis: {x.shape}.")
    if x.shape[-1] not in (1, 3):
        hint = ""
        if x.shape[1] in (1, 3):
            hint = (
                " It looks channels-first (N, C, H, W); transpose it with "
                "x.transpose(0, 2, 3, 1)."
            )
        raise DataError(
            f"{name}: images must be channels-last with 1 or 3 channels; "
            f"got shape {x.shape}.{hint}"
        )
    if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
        dims = ", ".join(map(str, image_shape))
        raise DataError(
            f"{name}: images must have shape (N, {dims}) "
            f"(height, width, channels); got {x.shape}."
        )
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            count = int(np.size(finite) - np.count_nonzero(finite))
            raise DataError(
                f"{name}: images contain {count} NaN/inf value(s); first at "
                f"index {tuple(int(i) for i in bad)} "
                f"(value {x[tuple(bad)]})."
            )
    if x.dtype != np.uint8:
        lo, hi = x.min(), x.max()
        if lo < 0 or hi > 255:
            raise DataError(
                f"{name}: pixel values must lie in [0, 255]; got values in "
                f"[{lo}, {hi}] (dtype {x.dtype})."
            )
        if x.dtype.kind == "f" and hi <= 1.0:
            raise DataError(
                f"{name}: float images have maximum {hi}, i.e. they look "
                "scaled to [0, 1]; pass them on the 0..255 scale "
                "(e.g. x * 255) or as uint8."
            )
        if x.dtype.kind == "f":
            x = np.rint(x)
        x = x.astype(np.uint8)

    # Labels.
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = ""
        if y.ndim == 2:
            hint = (
                " One-hot labels are not accepted; pass class ids, e.g. "
                "y.argmax(-1)."
            )
        raise DataError(
            f"{name}: labels must have shape (N,) or (N, 1); got shape "
            f"{y.shape}.{hint}"
        )
    if y.shape[0] == 0:
        raise DataError(f"{name}: labels are empty (shape {y.shape}).")
    if y.shape[0] != x.shape[0]:
        raise DataError(
            f"{name}: {x.shape[0]} images but {y.shape[0]} labels; x and y "
            "must have the same length."
        )
    if y.dtype == bool or y.dtype.kind not in "uif":
        raise DataError(
            f"{name}: labels must be integer class ids; got dtype {y.dtype}."
        )
    if y.dtype.kind == "f":
        finite = np.isfinite(y)
        if not finite.all():
            i = int(np.argmin(finite))
            raise DataError(
                f"{name}: labels contain NaN/inf; first at index {i} "
                f"(value {y[i]})."
            )
        frac = y != np.floor(y)
        if frac.any():
            i = int(np.argmax(frac))
            raise DataError(
                f"{name}: labels must be integer class ids; got {y[i]} at "
                f"index {i}."
            )
    outside = (y < 0) | (y >= num_classes)
    if outside.any():
        i = int(np.argmax(outside))
        value = y[i].item()
        if isinstance(value, float):
            value = int(value)
        raise DataError(
            f"{name}: label {value} at index {i} is outside [0, "
            f"{num_classes}) ({int(outside.sum())} label(s) out of range)."
        )
    if y.dtype != np.int64:
        y = y.astype(np.int64)
    return x, y


# --------------------------------------------------------------------------
# Loading.


def load_arrays(
    dataset,
    data_dir=None,
    *,
    train_limit=None,
    test_limit=None,
    download=False,
):
    """Loads a data set as NumPy arrays.

    `"digits"` comes from scikit-learn (`data_dir` is ignored): the 0..16
    pixel values are scaled to uint8 0..255, the images kept at 8x8, and a
    deterministic stratified 80/20 split (`random_state=0`) gives 1,437
    training and 360 test images.

    `"cifar10"` / `"cifar100"` are read from `data_dir` when given, which may
    be:

    - an `.npz` file with `x_train`, `y_train`, `x_test`, `y_test` (uint8
      NHWC images, integer labels);
    - a directory containing `<dataset>.npz` (or a single
      `<dataset>_*.npz`, e.g. `cifar10_subset.npz`);
    - the extracted official python version (`cifar-10-batches-py` with
      `data_batch_1`..`data_batch_5` and `test_batch`; `cifar-100-python`
      with `train` and `test`, fine labels), or its parent directory.

    Without `data_dir` they are loaded with tensorflow-datasets from its data
    directory (`TFDS_DATA_DIR` or `~/tensorflow_datasets`). Nothing is
    downloaded unless `download=True`; with `download=True` and no network,
    a `DataError` is raised after a connectivity probe of a few seconds.

    ImageNet is too large for arrays: use `load_imagenet`.

    Args:
        dataset: str. One of `"digits"`, `"cifar10"`, `"cifar100"`.
        data_dir: str, path-like or None. Local copy of the data (see above).
        train_limit: int or None. Keep only the first `train_limit` training
            examples (in the source's fixed order), for quick runs.
        test_limit: int or None. Same for the test split.
        download: bool. Let tensorflow-datasets download and prepare the data
            set when it is not prepared yet.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: images uint8
        `(N, H, W, C)` channels-last, labels int64 `(N,)`.

    Raises:
        DataError: if the data is missing, unreadable or malformed, or
            cannot be obtained offline; the message says what to pass.
        ValueError: for an unknown `dataset` or a bad limit.
        TypeError: for arguments of the wrong type.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = load_arrays("digits")
    >>> x_train.shape, x_test.shape
    ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    if dataset == "imagenet2012":
        raise ValueError(
            "ImageNet is too large to load as arrays. Use "
            "`load_imagenet(data_dir, split)` and pass the result to "
            "`make_dataset(..., dataset='imagenet2012')`. "
            f"Received: dataset={dataset!r}"
        )
    info = _check_dataset(dataset, allowed=("digits", "cifar10", "cifar100"))
    train_limit = _check_int(
        "train_limit", train_limit, minimum=1, allow_none=True
    )
    test_limit = _check_int(
        "test_limit", test_limit, minimum=1, allow_none=True
    )
    download = _check_bool("download", download)
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(
            "`data_dir` must be a path (str or os.PathLike) or None. "
            f"Received: data_dir={data_dir!r}"
        )

    if dataset == "digits":
        (x_train, y_train), (x_test, y_test) = _load_digits()
        source = "sklearn digits"
    elif data_dir is not None:
        (x_train, y_train), (x_test, y_test), source = _load_local(
            dataset, data_dir
        )
    else:
        (x_train, y_train), (x_test, y_test) = _load_tfds(
            dataset, download, train_limit, test_limit
        )
        source = f"tensorflow-datasets {info.tfds_name}"

    splits = []
    for split, x, y, limit in (
        ("train", x_train, y_train, train_limit),
        ("test", x_test, y_test, test_limit),
    ):
        if limit is not None:
            x, y = x[:limit], y[:limit]
        x, y = validate_arrays(
            x,
            y,
            info.num_classes,
            name=f"{dataset} {split} split ({source})",
            image_shape=info.image_shape,
        )
        splits.append((np.ascontiguousarray(x), y))
    return tuple(splits)


def _load_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0, shuffle=True
    )
    return (x_train, y_train), (x_test, y_test)


def _load_local(dataset, data_dir):
    path = pathlib.Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(
            f"data_dir={str(path)!r} does not exist. Pass an .npz file with "
            f"{', '.join(_NPZ_KEYS)}, a directory containing "
            f"'{dataset}.npz', or the extracted "
            f"'{_PYTHON_BATCHES[dataset][0]}' folder ({_CIFAR_URL})."
        )
    if path.is_file():
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise DataError(
                f"{str(path)!r} is an archive; extract it first (e.g. "
                f"`tar -xzf {path.name}`) and pass the extracted "
                f"'{_PYTHON_BATCHES[dataset][0]}' folder or its parent."
            )
        return (*_load_npz(path), str(path))

    npz = path / f"{dataset}.npz"
    if npz.is_file():
        return (*_load_npz(npz), str(npz))
    others = sorted(p for p in path.glob(f"{dataset}_*.npz") if p.is_file())
    if len(others) == 1:
        return (*_load_npz(others[0]), str(others[0]))
    if len(others) > 1:
        raise DataError(
            f"data_dir={str(path)!r} contains several candidate files "
            f"{[p.name for p in others]} and no '{dataset}.npz'; pass the "
            "file itself as data_dir."
        )

    folder_name, train_files, test_files, _ = _PYTHON_BATCHES[dataset]
    for folder in (path, path / folder_name):
        if folder.is_dir() and (
            folder.name == folder_name
            or any((folder / f).exists() for f in train_files + test_files)
        ):
            return (*_load_python_batches(dataset, folder), str(folder))

    raise DataError(
        f"No {dataset} data found in data_dir={str(path)!r}: looked for "
        f"'{dataset}.npz', '{dataset}_*.npz' and the python-batch folder "
        f"'{folder_name}' (as data_dir itself or inside it). Pass an .npz "
        f"file with {', '.join(_NPZ_KEYS)} or the extracted CIFAR python "
        f"version ({_CIFAR_URL})."
    )


def _load_npz(path):
    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    if size == 0:
        raise DataError(
            f"{str(path)!r} is empty (0 bytes); it must be an .npz archive "
            f"with arrays {list(_NPZ_KEYS)} (an interrupted download or copy?)."
        )
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"Could not read {str(path)!r}: {e}") from e
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        raise DataError(
            f"{str(path)!r} is not an .npz archive with arrays "
            f"{list(_NPZ_KEYS)}: it does not start with the zip signature "
            f"(first bytes {magic!r}; a pickle, a damaged download or another "
            "kind of file)."
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(
                f"{str(path)!r} holds a single array of shape "
                f"{getattr(loaded, 'shape', None)} (.npy format), not an .npz "
                f"archive with arrays {list(_NPZ_KEYS)}; write one with "
                "np.savez(path, x_train=..., y_train=..., x_test=..., "
                "y_test=...)."
            )
        with loaded as archive:
            files = set(archive.files)
            missing = [k for k in _NPZ_KEYS if k not in files]
            if missing:
                raise DataError(
                    f"{str(path)!r} is missing the array(s) {missing}; it "
                    f"must contain {list(_NPZ_KEYS)} (found "
                    f"{sorted(files)})."
                )
            arrays = {k: archive[k] for k in _NPZ_KEYS}
    except DataError:
        raise
    except Exception as e:
        import zipfile

        hint = ""
        if isinstance(e, (zipfile.BadZipFile, EOFError)):
            hint = " (not a valid zip archive: truncated, or not an .npz file)"
        raise DataError(
            f"Could not read {str(path)!r} as an .npz archive with arrays "
            f"{list(_NPZ_KEYS)}{hint}: {type(e).__name__}: {e}"
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


def _read_batch(path, label_key):
    if not path.is_file():
        raise DataError(
            f"CIFAR batch file {str(path)!r} is missing; the folder must "
            "contain the files of the official python version "
            f"({_CIFAR_URL})."
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


def _load_python_batches(dataset, folder):
    _, train_files, test_files, label_key = _PYTHON_BATCHES[dataset]
    out = []
    for files in (train_files, test_files):
        parts = [_read_batch(folder / f, label_key) for f in files]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        out.append((np.ascontiguousarray(x), y))
    return tuple(out)


def _is_online(host, port=443, timeout=3.0):
    """True if a TCP connection to `host` succeeds within about `timeout` s."""
    result = {}

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError:
            pass

    # A thread bounds the DNS look-up too, which has no timeout of its own.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return result.get("ok", False)


def _offline_message(dataset, where, reason):
    folder = _PYTHON_BATCHES[dataset][0]
    return (
        f"{dataset} is not available: {reason} Pass a local copy with "
        f"`data_dir=` (command line: `--data-dir PATH`): an .npz file with "
        f"{', '.join(_NPZ_KEYS)}, a directory containing '{dataset}.npz', "
        f"or the extracted '{folder}' folder of the python version "
        f"({_CIFAR_URL}). Alternatively prepare it with tensorflow-datasets "
        f"in {where} (set TFDS_DATA_DIR to use another directory), or pass "
        "`download=True` on a machine with internet access."
    )


def _load_tfds(dataset, download, train_limit, test_limit):
    tfds = _tfds()
    info = DATASETS[dataset]
    try:
        builder = tfds.builder(info.tfds_name, data_dir=_tfds_data_dir())
    except Exception as e:
        raise DataError(
            f"tensorflow-datasets could not create the {info.tfds_name!r} "
            f"builder: {type(e).__name__}: {e}"
        ) from e
    where = str(getattr(builder, "data_dir_root", None) or builder.data_dir)

    if download and not builder.is_prepared():
        if not _is_online(_DOWNLOAD_HOST):
            raise DataError(
                _offline_message(
                    dataset,
                    where,
                    f"download=True but {_DOWNLOAD_HOST} cannot be reached "
                    "(no network?).",
                )
            )
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise DataError(
                _offline_message(
                    dataset,
                    where,
                    f"download failed: {type(e).__name__}: {e}.",
                )
            ) from e

    out = []
    for split, limit in (("train", train_limit), ("test", test_limit)):
        spec = split if limit is None else f"{split}[:{limit}]"
        try:
            # Batches of 4096 rather than batch_size=-1 (one huge batch),
            # which also works with `tfds.testing.mock_data`.
            ds = builder.as_dataset(
                split=spec, batch_size=4096, as_supervised=True
            )
            parts = list(tfds.as_numpy(ds))
        except Exception as e:
            reason = (
                f"tensorflow-datasets has no prepared copy in {where!r} "
                f"({type(e).__name__}) and download=False."
            )
            raise DataError(_offline_message(dataset, where, reason)) from e
        if not parts:
            raise DataError(
                f"tensorflow-datasets returned no examples for "
                f"{info.tfds_name} split {spec!r} (in {where!r})."
            )
        out.append(
            (
                np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]),
            )
        )
    return tuple(out)


def load_imagenet(data_dir, split="train"):
    """Loads ImageNet (ILSVRC 2012) through tensorflow-datasets.

    ImageNet must be downloaded by hand (registration at image-net.org).
    `data_dir` is the tensorflow-datasets *manual* directory holding
    `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar` (and
    `ILSVRC2012_img_test.tar` for the `"test"` split). The first call
    prepares the data set in the tensorflow-datasets data directory
    (`TFDS_DATA_DIR` or `~/tensorflow_datasets`), which takes hours; later
    calls read the prepared copy, and then `data_dir` may be None.

    Args:
        data_dir: str, path-like or None. Manual directory with the tar files.
        split: str. `"train"`, `"validation"` or `"test"`, optionally with a
            tensorflow-datasets slice such as `"train[:1%]"`.

    Returns:
        A `tf.data.Dataset` of `(image, label)` pairs: uint8 images
        `(height, width, 3)` of varying size and int64 labels. Feed it to
        `make_dataset(ds, None, dataset="imagenet2012", ...)`.

    Raises:
        DataError: if the data set is not prepared and `data_dir` lacks the
            tar files, or preparation fails.
        ValueError: for an unknown `split`.

    Example:

    ```python
    ds = load_imagenet("/data/imagenet_manual", "validation")
    ds = make_dataset(ds, None, dataset="imagenet2012", batch_size=256,
                      training=False)
    ```
    """
    if not isinstance(split, str) or split.split("[")[0] not in _IMAGENET_TARS:
        raise ValueError(
            f"`split` must be one of {list(_IMAGENET_TARS)} (optionally "
            f"sliced, e.g. 'train[:1%]'). Received: split={split!r}"
        )
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(
            "`data_dir` must be a path (str or os.PathLike) or None. "
            f"Received: data_dir={data_dir!r}"
        )
    base = split.split("[")[0]
    tfds = _tfds()
    try:
        builder = tfds.builder("imagenet2012", data_dir=_tfds_data_dir())
    except Exception as e:
        raise DataError(
            "tensorflow-datasets could not create the 'imagenet2012' builder:"
            f" {type(e).__name__}: {e}"
        ) from e

    if not builder.is_prepared():
        needed = [_IMAGENET_TARS["train"], _IMAGENET_TARS["validation"]]
        if base == "test":
            needed.append(_IMAGENET_TARS["test"])
        where = str(getattr(builder, "data_dir_root", None) or builder.data_dir)
        if data_dir is None:
            raise DataError(
                f"ImageNet is not prepared in {where!r} and no manual "
                f"directory was given. Download {', '.join(needed)} from "
                "https://image-net.org/download-images and pass their folder "
                "as `data_dir=` (command line: `--data-dir PATH`)."
            )
        manual = pathlib.Path(data_dir).expanduser()
        missing = [f for f in needed if not (manual / f).is_file()]
        if missing:
            raise DataError(
                f"ImageNet manual directory data_dir={str(manual)!r} lacks "
                f"{', '.join(missing)}. It must contain {', '.join(needed)}, "
                "downloaded by hand from https://image-net.org/download-images."
            )
        try:
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(
                    manual_dir=str(manual)
                )
            )
        except Exception as e:
            raise DataError(
                f"Preparing ImageNet from {str(manual)!r} failed: "
                f"{type(e).__name__}: {e}"
            ) from e
    try:
        return builder.as_dataset(
            split=split, as_supervised=True, shuffle_files=base == "train"
        )
    except Exception as e:
        raise DataError(
            f"Could not read ImageNet split {split!r}: {type(e).__name__}: {e}"
        ) from e


# --------------------------------------------------------------------------
# Pipelines.


def normalization_stats(dataset):
    """Returns the per-channel normalisation statistics of a data set.

    Args:
        dataset: str. A key of `DATASETS`.

    Returns:
        Tuple `(mean, std)` of float32 arrays of shape `(channels,)`, for
        images scaled to `[0, 1]`: the model input is `(x / 255 - mean) / std`.

    Raises:
        ValueError: for an unknown `dataset`.

    Example:

    >>> mean, std = normalization_stats("cifar10")
    >>> mean.shape
    (3,)
    """
    info = _check_dataset(dataset)
    return (
        np.asarray(info.mean, dtype=np.float32),
        np.asarray(info.std, dtype=np.float32),
    )


def _normalize(images, dataset):
    tf = _tf()
    mean, std = normalization_stats(dataset)
    images = tf.cast(images, tf.float32) / 255.0
    return (images - tf.constant(mean)) / tf.constant(std)


def _pad_crop_flip(image, seed, *, pad, flip):
    """Zero-pads `image` by `pad` pixels, crops it back, maybe flips it."""
    tf = _tf()
    shape = image.shape  # static (H, W, C)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    image = tf.image.stateless_random_crop(image, shape, seed=seeds[0])
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    return image


def _imagenet_geometry(image, training, seed=None):
    """Crops/resizes an ImageNet image to 224x224; float32 0..255."""
    tf = _tf()
    image = tf.convert_to_tensor(image)
    size = _IMAGENET_SIZE
    if training:
        bbox = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
        kwargs = dict(
            image_size=tf.shape(image),
            bounding_boxes=bbox,
            min_object_covered=0.0,
            aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        if seed is None:
            begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
                **kwargs
            )
        else:
            seeds = tf.random.experimental.stateless_split(seed, 2)
            sample = tf.image.stateless_sample_distorted_bounding_box
            begin, crop_size, _ = sample(seed=seeds[0], **kwargs)
        image = tf.slice(image, begin, crop_size)
        image = tf.image.resize(image, [size, size], method="bilinear")
        if seed is None:
            image = tf.image.random_flip_left_right(image)
        else:
            image = tf.image.stateless_random_flip_left_right(
                image, seed=seeds[1]
            )
    else:
        shape = tf.shape(image)
        h = tf.cast(shape[0], tf.float32)
        w = tf.cast(shape[1], tf.float32)
        scale = _IMAGENET_RESIZE / tf.minimum(h, w)
        new_h = tf.cast(tf.round(h * scale), tf.int32)
        new_w = tf.cast(tf.round(w * scale), tf.int32)
        image = tf.image.resize(image, [new_h, new_w], method="bilinear")
        top = (new_h - size) // 2
        left = (new_w - size) // 2
        image = tf.image.crop_to_bounding_box(image, top, left, size, size)
    image = tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0)
    return tf.ensure_shape(image, [size, size, 3])


def imagenet_preprocess(image, label, training, *, seed=None):
    """Standard ImageNet preprocessing for one image.

    Training: random-resized-crop to 224x224 (area 8%-100% of the image,
    aspect ratio 3/4-4/3, the whole image if no crop is found in 10 tries)
    and a random horizontal flip. Evaluation: resize the shorter side to 256
    and take the central 224x224 crop. Both then normalise per channel with
    the ImageNet mean and std.

    Args:
        image: uint8 tensor `(height, width, 3)`.
        label: integer tensor. Class id.
        training: bool. Whether to apply the random training transforms.
        seed: optional int32/int64 tensor of shape `(2,)`. Seed for
            stateless random ops; `None` uses stateful random ops.

    Returns:
        Tuple `(image, label)`: float32 `(224, 224, 3)` normalised image and
        int32 label.

    Example:

    ```python
    ds = load_imagenet(manual_dir, "validation")
    ds = ds.map(lambda x, y: imagenet_preprocess(x, y, training=False))
    ```
    """
    training = _check_bool("training", training)
    tf = _tf()
    image = _imagenet_geometry(image, training, seed)
    return _normalize(image, "imagenet2012"), tf.cast(label, tf.int32)


def make_dataset(
    x,
    y,
    *,
    dataset,
    batch_size,
    training,
    augment=True,
    strong_augment=None,
    shuffle_buffer=None,
    seed=None,
    drop_remainder=False,
):
    """Builds a batched, normalised `tf.data` pipeline for `model.fit`.

    Training pipelines shuffle (reshuffling every epoch) and, with
    `augment=True`, augment each image: for CIFAR a 4-pixel zero pad, a
    random 32x32 crop and a random horizontal flip; for digits a 1-pixel pad
    and random crop (a shift of up to one pixel) without flip, since digits
    are not mirror-invariant; for ImageNet `imagenet_preprocess`'s
    random-resized-crop and flip. Images are then normalised per channel,
    `(x / 255 - mean) / std` with the statistics in `DATASETS`. Evaluation
    pipelines (`training=False`) keep the order and only normalise (ImageNet:
    resize 256 and centre-crop 224), so they are deterministic.

    `strong_augment` adds, on top of the standard training augmentation, one
    of the Keras preprocessing layers:

    - `"randaugment"`: `keras.layers.RandAugment(value_range=(0, 255))` on
      each batch (two operations drawn per batch, their magnitudes per
      image; per-image application is about 10x slower on CPU); labels stay
      integer class ids.
    - `"mixup"`: `keras.layers.MixUp()` on each batch;
    - `"cutmix"`: `keras.layers.CutMix()` on each batch.

    MixUp and CutMix blend pairs of examples, so their labels are **soft**:
    float32 one-hot mixtures of shape `(batch, num_classes)`. They need a
    loss that accepts probability targets (e.g.
    `keras.losses.CategoricalCrossentropy`, not the sparse variant) and
    metrics for one-hot targets.

    The pipelines use only TensorFlow ops and Keras layers inside
    `Dataset.map`, so they work with `model.fit` on every Keras backend.

    Args:
        x: uint8 array `(N, H, W, C)` of images on the 0..255 scale (see
            `validate_arrays`), or a `tf.data.Dataset` of unbatched
            `(image, label)` pairs (e.g. from `load_imagenet`), then `y` must
            be None.
        y: integer array `(N,)` of class ids, or None with a dataset `x`.
        dataset: str. Key of `DATASETS`: selects the augmentation, the image
            shape and the normalisation statistics.
        batch_size: int. Batch size, >= 1.
        training: bool. Build a training (shuffled, augmented) or evaluation
            pipeline.
        augment: bool. Apply the standard augmentation when training.
        strong_augment: None or str. `"randaugment"`, `"mixup"` or
            `"cutmix"`; only with `training=True` and `augment=True`.
        shuffle_buffer: int or None. Shuffle buffer size; None uses the whole
            array (or 10,000 elements for a dataset `x`).
        seed: int or None. Seed for shuffling and augmentation; with a seed
            the pipeline yields the same sequence of epochs in every run.
        drop_remainder: bool. Drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset` yielding `(images, labels)`: float32 normalised
        images `(batch, H, W, C)` and int32 labels `(batch,)`, or float32
        soft labels `(batch, num_classes)` with MixUp/CutMix.

    Raises:
        ValueError: for invalid arguments or unsupported combinations
            (`strong_augment` without `training` and `augment`).
        TypeError: for arguments of the wrong type.
        DataError: if the arrays are malformed (see `validate_arrays`).

    Example:

    >>> (x_train, y_train), _ = load_arrays("digits")
    >>> ds = make_dataset(x_train, y_train, dataset="digits",
    ...                   batch_size=32, training=True, seed=0)
    >>> images, labels = next(iter(ds))
    >>> tuple(images.shape), tuple(labels.shape)
    ((32, 8, 8, 1), (32,))
    """
    info = _check_dataset(dataset)
    batch_size = _check_int("batch_size", batch_size, minimum=1)
    training = _check_bool("training", training)
    augment = _check_bool("augment", augment)
    drop_remainder = _check_bool("drop_remainder", drop_remainder)
    shuffle_buffer = _check_int(
        "shuffle_buffer", shuffle_buffer, minimum=1, allow_none=True
    )
    seed = _check_int("seed", seed, minimum=0, allow_none=True)
    if strong_augment is not None:
        if strong_augment not in STRONG_AUGMENTATIONS:
            raise ValueError(
                f"`strong_augment` must be None or one of "
                f"{list(STRONG_AUGMENTATIONS)}. "
                f"Received: strong_augment={strong_augment!r}"
            )
        if not training:
            raise ValueError(
                "`strong_augment` is a training augmentation and cannot be "
                "used with training=False. Received: "
                f"strong_augment={strong_augment!r}, training=False"
            )
        if not augment:
            raise ValueError(
                "`strong_augment` adds to the standard augmentation and "
                "needs augment=True. Received: "
                f"strong_augment={strong_augment!r}, augment=False"
            )

    tf = _tf()
    is_imagenet = dataset == "imagenet2012"
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(
                "When `x` is a tf.data.Dataset of (image, label) pairs, `y` "
                f"must be None. Received: y of type {type(y).__name__}"
            )
        spec = x.element_spec
        if (
            not isinstance(spec, tuple)
            or len(spec) != 2
            or not isinstance(spec[0], tf.TensorSpec)
            or spec[0].shape.rank != 3
        ):
            raise DataError(
                f"{dataset} dataset: `x` must yield unbatched (image, label) "
                "pairs with images of rank 3 (height, width, channels); got "
                f"element_spec={spec}."
            )
        if not is_imagenet and tuple(spec[0].shape) != info.image_shape:
            hint = ""
            shape = tuple(spec[0].shape)
            if shape[0] in (1, 3) and shape[1:] == info.image_shape[:2]:
                hint = (
                    " It looks channels-first; transpose the images to "
                    "(height, width, channels)."
                )
            raise DataError(
                f"{dataset} dataset: images must have shape "
                f"{info.image_shape}; got {shape}.{hint}"
            )
        if not (spec[0].dtype.is_integer or spec[0].dtype.is_floating):
            raise DataError(
                f"{dataset} dataset: images must be numeric (uint8 0..255); "
                f"got dtype {spec[0].dtype.name}."
            )
        label_shape = (
            spec[1].shape if isinstance(spec[1], tf.TensorSpec) else None
        )
        if (
            label_shape is None
            or label_shape.rank is None
            or label_shape.as_list() not in ([], [1])
        ):
            one_hot = ""
            if label_shape is not None and label_shape.as_list() == [
                info.num_classes
            ]:
                one_hot = (
                    " One-hot labels are not accepted; map them to class "
                    "ids, e.g. tf.argmax(label, -1)."
                )
            raise DataError(
                f"{dataset} dataset: labels must be scalar integer class ids; "
                f"got element_spec[1]={spec[1]}.{one_hot}"
            )
        if not spec[1].dtype.is_integer:
            raise DataError(
                f"{dataset} dataset: labels must be integer class ids; got "
                f"dtype {spec[1].dtype.name}."
            )
        if int(x.cardinality()) == 0:
            raise DataError(
                f"{dataset} dataset: `x` is empty (cardinality 0); it must "
                "yield at least one (image, label) pair."
            )
        ds = x
        buffer = shuffle_buffer or 10_000
    else:
        if y is None:
            raise ValueError(
                "`y` (integer labels) is required when `x` is an array. "
                "Received: y=None"
            )
        x, y = validate_arrays(
            x,
            y,
            info.num_classes,
            name=f"{dataset} {'train' if training else 'eval'} arrays",
            image_shape=None if is_imagenet else info.image_shape,
        )
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        buffer = shuffle_buffer or len(x)

    autotune = tf.data.AUTOTUNE
    do_augment = training and augment
    if training:
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    if do_augment:
        # Per-element seeds for stateless random ops: deterministic given
        # `seed`, different in every epoch.
        aug_seed = None if seed is None else seed + 1
        seeds = tf.data.Dataset.random(
            seed=aug_seed, rerandomize_each_iteration=True
        ).batch(2, drop_remainder=True)
        ds = tf.data.Dataset.zip((ds, seeds))
        if is_imagenet:

            def augment_fn(element, s):
                image, label = element
                return _imagenet_geometry(image, True, s), label

        else:
            pad, flip = (1, False) if dataset == "digits" else (4, True)

            def augment_fn(element, s):
                image, label = element
                image = _pad_crop_flip(image, s, pad=pad, flip=flip)
                return tf.cast(image, tf.float32), label

        ds = ds.map(augment_fn, num_parallel_calls=autotune)
    elif is_imagenet:
        ds = ds.map(
            lambda image, label: (_imagenet_geometry(image, False), label),
            num_parallel_calls=autotune,
        )

    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    if strong_augment == "randaugment":
        import keras

        # Applied to whole batches: about 10x faster than per image, since
        # the layer evaluates every candidate operation and selects with
        # `where`. The operations are drawn per batch, magnitudes per image.
        layer = keras.layers.RandAugment(
            value_range=(0, 255), seed=seed, data_format="channels_last"
        )
        ds = ds.map(
            lambda images, labels: (layer(tf.cast(images, tf.float32)), labels),
            num_parallel_calls=autotune,
        )

    if strong_augment in ("mixup", "cutmix"):
        import keras

        if strong_augment == "mixup":
            layer = keras.layers.MixUp(seed=seed, data_format="channels_last")
        else:
            layer = keras.layers.CutMix(seed=seed, data_format="channels_last")
        num_classes = info.num_classes

        def mix_fn(images, labels):
            out = layer(
                {
                    "images": tf.cast(images, tf.float32),
                    "labels": tf.one_hot(
                        tf.cast(labels, tf.int32), num_classes, dtype=tf.float32
                    ),
                }
            )
            return out["images"], tf.cast(out["labels"], tf.float32)

        ds = ds.map(mix_fn, num_parallel_calls=autotune)

        def finish(images, labels):
            return _normalize(images, dataset), labels

    else:

        def finish(images, labels):
            return _normalize(images, dataset), tf.cast(labels, tf.int32)

    ds = ds.map(finish, num_parallel_calls=autotune)
    return ds.prefetch(autotune)


# --------------------------------------------------------------------------
# tf.distribute strategies (used by `keras_ahbf.distribution`; they live here
# because this is the one module that imports TensorFlow, and the strategies
# decide how the pipelines above are sharded across replicas and workers).


def _tf_config_task():
    """(task index, number of workers) from `TF_CONFIG`, validated."""
    import json

    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "kind='multi-worker' needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}. Received: TF_CONFIG unset'
        )
    try:
        config = json.loads(raw)
        cluster = config["cluster"]
        task = config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"TF_CONFIG must be JSON with 'cluster' and 'task': {{'type', 'index'}} "
            f"({type(e).__name__}: {e}). Received: TF_CONFIG={raw!r}"
        ) from None
    workers = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
    if task_type not in ("chief", "worker") or not workers:
        raise ValueError(
            "TF_CONFIG must list the cluster's 'worker' (and optional 'chief') "
            f"addresses and give this process's task type 'worker' or 'chief'. "
            f"Received: TF_CONFIG={raw!r}"
        )
    members = len(cluster.get(task_type, []))
    if not 0 <= index < members:
        raise ValueError(
            f"TF_CONFIG task index {index} is outside the {members} '{task_type}' "
            f"address(es) of the cluster. Received: TF_CONFIG={raw!r}"
        )
    # The chief (or worker 0 when there is no chief) writes the run's files.
    if task_type == "worker" and "chief" in cluster:
        index += len(cluster["chief"])
    return index, len(workers)


def tf_distribute_strategy(kind, *, cpu_devices=None):
    """A `tf.distribute` strategy for `keras_ahbf.make_distribution`.

    Args:
        kind: str. `"mirrored"` (every local GPU, else `cpu_devices` logical
            CPUs) or `"multi-worker"` (one process per host, cluster from
            `TF_CONFIG`).
        cpu_devices: int or None. Without GPUs, the number of logical CPU
            devices to mirror over (`"mirrored"` only).

    Returns:
        `(strategy, worker_index, num_workers)`.

    Raises:
        ValueError: for an unknown `kind`, a `cpu_devices` that cannot be
            applied (TensorFlow already initialised its devices, or the
            machine has GPUs), or a missing/malformed `TF_CONFIG`.
    """
    tf = _tf()
    if kind == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            if cpu_devices not in (None, 1):
                raise ValueError(
                    f"`cpu_devices` only applies to machines without GPUs; this one "
                    f"has {len(gpus)}. Received: cpu_devices={cpu_devices}"
                )
            return tf.distribute.MirroredStrategy(), 0, 1
        count = cpu_devices or 1
        if count > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * count
                )
            except RuntimeError:
                if len(tf.config.list_logical_devices("CPU")) != count:
                    raise ValueError(
                        f"`cpu_devices={count}` can no longer be applied: TensorFlow "
                        "already initialised its devices. Create the distribution at "
                        "the start of the program, before any tensor or model."
                    ) from None
        devices = [f"/cpu:{i}" for i in range(count)]
        return tf.distribute.MirroredStrategy(devices), 0, 1
    if kind == "multi-worker":
        if cpu_devices not in (None, 1):
            raise ValueError(
                "`cpu_devices` applies to kind='mirrored' or 'data-parallel' only. "
                f"Received: kind='multi-worker', cpu_devices={cpu_devices}"
            )
        index, workers = _tf_config_task()
        return tf.distribute.MultiWorkerMirroredStrategy(), index, workers
    raise ValueError(
        f"`kind` must be 'mirrored' or 'multi-worker'. Received: kind={kind!r}"
    )
