"""Checks of images and labels: the one place they are validated.

Three callers, one set of rules (`_rules.py`: one class id per image,
`(N,)` or `(N, 1)`; integer values in `[0, num_classes)`; channels-last
images; the channels-first hint; no NaN/inf pixels), and one module per
caller, each with its own error style:

- `pipeline_checks`: the loaders and `make_dataset` (`validate_arrays`,
  `check_example_dataset`) raise `DataError` naming the split or file,
  before a pipeline is built;
- `fit_checks`: `OnlineKDModel.fit` / `evaluate` (`check_model_arrays`,
  `check_batch_dataset`) raise `ValueError` / `TypeError` naming the
  argument (`x`, `validation_data[1]`, ...), before the first training step;
- `loss_checks`: the loss functions (`check_labels`, `check_label_values`)
  check labels against the logits' shape; only NumPy/Python labels have
  their values read.

Nothing here imports TensorFlow: `tf.data.Dataset` arguments are recognised
only if TensorFlow is already imported (a dataset cannot exist otherwise).
"""

from keras_ahbf.data.validation.fit_checks import check_batch_dataset
from keras_ahbf.data.validation.fit_checks import check_model_arrays
from keras_ahbf.data.validation.loss_checks import as_checkable  # noqa: F401 (for losses.py)
from keras_ahbf.data.validation.loss_checks import check_label_values
from keras_ahbf.data.validation.loss_checks import check_labels
from keras_ahbf.data.validation.loss_checks import dtype_name  # noqa: F401 (for losses.py)
from keras_ahbf.data.validation.loss_checks import is_host_value  # noqa: F401 (for losses.py)
from keras_ahbf.data.validation.loss_checks import is_real_dtype  # noqa: F401 (for losses.py)
from keras_ahbf.data.validation.loss_checks import static_shape  # noqa: F401 (for losses.py)
from keras_ahbf.data.validation.pipeline_checks import DataError
from keras_ahbf.data.validation.pipeline_checks import check_example_dataset
from keras_ahbf.data.validation.pipeline_checks import validate_arrays

__all__ = [
    "DataError",
    "check_batch_dataset",
    "check_example_dataset",
    "check_label_values",
    "check_labels",
    "check_model_arrays",
    "validate_arrays",
]
