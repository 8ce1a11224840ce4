"""`SharedTrunkModel`: the base of the methods whose networks share low-level layers."""

import keras

from keras_ahbf.layers.hierarchical_branches import HierarchicalBranches
from keras_ahbf.methods.peer_distillation_model import PeerDistillationModel


class SharedTrunkModel(PeerDistillationModel):
    """Base of the methods whose networks share a trunk: trunk + identical branches.

    Holds a `trunk` (images -> shared feature map) and a
    `keras_ahbf.layers.HierarchicalBranches` (usually `aux=0`: identical
    branches, see `keras_ahbf.methods.shared_trunk_and_branches`). Branch 0
    on the trunk is the deployed network: `model(x)` runs only the trunk and
    branch 0, `target_model()` returns them as a plain `keras.Model`.
    Subclasses add their own layers in `__init__` (before calling
    `_finish_init`) and build them in `_build_extra(trunk_shape)`.

    `forward_all` returns `{"branch_logits": [z_0, ...], ...}`; subclasses
    add their own outputs (ONE's gate, OKDDip's attention).

    Args:
        trunk: `keras.Model`. The shared layers (a known input shape lets
            the model build itself at construction).
        branches: `HierarchicalBranches` with at least 2 branches.
        **kwargs: `PeerDistillationModel` arguments (`temperature`,
            `kd_weight`, `stop_teacher_gradient`, `rampup_epochs`,
            `rampup_shape`, `weight_decay`, `name`, ...).

    Raises:
        TypeError: on a `trunk` that is not a Keras model or layer, or
            `branches` that is not a `HierarchicalBranches`.
        ValueError: on fewer than 2 branches.
    """

    NESTED_CONFIG = ("trunk", "branches")

    def __init__(self, trunk, branches, **kwargs):
        super().__init__(**kwargs)
        cls = type(self).__name__
        if not isinstance(trunk, keras.layers.Layer):
            raise TypeError(
                f"`trunk` of `{cls}` must be a Keras model or layer. "
                f"Received: trunk={trunk!r}"
            )
        if not isinstance(branches, HierarchicalBranches):
            raise TypeError(
                f"`branches` of `{cls}` must be a "
                f"`keras_ahbf.layers.HierarchicalBranches`. Received: branches={branches!r}"
            )
        if branches.num_branches < 2:
            raise ValueError(
                f"`{cls}` needs at least 2 branches. "
                f"Received: num_branches={branches.num_branches}"
            )
        self.trunk = trunk
        self.branches = branches
        self.num_branches = branches.num_branches

    def _trunk_input_shape(self):
        if not isinstance(self.trunk, keras.Model):
            return None
        try:
            shape = tuple(self.trunk.input_shape)
        except (AttributeError, TypeError, ValueError):  # not built, or several inputs.
            return None
        return shape if len(shape) == 4 else None

    @property
    def num_classes(self) -> int:
        """Number of classes of every branch."""
        return self.branches.num_classes

    def network_count(self):
        return self.num_branches

    def _build_extra(self, trunk_shape):
        """Builds the subclass's own layers on the trunk's output shape."""
        del trunk_shape

    def build(self, input_shape):
        self._build_extra(self._build_trunk_and_branches(input_shape))
        self.built = True

    def forward_target(self, inputs, training=None):
        """Branch 0's logits (only the trunk and branch 0 run)."""
        features = self.trunk(inputs, training=training)
        return self.branches.call_branch(0, features, training=training)[1]

    def target_logits(self, outputs):
        return outputs["branch_logits"][0]

    def target_model(self, name=None):
        """Returns the deployable network: trunk + branch 0.

        A plain functional `keras.Model` (images -> logits); it shares its
        layers and weights with this model (save or clone it for an
        independent copy).

        Args:
            name: str. Name of the returned model (default
                `"<model name>_target"`).

        Returns:
            A `keras.Model`.
        """
        self._check_built()
        inputs = keras.Input(shape=self._input_shape_for_build[1:], name="images")
        features = self.branches.stages[0](self.trunk(inputs))
        pooled = keras.layers.GlobalAveragePooling2D(
            name="branch_0_pool", dtype=self.dtype_policy
        )(features)
        logits = self.branches.heads[0](pooled)
        return keras.Model(inputs, logits, name=name or f"{self.name}_target")

    def get_config(self):
        config = super().get_config()
        config.update({
            "trunk": keras.saving.serialize_keras_object(self.trunk),
            "branches": keras.saving.serialize_keras_object(self.branches),
        })
        return config
