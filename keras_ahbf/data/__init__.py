"""Datasets and `tf.data` input pipelines for AHBF-OKD experiments.

The pipelines are plain `tf.data.Dataset`s built from TensorFlow ops (and
Keras preprocessing layers, which Keras runs backend-independently inside
`tf.data`), so they can be passed to `model.fit` on every Keras backend:
TensorFlow, JAX and PyTorch. TensorFlow and tensorflow-datasets are imported
lazily, inside the functions that need them: importing this package imports
neither (nor Keras).

Sources:

- `"digits"`: scikit-learn's bundled 8x8 handwritten digits (no download),
  for smoke tests and quick runs.
- `"cifar10"` / `"cifar100"`: a local copy (an `.npz` file with `x_train`,
  `y_train`, `x_test`, `y_test`, a directory holding one, or the standard
  CIFAR python-batch folders), otherwise tensorflow-datasets.
- `"imagenet2012"`: tensorflow-datasets with the manually downloaded tar files
  (see `load_imagenet`).

Modules: `datasets` (the `DATASETS` registry and statistics), `validation`
(every check of images and labels), `cifar` (local CIFAR copies), `tfds`
(tensorflow-datasets, ImageNet), `loaders` (`load_arrays`), `augment` (the
image transforms) and `pipeline` (`make_dataset`).
"""

from keras_ahbf.data.augment import imagenet_preprocess
from keras_ahbf.data.datasets import DATASETS
from keras_ahbf.data.datasets import DatasetInfo
from keras_ahbf.data.datasets import normalization_stats
from keras_ahbf.data.loaders import load_arrays
from keras_ahbf.data.pipeline import STRONG_AUGMENTATIONS
from keras_ahbf.data.pipeline import make_dataset
from keras_ahbf.data.tfds import load_imagenet
from keras_ahbf.data.validation import DataError
from keras_ahbf.data.validation import validate_arrays

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


def __getattr__(name):
    # `tf_distribute_strategy` now lives in `keras_ahbf.distribution`, which
    # imports Keras; it is resolved on first access to keep this import cheap.
    if name == "tf_distribute_strategy":
        from keras_ahbf.distribution.tensorflow import tf_distribute_strategy

        return tf_distribute_strategy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
