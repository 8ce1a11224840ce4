"""Data sets read through tensorflow-datasets: CIFAR without a local copy,
and ImageNet (ILSVRC 2012) from its manually downloaded tar files.

Nothing is downloaded unless asked (`download=True`), and offline machines
get a `DataError` that says what to pass instead, after a connectivity probe
of a few seconds.
"""

from __future__ import annotations

import pathlib
import socket
import threading

import numpy as np

from keras_ahbf.data import _utils
from keras_ahbf.data.cifar import CIFAR_URL
from keras_ahbf.data.cifar import NPZ_KEYS
from keras_ahbf.data.cifar import PYTHON_BATCHES
from keras_ahbf.data.datasets import DATASETS
from keras_ahbf.data.validation import DataError

__all__ = ["load_imagenet"]

_DOWNLOAD_HOST = "www.cs.toronto.edu"
IMAGENET_TARS = {
    "train": "ILSVRC2012_img_train.tar",
    "validation": "ILSVRC2012_img_val.tar",
    "test": "ILSVRC2012_img_test.tar",
}


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
    folder = PYTHON_BATCHES[dataset][0]
    return (
        f"{dataset} is not available: {reason} Pass a local copy with "
        f"`data_dir=` (command line: `--data-dir PATH`): an .npz file with "
        f"{', '.join(NPZ_KEYS)}, a directory containing '{dataset}.npz', "
        f"or the extracted '{folder}' folder of the python version "
        f"({CIFAR_URL}). Alternatively prepare it with tensorflow-datasets "
        f"in {where} (set TFDS_DATA_DIR to use another directory), or pass "
        "`download=True` on a machine with internet access."
    )


def _builder(name):
    tfds = _utils.tfds()
    try:
        return tfds.builder(name, data_dir=_utils.tfds_data_dir())
    except Exception as e:
        raise DataError(
            f"tensorflow-datasets could not create the {name!r} builder: "
            f"{type(e).__name__}: {e}"
        ) from e


def _where(builder):
    return str(getattr(builder, "data_dir_root", None) or builder.data_dir)


def load_tfds_arrays(dataset, download, train_limit, test_limit):
    """`((x_train, y_train), (x_test, y_test))` of a CIFAR data set via tfds.

    Args:
        dataset: str. `"cifar10"` or `"cifar100"`.
        download: bool. Download and prepare the data set if needed.
        train_limit: int or None. Read only the first examples of "train".
        test_limit: int or None. Same for "test".

    Raises:
        DataError: if the data set is not prepared (and `download` is False
            or the download host cannot be reached) or cannot be read.
    """
    tfds = _utils.tfds()
    info = DATASETS[dataset]
    builder = _builder(info.tfds_name)
    where = _where(builder)

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
        TypeError: if `data_dir` is not a path or None.

    Example:

    ```python
    ds = load_imagenet("/data/imagenet_manual", "validation")
    ds = make_dataset(ds, None, dataset="imagenet2012", batch_size=256,
                      training=False)
    ```
    """
    if not isinstance(split, str) or split.split("[")[0] not in IMAGENET_TARS:
        raise ValueError(
            f"`split` must be one of {list(IMAGENET_TARS)} (optionally "
            f"sliced, e.g. 'train[:1%]'). Received: split={split!r}"
        )
    _utils.check_path("data_dir", data_dir)
    base = split.split("[")[0]
    builder = _builder("imagenet2012")
    if not builder.is_prepared():
        _prepare_imagenet(builder, data_dir, base)
    try:
        return builder.as_dataset(
            split=split, as_supervised=True, shuffle_files=base == "train"
        )
    except Exception as e:
        raise DataError(
            f"Could not read ImageNet split {split!r}: {type(e).__name__}: {e}"
        ) from e


def _prepare_imagenet(builder, data_dir, base):
    """Prepares ImageNet from the manual directory's tar files."""
    needed = [IMAGENET_TARS["train"], IMAGENET_TARS["validation"]]
    if base == "test":
        needed.append(IMAGENET_TARS["test"])
    if data_dir is None:
        raise DataError(
            f"ImageNet is not prepared in {_where(builder)!r} and no manual "
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
    tfds = _utils.tfds()
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
        )
    except Exception as e:
        raise DataError(
            f"Preparing ImageNet from {str(manual)!r} failed: "
            f"{type(e).__name__}: {e}"
        ) from e
