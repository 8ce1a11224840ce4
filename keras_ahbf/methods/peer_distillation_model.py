"""`PeerDistillationModel`: what the peer methods (DML, ONE, CL-ILR, OKDDip, KDCL) share."""

import keras
from keras import ops

from keras_ahbf import losses as ahbf_losses
from keras_ahbf.config import PAPER
from keras_ahbf.layers import _utils
from keras_ahbf.methods.online_distillation_model import OnlineDistillationModel
from keras_ahbf.utils.validation import check_bool


class PeerDistillationModel(OnlineDistillationModel):
    """Base of the methods whose networks are peers: one KL term per network.

    Every such method trains `K` networks (peers, branches or heads),
    network 0 deployed, with one cross-entropy and one distillation term per
    network, at a temperature, a distillation weight and an optional
    ramp-up. This class holds those options (validated, in `get_config`),
    the ramp-up factor, the metrics and the logged terms; a subclass
    supplies its networks (`forward_all`, `target_model`, ...), its loss
    (`distillation_loss`, usually `self._loss_and_logs(terms)` of its
    pure loss function) and `network_count()`.

    `fit` and `evaluate` report `loss`, `ce`, `kd`, `rampup_weight`,
    `kd_weighted` (what distillation adds to the loss), the subclass's
    `EXTRA_TERMS`, `ce_peer_k` and `kl_peer_k` for every network, `l2` when
    `weight_decay > 0`, then `peer_0_accuracy` (the deployed network) ...
    `peer_{K-1}_accuracy` and `ensemble_accuracy`.

    Args:
        temperature: float. Softmax temperature `T` of the KL terms (> 0).
        kd_weight: float. Weight of the KL terms (>= 0).
        stop_teacher_gradient: bool. Detach the teachers in the KL terms.
        rampup_epochs: int. Ramp-up of the KL weight in epochs (>= 0; 0
            means the full weight from the first step). With `R > 0` the
            weight is `exp(-5 (1 - t)^2)` (`"exp"`, the consistency ramp-up
            of ONE's and OKDDip's code) or `t` (`"linear"`),
            `t = min(epoch, R) / R`: the AHBF-OKD curve rescaled to end at 1.
        rampup_shape: str. `"exp"` or `"linear"`.
        weight_decay: float. Coupled L2 weight decay (>= 0; see
            `OnlineDistillationModel`).
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Raises:
        ValueError: on an option out of range.
        TypeError: on a `stop_teacher_gradient` that is not a bool.
    """

    target_metric = "peer_0_accuracy"
    # Further logged terms of the method's loss dict, after `kd_weighted`.
    EXTRA_TERMS = ()

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        kd_weight: float = 1.0,
        stop_teacher_gradient: bool = True,
        rampup_epochs: int = 0,
        rampup_shape: str = PAPER.rampup_shape,
        weight_decay: float = 0.0,
        **kwargs,
    ):
        super().__init__(
            rampup_epochs=rampup_epochs,
            rampup_shape=rampup_shape,
            weight_decay=weight_decay,
            **kwargs,
        )
        self.temperature = _utils.check_float("temperature", temperature, 0.0, exclusive=True)
        self.kd_weight = _utils.check_float("kd_weight", kd_weight, 0.0)
        self.stop_teacher_gradient = check_bool("stop_teacher_gradient", stop_teacher_gradient)

    def network_count(self) -> int:
        """The number of networks `K` (peers, branches or heads)."""
        raise NotImplementedError

    def _make_metrics(self):
        mean = keras.metrics.Mean
        acc = keras.metrics.SparseCategoricalAccuracy
        count = self.network_count()
        names = ["ce", "kd", "rampup_weight", "kd_weighted", *self.EXTRA_TERMS]
        names += [f"ce_peer_{k}" for k in range(count)]
        names += [f"kl_peer_{k}" for k in range(count)]
        trackers = {name: mean(name=name) for name in names}
        if self.weight_decay:
            trackers["l2"] = mean(name="l2")
        for name in self._accuracy_names():
            trackers[name] = acc(name=name)
        return trackers

    def _accuracy_names(self):
        count = self.network_count()
        return [f"peer_{k}_accuracy" for k in range(count)] + ["ensemble_accuracy"]

    def rampup_weight(self):
        """The factor of the KL terms this epoch, in [0, 1] (1 without ramp-up).

        `exp(-5 (1 - t)^2)` with the `"exp"` shape (ONE's and OKDDip's
        `get_current_consistency_weight`), i.e. twice
        `keras_ahbf.losses.rampup_weight`, whose curve ends at 0.5 as the
        AHBF-OKD paper's does.
        """
        if not self.rampup_epochs:
            return ops.convert_to_tensor(1.0, "float32")
        return 2.0 * ahbf_losses.rampup_weight(self.epoch, self.rampup_epochs, self.rampup_shape)

    def _loss_and_logs(self, terms, rampup_weight):
        """`(total, logged)` of a loss dict of `keras_ahbf.methods._loss_utils.named_terms`."""
        logged = {"ce": terms["ce"], "kd": terms["kd"], "rampup_weight": rampup_weight,
                  "kd_weighted": terms["kd_weighted"]}
        for name in self.EXTRA_TERMS:
            logged[name] = terms[name]
        for k in range(self.network_count()):
            logged[f"ce_peer_{k}"] = terms["ce_terms"][k]
            logged[f"kl_peer_{k}"] = terms["kl_terms"][k]
        return terms["total"], logged

    def get_config(self):
        config = super().get_config()
        config.update({
            "temperature": self.temperature,
            "kd_weight": self.kd_weight,
            "stop_teacher_gradient": self.stop_teacher_gradient,
        })
        return config
