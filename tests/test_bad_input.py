"""Bad input, tried systematically (issue #6).

Table-driven: every case feeds one malformed input to the public API or to
the `keras-ahbf` command and checks that it is refused early, with the right
exception type (or, for the command, exit code 2 and a one-line message),
and with a message naming the problem (the argument, the file, the received
value). Command cases that touch an existing run or output directory also
check that it is left byte-for-byte unchanged.

Categories (see `CASES_PER_CATEGORY` at the end for the counts): ranks and
shapes, channels-first images, dtypes, NaN/inf pixels, empty data sets,
labels, fewer than 2 branches, `ahbf_loss` list arguments, corrupt `.keras`
files (including a corrupted checkpoint of a run being resumed), corrupt
run-state files, and corrupt data files in every local format `load_arrays`
reads (an `.npz` file, a directory holding one, the CIFAR python batches).

The cases that read a damaged checkpoint run in one subprocess with a
timeout (pytest-timeout is not a dependency), so a hang fails the test
instead of blocking the suite; everything else is small and in-process.
"""

import collections
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import types
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ahbf import _io
from keras_ahbf import cli
from keras_ahbf import data as D
from keras_ahbf import losses
from keras_ahbf.callbacks import EpochCheckpoint
from keras_ahbf.models import build_backbone
from keras_ahbf.models import resnet_cifar
from keras_ahbf.testing.data_files import tiny_cifar_npz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One case of a table. `call(ctx)` runs the bad input (library tables) or
# prepares it (command tables); `match` is a regex searched in the message.
Case = collections.namedtuple("Case", "category name call error match")


def _params(cases):
    return [pytest.param(c, id=f"{c.category}-{c.name}") for c in cases]


# --------------------------------------------------------------------------
# Helpers.


def _one_line_error(capsys, code, rc):
    """Asserts exit code `code` and a one-line `error:` message; returns it."""
    err = capsys.readouterr().err.strip()
    assert rc == code, err
    assert err.startswith("keras-ahbf ") and "error:" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def _snapshot(directory):
    """{relative path: sha256} of every file (and every folder) below."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), directory) + "/"] = "dir"
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _images(n=4, shape=(8, 8, 1), dtype="uint8", fill=0):
    return np.full((n, *shape), fill, dtype)


def _labels(n=4):
    return np.arange(n) % 10


def _make(x, y, **kwargs):
    options = dict(dataset="digits", batch_size=2, training=False)
    options.update(kwargs)
    return D.make_dataset(x, y, **options)


def _tfds(x, y=None):
    return tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))


def _logits(num_branches=3, batch=4, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    z = [rng.normal(size=(batch, classes)).astype("float32") for _ in range(num_branches)]
    e = [rng.normal(size=(batch, classes)).astype("float32") for _ in range(num_branches - 1)]
    return np.arange(batch) % classes, z, e


def _loss(y=None, z=None, e=None, **kwargs):
    y0, z0, e0 = _logits()
    return losses.ahbf_loss(y0 if y is None else y, z0 if z is None else z,
                            e0 if e is None else e, **kwargs)


def _with(items, index, value):
    items = list(items)
    items[index] = value
    return items


def _nan_at(shape, index, value=np.nan, dtype="float32"):
    x = np.full(shape, 100.0, dtype)
    x[index] = value
    return x


def _cifar(n=4, fill=None, dtype=np.uint8, shape=(32, 32, 3)):
    rng = np.random.default_rng(n)
    if fill is None:
        return rng.integers(0, 256, (n, *shape), dtype=np.uint8).astype(dtype)
    return np.full((n, *shape), fill, dtype)


def _one_hot(y, k=10):
    return np.eye(k)[y]


class _Ctx:
    """What the library cases need: a scratch folder and a small model."""

    _model = None

    def __init__(self, tmp):
        self.tmp = tmp

    @classmethod
    def model(cls):
        # One compiled model per module, never trained: every case below
        # must be refused before a training step.
        if cls._model is None:
            cls._model = resnet_cifar(8, num_classes=10, num_branches=2, aux=1,
                                      input_shape=(8, 8, 1))
            cls._model.compile("sgd")
        return cls._model

    def fit(self, x, y, **kwargs):
        return self.model().fit(x, y, epochs=1, verbose=0, **kwargs)

    @staticmethod
    def fresh_model():
        # For inputs refused only inside the first training step (by
        # `ahbf_loss`): on JAX a step that raises leaves the model's
        # variables unusable, so these cases do not share the model above.
        model = resnet_cifar(8, num_classes=10, num_branches=2, aux=1, input_shape=(8, 8, 1))
        model.compile("sgd")
        return model

    def evaluate(self, x, y):
        return self.model().evaluate(x, y, verbose=0)

    def path(self, name):
        return str(self.tmp / name)


def _channels_last_config(ctx):
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        resnet_cifar(8, num_classes=10, num_branches=2, aux=1, input_shape=(8, 8, 1))
    finally:
        keras.config.set_image_data_format(previous)


# ---- data files, in each format load_arrays reads.

_BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def _rows(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))


def _write_batches(parent, mutate=None, dataset="cifar10"):
    """The CIFAR python version in `parent`; `mutate(name, dict)` may return
    a changed dict, any picklable object, or `bytes` (the raw file)."""
    if dataset == "cifar10":
        folder, files, key = "cifar-10-batches-py", _BATCH_FILES, b"labels"
    else:
        folder, files, key = "cifar-100-python", ("train", "test"), b"fine_labels"
    folder = os.path.join(str(parent), folder)
    os.makedirs(folder)
    for i, name in enumerate(files):
        obj = {b"data": _rows(_cifar(2 + i % 2)), key: [i % 10, (i + 3) % 10] + [0] * (i % 2),
               b"batch_label": name.encode()}
        if mutate is not None:
            obj = mutate(name, obj)
        raw = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=2)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(raw)
    return str(parent)


def _only(target, change):
    """A `mutate` for `_write_batches` that changes one file."""
    return lambda name, obj: change(obj) if name == target else obj


def _truncated(raw, fraction=0.5):
    return raw[: int(len(raw) * fraction)]


def _write_bytes(path, raw):
    with open(path, "wb") as f:
        f.write(raw)
    return str(path)


def _npz_bytes(tmp, **overrides):
    path = tiny_cifar_npz(tmp / "_source.npz", **overrides)
    with open(path, "rb") as f:
        raw = f.read()
    os.remove(path)
    return raw


# The data-file builders below write a bad CIFAR-10 copy into `d` (a
# directory, the `--data-dir` of the run being resumed in the command cases)
# and return the path to pass to `load_arrays`.


def _npz_in(d, **overrides):
    return tiny_cifar_npz(d / "cifar10.npz", **overrides)


def _truncated_npz(d, fraction=0.5):
    raw = _npz_bytes(d)
    return _write_bytes(d / "cifar10.npz", _truncated(raw, fraction))


def _npy_as_npz(d):
    with open(d / "cifar10.npz", "wb") as f:
        np.save(f, _cifar(4))
    return str(d / "cifar10.npz")


def _pickle_as_npz(d):
    return _write_bytes(d / "cifar10.npz", pickle.dumps({"x_train": [1, 2, 3]}))


def _wrong_keys_npz(d):
    np.savez(d / "cifar10.npz", images=_cifar(4), labels=np.arange(4))
    return str(d / "cifar10.npz")


DATA_FILES = {
    # name: (category, builder(d) -> data_dir, regex)
    "npz_truncated_half": (
        "corrupt_data_files", _truncated_npz,
        r"cifar10\.npz.*not a valid zip archive: truncated"),
    "npz_truncated_header": (
        "corrupt_data_files", lambda d: _truncated_npz(d, 0.02),
        r"cifar10\.npz.*not a valid zip archive"),
    "npz_zero_bytes": (
        "corrupt_data_files", lambda d: _write_bytes(d / "cifar10.npz", b""),
        r"cifar10\.npz' is empty \(0 bytes\)"),
    "npz_random_bytes": (
        "corrupt_data_files",
        lambda d: _write_bytes(d / "cifar10.npz", np.random.default_rng(0).bytes(4096)),
        r"cifar10\.npz' is not an \.npz archive.*does not start with the zip signature"),
    "npz_is_an_npy_file": (
        "corrupt_data_files", _npy_as_npz, r"cifar10\.npz' holds a single array.*\.npy"),
    "npz_is_a_pickle": (
        "corrupt_data_files", _pickle_as_npz,
        r"cifar10\.npz' is not an \.npz archive.*first bytes b'\\x80"),
    "npz_object_arrays": (
        "corrupt_data_files",
        lambda d: _npz_in(d, y_train=np.array([0, 1, None, 3, 4, 5, 6, 7], dtype=object)),
        r"cifar10\.npz.*Object arrays cannot be loaded"),
    "npz_wrong_keys": (
        "corrupt_data_files", _wrong_keys_npz,
        r"cifar10\.npz' is missing the array\(s\).*found \['images', 'labels'\]"),
    "npz_two_candidates": (
        "corrupt_data_files",
        lambda d: (tiny_cifar_npz(d / "cifar10_a.npz"), tiny_cifar_npz(d / "cifar10_b.npz"), str(d))[-1],
        r"several candidate files \['cifar10_a\.npz', 'cifar10_b\.npz'\]"),
    "batches_truncated_pickle": (
        "corrupt_data_files",
        lambda d: _write_batches(d, _only("data_batch_2", lambda o: _truncated(
            pickle.dumps(o, protocol=2)))),
        r"data_batch_2.*UnpicklingError: pickle data was truncated"),
    "batches_zero_byte_file": (
        "corrupt_data_files", lambda d: _write_batches(d, _only("test_batch", lambda o: b"")),
        r"test_batch.*EOFError"),
    "batches_not_a_dict": (
        "corrupt_data_files", lambda d: _write_batches(d, _only("test_batch", lambda o: [1, 2])),
        r"test_batch' does not hold a dict \(got list\)"),
    "batches_ragged_data": (
        "corrupt_data_files",
        lambda d: _write_batches(d, _only("data_batch_1", lambda o: {**o, b"data": [[1, 2], [3]]})),
        r"data_batch_1.*'data' and 'labels' must be arrays or lists"),
    "batches_labels_not_a_list": (
        "corrupt_data_files",
        lambda d: _write_batches(d, _only("data_batch_3", lambda o: {**o, b"labels": 7})),
        r"data_batch_3.*'labels' must be a list of class ids; got shape \(\)"),
    "batches_label_count": (
        "corrupt_data_files",
        lambda d: _write_batches(d, _only("data_batch_1", lambda o: {**o, b"labels": [0, 1, 2]})),
        r"data_batch_1.*2 images but 3 labels"),
    # Data files whose arrays are readable but malformed: the category is
    # what is wrong with them.
    "npz_images_rank3": (
        "ranks_shapes", lambda d: _npz_in(d, x_train=np.zeros((8, 32, 32), np.uint8)),
        r"train split.*rank-4.*got rank 3 with shape \(8, 32, 32\)"),
    "npz_images_28x28": (
        "ranks_shapes", lambda d: _npz_in(d, x_test=_cifar(4, shape=(28, 28, 3))),
        r"test split.*\(N, 32, 32, 3\).*got \(4, 28, 28, 3\)"),
    "npz_channels_first": (
        "channels_first", lambda d: _npz_in(d, x_test=_cifar(4).transpose(0, 3, 1, 2)),
        r"test split.*\(4, 3, 32, 32\).*channels-first"),
    "npz_images_0_to_1": (
        "dtypes", lambda d: _npz_in(d, x_train=_cifar(8).astype("float32") / 255.0),
        r"train split.*float images.*scaled to \[0, 1\]"),
    "npz_string_labels": (
        "dtypes", lambda d: _npz_in(d, y_test=np.array(["cat", "dog", "cat", "dog"])),
        r"test split.*labels must be integer class ids; got dtype <U3"),
    "npz_uint16_pixels": (
        "dtypes", lambda d: _npz_in(d, x_train=_cifar(8, fill=1000, dtype=np.uint16)),
        r"train split.*pixel values must lie in \[0, 255\].*uint16"),
    "npz_inf_pixel": (
        "nan_inf", lambda d: _npz_in(d, x_test=_nan_at((4, 32, 32, 3), (2, 5, 6, 1), np.inf)),
        r"test split.*1 NaN/inf value\(s\); first at index \(2, 5, 6, 1\) \(value inf\)"),
    "batches_nan_pixel": (
        "nan_inf",
        lambda d: _write_batches(d, _only("test_batch", lambda o: {
            **o, b"data": _nan_at((len(o[b"labels"]), 3072), (1, 7))})),
        r"test split.*NaN/inf"),
    "npz_zero_rows": (
        "empty",
        lambda d: _npz_in(d, x_train=_cifar(0), y_train=np.zeros(0, np.int64)),
        r"train split.*images are empty \(shape \(0, 32, 32, 3\)\)"),
    "batches_empty_test_batch": (
        "empty",
        lambda d: _write_batches(d, _only("test_batch", lambda o: {
            **o, b"data": np.zeros((0, 3072), np.uint8), b"labels": []})),
        r"test split.*images are empty"),
    "npz_negative_label": (
        "labels", lambda d: _npz_in(d, y_test=np.array([0, 1, -1, 3])),
        r"test split.*label -1 at index 2 is outside \[0, 10\)"),
    "npz_one_hot_labels": (
        "labels", lambda d: _npz_in(d, y_train=_one_hot(np.arange(8) % 10)),
        r"train split.*got shape \(8, 10\).*One-hot"),
    "npz_label_count": (
        "labels", lambda d: _npz_in(d, y_test=np.arange(3)),
        r"test split.*4 images but 3 labels"),
    "batches_label_10": (
        "labels",
        lambda d: _write_batches(d, _only("data_batch_4", lambda o: {
            **o, b"labels": o[b"labels"][:-1] + [10]})),
        r"train split.*label 10 at index \d+ is outside \[0, 10\)"),
}

# The command cases (resuming a run whose data went bad) use a subset: the
# library cases already cover each format; these check the one-line error
# and that the run directory is untouched.
CLI_DATA_CASES = [
    "npz_truncated_half", "npz_zero_bytes", "npz_is_an_npy_file", "npz_wrong_keys",
    "batches_truncated_pickle", "batches_not_a_dict", "npz_images_rank3",
    "npz_channels_first", "npz_images_0_to_1", "npz_inf_pixel", "batches_nan_pixel",
    "npz_zero_rows", "npz_negative_label", "npz_one_hot_labels", "batches_label_10",
]


def _load_bad_file(builder):
    def call(ctx):
        d = ctx.tmp / "data"
        d.mkdir()
        D.load_arrays("cifar10", builder(d))
    return call


# --------------------------------------------------------------------------
# Library cases: (category, name, call(ctx), exception, regex).

LIBRARY_CASES = [
    # ---------------------------------------------------------- ranks, shapes
    Case("ranks_shapes", "loss_logits_rank1",
         lambda ctx: _loss(z=[t[0] for t in _logits()[1]], e=[t[0] for t in _logits()[2]]),
         ValueError, r"`branch_logits\[0\]` must be a 2D.*shape=\(5,\)"),
    Case("ranks_shapes", "loss_logits_rank3",
         lambda ctx: _loss(z=[t[None] for t in _logits()[1]], e=[t[None] for t in _logits()[2]]),
         ValueError, r"`branch_logits\[0\]` must be a 2D.*shape=\(1, 4, 5\)"),
    Case("ranks_shapes", "loss_class_count_mismatch",
         lambda ctx: _loss(e=_with(_logits()[2], 1, np.zeros((4, 6), "float32"))),
         ValueError, r"number of classes.*branch_logits\[0\]\.shape=\(4, 5\) and "
                     r"fused_logits\[1\]\.shape=\(4, 6\)"),
    Case("ranks_shapes", "loss_batch_mismatch",
         lambda ctx: _loss(z=_with(_logits()[1], 2, np.zeros((3, 5), "float32"))),
         ValueError, r"batch size.*branch_logits\[2\]\.shape=\(3, 5\)"),
    Case("ranks_shapes", "loss_sample_weight_length",
         lambda ctx: _loss(sample_weight=np.ones(3)),
         ValueError, r"`sample_weight` must have shape \(batch,\) = \(4,\).*shape=\(3,\)"),
    Case("ranks_shapes", "kl_shape_mismatch",
         lambda ctx: losses.kl_with_temperature(np.zeros((4, 5)), np.zeros((4, 7))),
         ValueError, r"`student_logits` and `teacher_logits` must have the same shape.*"
                     r"number of classes.*teacher_logits\.shape=\(4, 7\)"),
    Case("ranks_shapes", "make_dataset_flat_images",
         lambda ctx: _make(np.zeros((4, 64), np.uint8), _labels()),
         D.DataError, r"rank-4.*got rank 2 with shape \(4, 64\)"),
    Case("ranks_shapes", "make_dataset_rank5_images",
         lambda ctx: _make(np.zeros((4, 2, 8, 8, 1), np.uint8), _labels()),
         D.DataError, r"rank-4.*got rank 5"),
    Case("ranks_shapes", "make_dataset_wrong_image_size",
         lambda ctx: _make(_images(shape=(16, 16, 1)), _labels()),
         D.DataError, r"\(N, 8, 8, 1\).*got \(4, 16, 16, 1\)"),
    Case("ranks_shapes", "make_dataset_batched_dataset",
         lambda ctx: _make(_tfds(_images(), _labels()).batch(2), None),
         D.DataError, r"unbatched \(image, label\) pairs.*shape=\(None, 8, 8, 1\)"),
    Case("ranks_shapes", "make_dataset_dataset_without_labels",
         lambda ctx: _make(_tfds(_images()), None),
         D.DataError, r"unbatched \(image, label\) pairs.*element_spec=TensorSpec"),
    Case("ranks_shapes", "fit_flat_images",
         lambda ctx: ctx.fit(np.zeros((4, 64), "float32"), _labels()),
         ValueError, r"`x` must be a 4D array.*shape \(4, 64\)"),
    Case("ranks_shapes", "fit_validation_images_wrong_size",
         lambda ctx: ctx.fit(_images(dtype="float32"), _labels(),
                             validation_data=(_images(shape=(16, 16, 1), dtype="float32"),
                                              _labels())),
         ValueError, r"`validation_data\[0\]` must have images of shape \(8, 8, 1\).*"
                     r"\(4, 16, 16, 1\)"),
    Case("ranks_shapes", "model_input_shape_rank2",
         lambda ctx: resnet_cifar(8, num_classes=10, num_branches=2, input_shape=(32, 32)),
         ValueError, r"`input_shape` must be \(height, width, channels\).*input_shape=\(32, 32\)"),
    Case("ranks_shapes", "model_input_shape_zero",
         lambda ctx: resnet_cifar(8, num_classes=10, num_branches=2, input_shape=(0, 8, 1)),
         ValueError, r"input_shape=\(0, 8, 1\)"),
    # --------------------------------------------------------- channels-first
    Case("channels_first", "make_dataset_arrays",
         lambda ctx: _make(_images(shape=(1, 8, 8)), _labels()),
         D.DataError, r"got shape \(4, 1, 8, 8\).*looks channels-first"),
    Case("channels_first", "make_dataset_cifar_arrays",
         lambda ctx: _make(_cifar(4).transpose(0, 3, 1, 2), _labels(), dataset="cifar10"),
         D.DataError, r"got shape \(4, 3, 32, 32\).*looks channels-first"),
    Case("channels_first", "make_dataset_tf_dataset",
         lambda ctx: _make(_tfds(_cifar(4).transpose(0, 3, 1, 2), _labels()), None,
                           dataset="cifar10"),
         D.DataError, r"\(32, 32, 3\); got \(3, 32, 32\).*looks channels-first"),
    Case("channels_first", "fit_images",
         lambda ctx: ctx.fit(_images(shape=(1, 8, 8), dtype="float32"), _labels()),
         ValueError, r"look channels-first.*shape \(4, 1, 8, 8\)"),
    Case("channels_first", "model_input_shape",
         lambda ctx: resnet_cifar(8, num_classes=10, num_branches=2, input_shape=(3, 32, 32)),
         ValueError, r"looks channels-first.*input_shape=\(3, 32, 32\)"),
    Case("channels_first", "keras_image_data_format",
         _channels_last_config,
         ValueError, r"channels-last.*image_data_format\(\)='channels_first'"),
    # ----------------------------------------------------------------- dtypes
    Case("dtypes", "loss_string_logits",
         lambda ctx: _loss(z=_with(_logits()[1], 1, np.full((4, 5), "a"))),
         TypeError, r"`branch_logits\[1\]` must be a float tensor.*dtype <U1"),
    Case("dtypes", "loss_string_labels",
         lambda ctx: _loss(y=np.array(["a", "b", "c", "d"])),
         TypeError, r"`y_true` must hold integer class labels.*dtype <U1"),
    Case("dtypes", "loss_stop_gradient_not_bool",
         lambda ctx: _loss(stop_teacher_gradient="yes"),
         TypeError, r"stop_teacher_gradient='yes'"),
    Case("dtypes", "loss_temperature_string",
         lambda ctx: _loss(temperature="3"),
         TypeError, r"`temperature` must be a number.*temperature='3'"),
    Case("dtypes", "make_dataset_object_images",
         lambda ctx: _make(np.full((4, 8, 8, 1), None), _labels()),
         D.DataError, r"images must be a numeric array.*dtype object"),
    Case("dtypes", "make_dataset_dataset_bool_images",
         lambda ctx: _make(_tfds(_images(dtype=bool), _labels()), None),
         D.DataError, r"images must be numeric.*dtype bool"),
    Case("dtypes", "make_dataset_dataset_string_labels",
         lambda ctx: _make(_tfds(_images(), np.array(["a", "b", "c", "d"])), None),
         D.DataError, r"labels must be integer class ids; got dtype string"),
    Case("dtypes", "make_dataset_dataset_float_labels",
         lambda ctx: _make(_tfds(_images(), np.array([0.0, 1.0, 2.5, 3.0])), None),
         D.DataError, r"labels must be integer class ids; got dtype float64"),
    Case("dtypes", "fit_object_images",
         lambda ctx: ctx.fit(np.full((4, 8, 8, 1), None), _labels()),
         TypeError, r"`x` must hold numeric images.*dtype object"),
    Case("dtypes", "fit_object_labels",
         lambda ctx: ctx.fit(_images(dtype="float32"), np.array([0, 1, None, 3])),
         TypeError, r"`y` must hold integer class labels.*dtype object"),
    # ---------------------------------------------------------------- NaN/inf
    Case("nan_inf", "make_dataset_one_nan",
         lambda ctx: _make(_nan_at((4, 8, 8, 1), (1, 2, 3, 0)), _labels()),
         D.DataError, r"1 NaN/inf value\(s\); first at index \(1, 2, 3, 0\) \(value nan\)"),
    Case("nan_inf", "make_dataset_minus_inf_float64",
         lambda ctx: _make(_nan_at((4, 8, 8, 1), (3, 0, 0, 0), -np.inf, "float64"), _labels()),
         D.DataError, r"NaN/inf.*\(3, 0, 0, 0\) \(value -inf\)"),
    Case("nan_inf", "make_dataset_float16_inf",
         lambda ctx: _make(_nan_at((4, 8, 8, 1), (0, 7, 7, 0), np.inf, "float16"), _labels()),
         D.DataError, r"NaN/inf.*\(0, 7, 7, 0\) \(value inf\)"),
    Case("nan_inf", "fit_one_inf_pixel",
         lambda ctx: ctx.fit(_nan_at((4, 8, 8, 1), (2, 1, 1, 0), np.inf), _labels()),
         ValueError, r"`x` contains 1 NaN or infinite"),
    Case("nan_inf", "fit_validation_nan",
         lambda ctx: ctx.fit(_images(dtype="float32"), _labels(),
                             validation_data=(_nan_at((4, 8, 8, 1), (0, 0, 0, 0)), _labels())),
         ValueError, r"`validation_data\[0\]` contains 1 NaN"),
    Case("nan_inf", "evaluate_minus_inf",
         lambda ctx: ctx.evaluate(_nan_at((4, 8, 8, 1), (3, 3, 3, 0), -np.inf), _labels()),
         ValueError, r"`x` contains 1 NaN or infinite"),
    # ------------------------------------------------------------------ empty
    Case("empty", "make_dataset_zero_rows",
         lambda ctx: _make(_images(0), _labels(0)),
         D.DataError, r"images are empty \(shape \(0, 8, 8, 1\)\)"),
    Case("empty", "make_dataset_empty_axis",
         lambda ctx: _make(_images(shape=(0, 8, 1)), _labels()),
         D.DataError, r"images have an empty axis: \(4, 0, 8, 1\)"),
    Case("empty", "make_dataset_no_labels",
         lambda ctx: _make(_images(), np.zeros(0, np.int64)),
         D.DataError, r"labels are empty \(shape \(0,\)\)"),
    Case("empty", "make_dataset_empty_tf_dataset",
         lambda ctx: _make(_tfds(_images(0), _labels(0)), None),
         D.DataError, r"`x` is empty \(cardinality 0\)"),
    Case("empty", "make_dataset_empty_cifar_dataset",
         lambda ctx: _make(_tfds(_cifar(0), _labels(0)), None, dataset="cifar10", training=True),
         D.DataError, r"cifar10 dataset: `x` is empty"),
    Case("empty", "fit_empty_validation_data",
         lambda ctx: ctx.fit(_images(dtype="float32"), _labels(),
                             validation_data=(_images(0, dtype="float32"), _labels(0))),
         ValueError, r"`validation_data\[0\]` is empty.*shape \(0, 8, 8, 1\)"),
    # ----------------------------------------------------------------- labels
    Case("labels", "loss_label_too_big",
         lambda ctx: _loss(y=np.array([0, 1, 2, 7])),
         ValueError, r"labels in \[0, 5\).*y_true\[3\]=7"),
    Case("labels", "loss_negative_label",
         lambda ctx: _loss(y=np.array([0, -1, 2, 3])),
         ValueError, r"labels in \[0, 5\).*y_true\[1\]=-1"),
    Case("labels", "loss_fractional_label",
         lambda ctx: _loss(y=np.array([0.0, 1.5, 2.0, 3.0])),
         ValueError, r"integer class labels.*y_true\[1\]=1\.5"),
    Case("labels", "loss_nan_label",
         lambda ctx: _loss(y=np.array([0.0, 1.0, np.nan, 3.0])),
         ValueError, r"integer class labels.*y_true\[2\]=nan"),
    Case("labels", "loss_one_hot_labels",
         lambda ctx: _loss(y=_one_hot(np.arange(4), 5)),
         ValueError, r"one-hot.*y_true\.shape=\(4, 5\)"),
    Case("labels", "loss_label_count",
         lambda ctx: _loss(y=np.arange(3)),
         ValueError, r"batch of 4.*y_true\.shape=\(3,\)"),
    Case("labels", "loss_labels_none",
         lambda ctx: losses.ahbf_loss(None, *_logits()[1:]),
         ValueError, r"`y_true` is required.*y_true=None"),
    Case("labels", "cross_entropy_one_hot",
         lambda ctx: losses.cross_entropy(_one_hot(np.arange(4), 5), _logits()[1][0]),
         ValueError, r"one-hot.*y_true\.shape=\(4, 5\)"),
    Case("labels", "make_dataset_labels_rank3",
         lambda ctx: _make(_images(), np.zeros((4, 1, 1), np.int64)),
         D.DataError, r"labels must have shape \(N,\) or \(N, 1\); got shape \(4, 1, 1\)"),
    Case("labels", "make_dataset_cifar100_label_100",
         lambda ctx: _make(_cifar(4), np.array([0, 99, 100, 5]), dataset="cifar100"),
         D.DataError, r"label 100 at index 2 is outside \[0, 100\)"),
    Case("labels", "make_dataset_dataset_one_hot",
         lambda ctx: _make(_tfds(_images(), _one_hot(_labels())), None),
         D.DataError, r"element_spec\[1\]=TensorSpec\(shape=\(10,\).*One-hot"),
    Case("labels", "fit_nan_label",
         lambda ctx: ctx.fit(_images(dtype="float32"), np.array([0.0, np.nan, 1.0, 2.0])),
         ValueError, r"`y` must hold integer class labels"),
    Case("labels", "fit_labels_rank3",
         lambda ctx: ctx.fit(_images(dtype="float32"), np.zeros((4, 1, 1), np.int64)),
         ValueError, r"`y` must hold one integer label per image.*shape \(4, 1, 1\)"),
    Case("labels", "fit_validation_label_10",
         lambda ctx: ctx.fit(_images(dtype="float32"), _labels(),
                             validation_data=(_images(dtype="float32"), np.array([0, 10, 1, 2]))),
         ValueError, r"`validation_data\[1\]` must hold labels in \[0, 10\).*10"),
    Case("labels", "fit_tf_dataset_one_hot_labels",
         lambda ctx: ctx.fresh_model().fit(
             _tfds(_images(dtype="float32"), _one_hot(_labels())).batch(2), verbose=0),
         # (`ahbf_loss` refuses it in the first step; a check of the
         # dataset's element_spec in `fit` would say "labels of shape".)
         ValueError, r"one-hot.*Received: (y_true\.shape=|labels of shape )\((None|2), 10\)"),
    Case("labels", "fit_arrays_without_labels",
         lambda ctx: ctx.fresh_model().fit(_images(dtype="float32"), None, verbose=0),
         ValueError, r"`y_true` is required.*y_true=None"),
    Case("labels", "evaluate_tf_dataset_without_labels",
         lambda ctx: ctx.fresh_model().evaluate(_tfds(_images(dtype="float32")).batch(2),
                                                verbose=0),
         ValueError, r"`y_true` is required.*y_true=None|`x` must yield \(images, labels\)"),
    # ------------------------------------------------- fewer than 2 branches
    *[
        Case("branches", f"resnet_num_branches_{type(value).__name__}_{value}",
             lambda ctx, value=value: resnet_cifar(8, num_classes=10, num_branches=value),
             error, rf"`num_branches` must be .*Received: num_branches={re.escape(repr(value))}")
        for value, error in ((1, ValueError), (0, ValueError), (-2, ValueError),
                             (2.0, TypeError), (True, TypeError), (None, TypeError),
                             ("4", TypeError))
    ],
    *[
        Case("branches", f"{name}_one_branch",
             lambda ctx, name=name: build_backbone(name, num_classes=10, num_branches=1),
             ValueError, r"`num_branches` must be >= 2\. Received: num_branches=1")
        for name in ("vgg16", "mobilenetv2", "densenet40", "resnet18_imagenet")
    ],
    Case("branches", "loss_one_branch",
         lambda ctx: _loss(z=_logits()[1][:1], e=[]),
         ValueError, r"at least 2 branches.*len\(branch_logits\)=1"),
    Case("branches", "loss_no_branch",
         lambda ctx: _loss(z=[], e=[]),
         ValueError, r"at least 2 branches.*len\(branch_logits\)=0"),
    # ---------------------------------------------- ahbf_loss list arguments
    Case("ahbf_loss_lists", "fused_one_too_many",
         lambda ctx: _loss(e=_logits()[2] * 2),
         ValueError, r"len\(branch_logits\) - 1 = 2\. Received: len\(fused_logits\)=4"),
    Case("ahbf_loss_lists", "fused_empty",
         lambda ctx: _loss(e=[]),
         ValueError, r"len\(branch_logits\) - 1 = 2\. Received: len\(fused_logits\)=0"),
    Case("ahbf_loss_lists", "four_branches_two_fused",
         lambda ctx: _loss(z=_logits(4)[1], e=_logits(4)[2][:2]),
         ValueError, r"len\(branch_logits\) - 1 = 3\. Received: len\(fused_logits\)=2"),
    Case("ahbf_loss_lists", "fused_none",
         lambda ctx: losses.ahbf_loss(_logits()[0], _logits()[1], None),
         TypeError, r"`fused_logits` must be a list.*NoneType"),
    Case("ahbf_loss_lists", "branches_dict",
         lambda ctx: _loss(z={"target": _logits()[1][0]}),
         TypeError, r"`branch_logits` must be a list.*type dict"),
    Case("ahbf_loss_lists", "branches_generator",
         lambda ctx: _loss(z=(t for t in _logits()[1])),
         TypeError, r"`branch_logits` must be a list.*type generator"),
    Case("ahbf_loss_lists", "fused_stacked_array",
         lambda ctx: _loss(e=np.stack(_logits()[2])),
         TypeError, r"`fused_logits` must be a list.*type ndarray"),
    Case("ahbf_loss_lists", "fused_element_none",
         lambda ctx: _loss(e=_with(_logits()[2], 0, None)),
         TypeError, r"`fused_logits\[0\]` must be a tensor.*fused_logits\[0\]=None"),
    Case("ahbf_loss_lists", "branch_element_ragged_list",
         lambda ctx: _loss(z=_with(_logits()[1], 1, [[1.0, 2.0], [3.0]])),
         TypeError, r"`branch_logits\[1\]` must be a tensor or array"),
    # ------------------------------------------------- corrupt data files
    *[
        Case(category, f"load_arrays_{name}", _load_bad_file(builder), D.DataError, match)
        for name, (category, builder, match) in DATA_FILES.items()
    ],
    Case("corrupt_data_files", "load_arrays_cifar100_without_fine_labels",
         lambda ctx: D.load_arrays("cifar100", _write_batches(
             ctx.tmp, lambda n, o: {b"data": o[b"data"], b"coarse_labels": [0, 1]},
             dataset="cifar100")),
         D.DataError, r"cifar-100-python/train' has no 'fine_labels' entry"),
]


@pytest.mark.parametrize("case", _params(LIBRARY_CASES))
def test_library_rejects_bad_input(case, tmp_path):
    with pytest.raises(case.error) as info:
        case.call(_Ctx(tmp_path))
    message = str(info.value)
    assert re.search(case.match, message, re.S), message
    assert "Traceback" not in message
    if _Ctx._model is not None:  # Nothing was trained.
        assert int(keras.ops.convert_to_numpy(_Ctx._model.optimizer.iterations)) == 0


# --------------------------------------------------------------------------
# Command cases.


def _cli_error(capsys, argv):
    capsys.readouterr()  # Forget what earlier steps printed.
    return _one_line_error(capsys, 2, cli.main(argv))


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    """A CIFAR-10 run stopped after epoch 1 of 2, so re-running resumes it.

    Its `--data-dir` is a folder whose content the data cases replace by a
    bad copy (and restore afterwards).
    """
    root = tmp_path_factory.mktemp("bad_input")
    data_dir = root / "data"
    data_dir.mkdir()
    good = tiny_cifar_npz(data_dir / "cifar10.npz")
    run = str(root / "run")
    argv = ["train", "--dataset", "cifar10", "--data-dir", str(data_dir),
            "--backbone", "resnet8", "--num-branches", "2", "--aux", "1",
            "--batch-size", "8", "--epochs", "2", "--verbose", "0", "--output", run]
    original = EpochCheckpoint.on_epoch_end

    def stop_after_one_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        self.model.stop_training = True

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EpochCheckpoint, "on_epoch_end", stop_after_one_epoch)
        assert cli.main(argv) == 0
    state = EpochCheckpoint.read_state(run)
    assert state["epochs_completed"] == 1 and state["model_class"] == "OnlineKDModel"
    with open(good, "rb") as f:
        good_bytes = f.read()
    return types.SimpleNamespace(root=root, run=run, data_dir=data_dir, argv=argv,
                                 good_npz=good_bytes)


@pytest.mark.parametrize(
    "case",
    _params(Case(DATA_FILES[n][0], f"train_resume_{n}", DATA_FILES[n][1], 2, DATA_FILES[n][2])
            for n in CLI_DATA_CASES),
)
def test_cli_resume_with_bad_data_is_refused(case, cifar_run, capsys):
    before = _snapshot(cifar_run.run)
    data_dir = cifar_run.data_dir
    shutil.rmtree(data_dir)
    data_dir.mkdir()
    try:
        case.call(data_dir)
        err = _cli_error(capsys, cifar_run.argv)
    finally:
        shutil.rmtree(data_dir)
        data_dir.mkdir()
        _write_bytes(data_dir / "cifar10.npz", cifar_run.good_npz)
    assert re.search(case.match, err), err
    assert _snapshot(cifar_run.run) == before


CLI_OPTION_CASES = [
    Case("branches", "train_num_branches_0", ["--num-branches", "0"], 2,
         r"`num_branches` must be >= 2\. Received: num_branches=0"),
    Case("branches", "train_num_branches_negative", ["--num-branches", "-1"], 2,
         r"num_branches=-1"),
    Case("ranks_shapes", "evaluate_cifar_model_on_digits", None, 2,
         r"expects images of shape \(32, 32, 3\), but digits images are \(8, 8, 1\)"),
]


@pytest.mark.parametrize("case", _params(CLI_OPTION_CASES))
def test_cli_bad_options_are_refused(case, cifar_run, tmp_path, capsys):
    if case.call is None:  # A model of another image shape.
        before = _snapshot(cifar_run.run)
        err = _cli_error(capsys, ["evaluate", cifar_run.run, "--dataset", "digits"])
        assert _snapshot(cifar_run.run) == before
    else:
        out = str(tmp_path / "run")
        err = _cli_error(capsys, ["train", "--dataset", "digits", "--train-limit", "16",
                                  "--epochs", "1", "--verbose", "0", *case.call,
                                  "--output", out])
        assert not os.path.exists(out)
    assert re.search(case.match, err), err


# ---- corrupt .keras files given to `evaluate` and `export`.


def _good_keras(ctx):
    return os.path.join(ctx.run, "checkpoints", "epoch_0001.keras")


def _rewrite_zip(source, target, drop=(), replace=None):
    replace = replace or {}
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            zout.writestr(name, replace.get(name, zin.read(name)))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _plain_model(path):
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)])
    model.save(path)


KERAS_FILES = {
    # name: (writer(path, ctx), regex)
    "truncated": (lambda p, c: _write_bytes(p, _truncated(_read(_good_keras(c)))), r"zip"),
    "random_bytes": (lambda p, c: _write_bytes(p, np.random.default_rng(1).bytes(5000)),
                     r"zip"),
    "empty_file": (lambda p, c: _write_bytes(p, b""), r"zip|empty"),
    "zip_without_config": (
        lambda p, c: _rewrite_zip(_good_keras(c), p, drop=("config.json",)), r"config\.json"),
    "config_not_json": (
        lambda p, c: _rewrite_zip(_good_keras(c), p, replace={"config.json": b"{oops"}),
        r"JSONDecodeError"),
    "zip_without_weights": (
        lambda p, c: _rewrite_zip(_good_keras(c), p, drop=("model.weights.h5",)),
        r"model\.weights"),
}


def _keras_cases():
    cases = []
    for command in ("evaluate", "export"):
        for name, (writer, match) in KERAS_FILES.items():
            cases.append(Case("corrupt_keras_files", f"{command}_{name}", (command, writer), 2,
                              match))
    # A valid .keras file of a different model.
    cases.append(Case("corrupt_keras_files", "evaluate_dense_model",
                      ("evaluate", lambda p, c: _plain_model(p)), 2,
                      r"the model expects images of shape \(10,\), but digits images"))
    cases.append(Case("corrupt_keras_files", "evaluate_cifar_checkpoint_on_digits",
                      ("evaluate", lambda p, c: shutil.copy(_good_keras(c), p)), 2,
                      r"the model expects images of shape \(32, 32, 3\)"))
    return cases


@pytest.mark.parametrize("case", _params(_keras_cases()))
def test_cli_corrupt_keras_file_is_refused(case, cifar_run, tmp_path, capsys):
    command, writer = case.call
    path = str(tmp_path / "model.keras")
    writer(path, cifar_run)
    # An existing output folder with a previous export and report in it.
    out = tmp_path / "out"
    out.mkdir()
    _write_bytes(out / "model.keras", b"previous export")
    _write_bytes(out / "report.json", b'{"previous": true}\n')
    before, model_before = _snapshot(out), _read(path)
    if command == "evaluate":
        argv = ["evaluate", path, "--dataset", "digits", "--test-limit", "8",
                "--json", str(out / "report.json")]
    else:
        argv = ["export", path, "--output", str(out / "model.keras"),
                "--saved-model", str(out / "model_savedmodel")]
    err = _cli_error(capsys, argv)
    assert path in err or case.name.startswith("evaluate_") and "expects images" in err, err
    assert re.search(case.match, err), err
    assert _snapshot(out) == before
    assert _read(path) == model_before


# ---- corrupt run state read by the `plot` command.

RUN_STATE_FILES = {
    # name: (writer(run), regex)
    "state_truncated": (
        lambda run: _write_bytes(os.path.join(run, "state.json"),
                                 _truncated(_read(os.path.join(run, "state.json")), 0.3)),
        r"state\.json is not valid JSON"),
    "state_zero_bytes": (
        lambda run: _write_bytes(os.path.join(run, "state.json"), b""),
        r"state\.json is empty \(0 bytes\)"),
    "state_binary_garbage": (
        lambda run: _write_bytes(os.path.join(run, "state.json"), b"\xff\xfe\x00garbage"),
        r"state\.json is not valid JSON \(UnicodeDecodeError"),
}


@pytest.mark.parametrize(
    "case",
    _params(Case("corrupt_run_state", f"plot_{name}", writer, 2, match)
            for name, (writer, match) in RUN_STATE_FILES.items()),
)
def test_cli_plot_of_corrupt_run_state_is_refused(case, cifar_run, tmp_path, capsys):
    run = str(tmp_path / "run")
    shutil.copytree(cifar_run.run, run)
    case.call(run)
    before = _snapshot(run)
    err = _cli_error(capsys, ["plot", run, "--output", str(tmp_path / "plots")])
    assert re.search(case.match, err), err
    assert _snapshot(run) == before
    assert not os.path.exists(tmp_path / "plots")


# ---- corrupted checkpoints and state of a run being resumed, in a subprocess.


def _replace_checkpoint(writer):
    def corrupt(run):
        path = os.path.join(run, "checkpoints", "epoch_0001.keras")
        good = _read(path)
        os.remove(path)
        writer(path, good)
    return corrupt


def _edit_state(change):
    def corrupt(run):
        path = os.path.join(run, "state.json")
        with open(path) as f:
            state = json.load(f)
        with open(path, "w") as f:
            json.dump(change(state), f)
    return corrupt


def _weights_garbage(path, good):
    tmp = path + ".src"
    _write_bytes(tmp, good)
    _rewrite_zip(tmp, path, replace={"model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 100})
    os.remove(tmp)


RESTORE_CASES = [
    Case("corrupt_keras_files", "resume_checkpoint_truncated",
         _replace_checkpoint(lambda p, good: _write_bytes(p, _truncated(good))),
         "CorruptFileError", r"epoch_0001\.keras is not a \.keras model file: not a zip archive"),
    Case("corrupt_keras_files", "resume_checkpoint_random_bytes",
         _replace_checkpoint(lambda p, good: _write_bytes(p, np.random.default_rng(2).bytes(999))),
         "CorruptFileError", r"epoch_0001\.keras is not a \.keras model file"),
    Case("corrupt_keras_files", "resume_checkpoint_empty",
         _replace_checkpoint(lambda p, good: _write_bytes(p, b"")),
         "CorruptFileError", r"epoch_0001\.keras is empty \(0 bytes\)"),
    Case("corrupt_keras_files", "resume_checkpoint_without_config",
         _replace_checkpoint(lambda p, good: (
             _write_bytes(p + ".src", good), _rewrite_zip(p + ".src", p, drop=("config.json",)),
             os.remove(p + ".src"))),
         "CorruptFileError", r"epoch_0001\.keras is a zip archive but not a \.keras model "
                             r"file: it has no config\.json"),
    Case("corrupt_keras_files", "resume_checkpoint_bad_weights",
         _replace_checkpoint(_weights_garbage),
         "CorruptFileError", r"Could not load the model in .*epoch_0001\.keras"),
    Case("corrupt_keras_files", "resume_checkpoint_of_another_model",
         _replace_checkpoint(lambda p, good: _plain_model(p)),
         "CorruptFileError", r"epoch_0001\.keras holds a Sequential, but the run saved a "
                             r"OnlineKDModel"),
    Case("corrupt_keras_files", "resume_checkpoint_missing",
         _replace_checkpoint(lambda p, good: None),
         "FileNotFoundError", r"names the checkpoint .*epoch_0001\.keras, which does not exist"),
    Case("corrupt_run_state", "resume_state_truncated",
         lambda run: _write_bytes(os.path.join(run, "state.json"),
                                  _truncated(_read(os.path.join(run, "state.json")))),
         "CorruptFileError", r"state\.json is not valid JSON"),
    Case("corrupt_run_state", "resume_state_empty",
         lambda run: _write_bytes(os.path.join(run, "state.json"), b""),
         "CorruptFileError", r"state\.json is empty \(0 bytes\)"),
    Case("corrupt_run_state", "resume_state_is_a_list",
         lambda run: _write_bytes(os.path.join(run, "state.json"), b"[1, 2]"),
         "CorruptFileError", r"state\.json is not a valid run state: it holds a list"),
    Case("corrupt_run_state", "resume_state_checkpoint_outside_run",
         _edit_state(lambda s: {**s, "checkpoint": "../../outside.keras"}),
         "CorruptFileError", r"checkpoint='\.\./\.\./outside\.keras'"),
    Case("corrupt_run_state", "resume_state_epochs_not_a_number",
         _edit_state(lambda s: {**s, "epochs_completed": "one"}),
         "CorruptFileError", r"epochs_completed='one' \(expected an integer >= 1\)"),
]

# Restores every damaged run in a fresh interpreter and reports what each
# raised (a hang there cannot block the test session: see the timeout).
_RESTORE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from keras_ahbf.callbacks import EpochCheckpoint

    results = {}
    for name, run in json.loads(sys.argv[1]).items():
        try:
            model, state = EpochCheckpoint.restore(run)
            results[name] = {"type": None, "model": type(model).__name__}
        except Exception as e:
            results[name] = {"type": type(e).__name__, "message": str(e),
                             "value_error": isinstance(e, ValueError)}
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)
    """
)
RESTORE_TIMEOUT = 300


@pytest.fixture(scope="module")
def restore_results(cifar_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("restore")
    runs, snapshots = {}, {}
    for case in RESTORE_CASES:
        run = str(root / case.name)
        shutil.copytree(cifar_run.run, run)
        case.call(run)
        runs[case.name] = run
        snapshots[case.name] = _snapshot(run)
    out = str(root / "results.json")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               KERAS_BACKEND=keras.backend.backend())
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RESTORE_SCRIPT, json.dumps(runs), out],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=RESTORE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"restoring the damaged runs hung for more than {RESTORE_TIMEOUT} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        results = json.load(f)
    return types.SimpleNamespace(results=results, runs=runs, snapshots=snapshots)


@pytest.mark.parametrize("case", _params(RESTORE_CASES))
def test_resuming_a_damaged_run_is_refused(case, restore_results):
    result = restore_results.results[case.name]
    assert result["type"] == case.error, result
    if case.error == "CorruptFileError":
        assert issubclass(_io.CorruptFileError, ValueError) and result["value_error"]
    message = result["message"]
    assert re.search(case.match, message), message
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    assert _snapshot(restore_results.runs[case.name]) == restore_results.snapshots[case.name]


# --------------------------------------------------------------------------
# What was tried (reported in the README).

ALL_TABLES = {
    "library": LIBRARY_CASES,
    "cli_resume_data": [Case(DATA_FILES[n][0], n, None, None, None) for n in CLI_DATA_CASES],
    "cli_options": CLI_OPTION_CASES,
    "cli_keras_files": _keras_cases(),
    "cli_plot_state": [Case("corrupt_run_state", n, None, None, None) for n in RUN_STATE_FILES],
    "restore": RESTORE_CASES,
}
CASES_PER_CATEGORY = dict(
    sorted(collections.Counter(c.category for t in ALL_TABLES.values() for c in t).items())
)


def test_every_category_has_at_least_3_cases():
    expected = {
        "ranks_shapes", "channels_first", "dtypes", "nan_inf", "empty", "labels",
        "branches", "ahbf_loss_lists", "corrupt_keras_files", "corrupt_run_state",
        "corrupt_data_files",
    }
    assert set(CASES_PER_CATEGORY) == expected
    assert all(n >= 3 for n in CASES_PER_CATEGORY.values()), CASES_PER_CATEGORY
    names = [f"{c.category}-{c.name}" for t in ALL_TABLES.values() for c in t]
    assert len(names) == len(set(names))
