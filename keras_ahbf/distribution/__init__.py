"""Data-parallel training of `OnlineKDModel` on the engines Keras already has.

`make_distribution(kind)` returns a `Distribution`; build, compile (or load)
and fit the model inside its `scope()`:

| `kind` | backend | engine |
| --- | --- | --- |
| `"none"` | any | one device |
| `"mirrored"` | TensorFlow | `tf.distribute.MirroredStrategy`: every local GPU (or `cpu_devices` logical CPUs) |
| `"multi-worker"` | TensorFlow | `tf.distribute.MultiWorkerMirroredStrategy`: one process per host, cluster from `TF_CONFIG` |
| `"data-parallel"` | JAX | `keras.distribution.DataParallel` over every device; multi-host after `keras.distribution.initialize()` |

The batch size given to `fit` (or to the `tf.data` pipeline) is the *global*
batch: each of the `num_replicas` replicas computes the loss of
`batch_size / num_replicas` examples and the gradients are summed, so the
update equals the single-device update on the same global batch (the
distillation loss is divided by the replica count by
`scale_loss_for_distribution`, called in `OnlineKDModel.compute_loss`). Only
BatchNorm differs: its batch statistics are computed per replica.

PyTorch: Keras' `fit` has no data-parallel engine for the torch backend, so
only `"none"` is accepted there.

Modules: `distribution_lib` (the choice, backend-free), `tensorflow`
(strategies, loss scaling, the multi-worker workaround) and `jax`
(`DataParallel`). Importing this package imports no backend and not Keras.
"""

from keras_ahbf.distribution.distribution_lib import KINDS
from keras_ahbf.distribution.distribution_lib import Distribution
from keras_ahbf.distribution.distribution_lib import make_distribution
from keras_ahbf.distribution.distribution_lib import scale_loss_for_distribution

__all__ = [
    "KINDS",
    "Distribution",
    "make_distribution",
    "scale_loss_for_distribution",
]
