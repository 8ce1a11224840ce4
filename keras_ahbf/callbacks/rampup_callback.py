"""`RampupCallback`: advances the distillation ramp-up every epoch."""

import keras


class RampupCallback(keras.callbacks.Callback):
    """Advances the distillation ramp-up of an `OnlineKDModel` every epoch.

    At the start of epoch `e` (0-based, so `initial_epoch` is honoured when
    resuming) it stores `e` in the model's non-trainable `epoch` variable,
    from which `compute_loss` derives the ramp-up weight
    `w(e) = 0.5 * exp(-5 * (1 - min(e, R) / R)^2)` (see `docs/method.md`).
    The value lives in a variable so it is identical on TensorFlow, JAX and
    PyTorch, jit or not, and is saved with the model.

    `OnlineKDModel.fit` adds this callback itself when the user did not pass
    one, so a plain `model.fit(...)` ramps up correctly; pass it explicitly
    only to use the model's `fit` through another training loop.

    Example:

    ```python
    model.fit(dataset, epochs=300, callbacks=[keras_ahbf.callbacks.RampupCallback()])
    ```
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_epoch(epoch)
