"""`FusionWeightLogger`: the adaptive fusion weights of every level, per epoch."""

import keras
import numpy as np
from keras import ops

from keras_ahbf.callbacks._scalars import as_float


class FusionWeightLogger(keras.callbacks.Callback):
    """Records the adaptive fusion weights of every level after each epoch.

    Each `AdaptiveFusion` module `m = 1 ... B-1` weighs its two inputs, the
    previous assistant `TA_{m-1}` and branch `m`, with per-sample weights
    `(w_m, 1 - w_m)`. `OnlineKDModel` already reports the batch mean of
    `w_m` as the metric `fusion_{m}_weight` (and `val_fusion_{m}_weight` on
    validation data); this callback collects them per level and per epoch
    in `self.weights`, and, when `x` is given, also runs the model in
    inference mode on those images after every epoch and adds to the epoch
    logs:

    - `fusion_{m}_weight_infer`: mean of `w_m` over `x` (inference mode:
      BatchNorm uses its moving statistics, as for the deployed teachers);
    - `fusion_{m}_weight_infer_std`: its standard deviation over the images.

    Values added to the logs reach `History` and every callback placed
    after this one in `callbacks=[...]` (put it before
    `keras.callbacks.TensorBoard` and `keras.callbacks.CSVLogger` to log
    them there). Works on TensorFlow, JAX and PyTorch.

    Args:
        x: array or tensor of images, or None. Fixed images on which to
            measure the weights in inference mode (a few hundred test images
            suffice).
        batch_size: int. Batch size for the inference pass over `x`.

    Attributes:
        weights: dict mapping `"fusion_{m}"` to a dict of lists, one value
            per epoch: `"train"` (the training metric), `"val"` (when
            validation data is used) and `"infer"` / `"infer_std"` (with
            `x`).
        epochs: list of the (0-based) epochs recorded.

    Raises:
        ValueError: if `batch_size` is not a positive integer.

    Example:

    ```python
    logger = keras_ahbf.callbacks.FusionWeightLogger(x_test[:512])
    model.fit(train_ds, epochs=10, callbacks=[logger, keras.callbacks.TensorBoard("logs")])
    logger.weights["fusion_1"]["infer"]  # one value per epoch
    ```
    """

    def __init__(self, x=None, batch_size=256):
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
            )
        self.x = x
        self.batch_size = batch_size
        self.weights = {}
        self.epochs = []

    def _levels(self):
        # A baseline (a plain target network) has no fusion modules.
        return len(getattr(self.model, "fusions", ()))

    def _inference_weights(self, levels):
        per_level = [[] for _ in range(levels)]
        n = int(self.x.shape[0])
        for start in range(0, n, self.batch_size):
            batch = self.x[start : start + self.batch_size]
            outputs = self.model.all_outputs(batch, training=False)
            for m, w in enumerate(outputs["fusion_weights"]):
                per_level[m].append(np.asarray(ops.convert_to_numpy(w))[:, 0])
        return [np.concatenate(w) for w in per_level]

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        levels = self._levels()
        if self.x is not None and levels:
            for m, w in enumerate(self._inference_weights(levels), start=1):
                logs[f"fusion_{m}_weight_infer"] = float(np.mean(w))
                logs[f"fusion_{m}_weight_infer_std"] = float(np.std(w))
        self.epochs.append(epoch)
        for m in range(1, levels + 1):
            record = self.weights.setdefault(f"fusion_{m}", {})
            for kind, key in (
                ("train", f"fusion_{m}_weight"),
                ("val", f"val_fusion_{m}_weight"),
                ("infer", f"fusion_{m}_weight_infer"),
                ("infer_std", f"fusion_{m}_weight_infer_std"),
            ):
                if key in logs:
                    record.setdefault(kind, []).append(as_float(logs[key]))
