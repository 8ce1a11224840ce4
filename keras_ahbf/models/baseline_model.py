"""`BaselineModel`: a functional network trained with the coupled L2 as a loss term."""

import keras

from keras_ahbf.distribution import scale_loss_for_distribution
from keras_ahbf.utils.validation import check_float
from keras_ahbf.weight_decay import coupled_l2


@keras.saving.register_keras_serializable(package="keras_ahbf")
class BaselineModel(keras.Model):
    """A functional network whose loss adds the coupled L2 weight decay.

    The baseline of the paper's tables: the target network trained alone
    with cross-entropy (`keras_ahbf.training.build_baseline`). Its loss is
    the compiled loss plus `keras_ahbf.weight_decay.coupled_l2` over every
    trainable variable, the same term `OnlineKDModel(weight_decay=...)`
    adds, divided by the replica count like the rest of the loss. The
    weight decay is an argument of the model: it is saved in `.keras` files
    and restored with them.

    Args:
        inputs: the functional model's inputs (`keras.Input` tensors).
        outputs: the functional model's outputs.
        name: str. Name of the model.
        weight_decay: float (>= 0, keyword only). The coupled L2
            coefficient (the paper's 5e-4 on CIFAR); 0 adds nothing.
        **kwargs: other `keras.Model` arguments (`trainable`).

    Raises:
        ValueError: for a negative, NaN or infinite `weight_decay`.
        TypeError: for a `weight_decay` that is not a number.

    Example:

    ```python
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(inputs))
    model = BaselineModel(inputs, outputs, weight_decay=5e-4)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ```
    """

    def __init__(self, inputs, outputs, name=None, *, weight_decay=0.0, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.weight_decay = check_float("weight_decay", weight_decay, 0.0)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = super().compute_loss(
            x, y, y_pred, sample_weight=sample_weight, training=training
        )
        if not self.weight_decay:
            return loss
        l2 = scale_loss_for_distribution(
            coupled_l2(self.trainable_variables, self.weight_decay)
        )
        return l2 if loss is None else loss + keras.ops.cast(l2, loss.dtype)

    def target_model(self, name=None):
        """The same network as a plain functional `keras.Model`, to deploy.

        It shares its layers (and so its weights) with this model, and loads
        with Keras alone, as `OnlineKDModel.target_model()` does.

        Args:
            name: str. Name of the returned model (default: this model's).

        Returns:
            A `keras.Model`.
        """
        return keras.Model(self.input, self.output, name=name or self.name)

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self.weight_decay
        return config
