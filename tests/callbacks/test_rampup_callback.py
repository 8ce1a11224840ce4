"""`RampupCallback`: the model's ramp-up epoch follows `fit`'s epochs."""

import numpy as np

from keras_ahbf.callbacks import RampupCallback
from keras_ahbf.testing.test_utils import to_numpy


def test_rampup_callback_sets_the_epoch_variable(make_model):
    model = make_model(num_branches=2, rampup=4)
    callback = RampupCallback()
    callback.set_model(model)
    for epoch in (0, 3, 7):
        callback.on_epoch_begin(epoch)
        assert int(to_numpy(model.epoch)) == epoch
    expected = 0.5 * np.exp(-5.0 * (1 - min(7, 4) / 4) ** 2)
    assert float(to_numpy(model.rampup_weight())) == np.float32(expected)
