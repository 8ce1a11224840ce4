"""`RampupCallback` and `FusionWeightLogger` in a real `fit`."""

import keras
import numpy as np
import pytest

from keras_ahbf.callbacks import FusionWeightLogger
from keras_ahbf.testing.test_utils import to_numpy


class _EpochSpy(keras.callbacks.Callback):
    """Records the model's ramp-up epoch after `RampupCallback` set it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        # Runs after RampupCallback (which fit puts first).
        self.seen.append(int(to_numpy(self.model.epoch)))


def test_rampup_and_fusion_weight_logger(data, make_model):
    x, y = data
    model = make_model(num_branches=3, rampup=4)
    probe = x[:12]  # Two batches of 8: the logger batches its inference pass.
    spy = _EpochSpy()
    logger = FusionWeightLogger(probe, batch_size=8)
    plain = FusionWeightLogger()
    history = model.fit(
        x, y, batch_size=32, epochs=4, initial_epoch=2, validation_data=(x[:32], y[:32]),
        callbacks=[spy, plain, logger], verbose=0,
    )
    # The ramp-up follows initial_epoch.
    assert spy.seen == [2, 3]
    expected = [0.5 * np.exp(-5.0 * (1 - min(e, 4) / 4) ** 2) for e in (2, 3)]
    np.testing.assert_allclose(history.history["rampup_weight"], expected, rtol=1e-5)

    assert logger.epochs == [2, 3]
    assert sorted(logger.weights) == ["fusion_1", "fusion_2"]
    for m in (1, 2):
        record = logger.weights[f"fusion_{m}"]
        assert set(record) == {"train", "val", "infer", "infer_std"}
        assert all(len(v) == 2 for v in record.values())
        # Reached History (and so TensorBoard/CSVLogger placed after it).
        np.testing.assert_allclose(history.history[f"fusion_{m}_weight_infer"], record["infer"])
        np.testing.assert_allclose(history.history[f"fusion_{m}_weight"], record["train"])
        np.testing.assert_allclose(history.history[f"val_fusion_{m}_weight"], record["val"])
        # The last epoch's value is the inference-mode mean over the probe,
        # recomputed here independently.
        w = to_numpy(model.all_outputs(probe, training=False)["fusion_weights"][m - 1])
        assert record["infer"][-1] == pytest.approx(float(np.mean(w[:, 0])), abs=1e-5)
        assert record["infer_std"][-1] == pytest.approx(float(np.std(w[:, 0])), abs=1e-5)
        assert 0.0 <= record["infer"][-1] <= 1.0
        # Without probe images only the metrics are collected (`plain` runs
        # before `logger`, so it does not see what `logger` adds).
        assert set(plain.weights[f"fusion_{m}"]) == {"train", "val"}


def test_fusion_weight_logger_validation():
    with pytest.raises(ValueError, match="batch_size"):
        FusionWeightLogger(batch_size=0)
