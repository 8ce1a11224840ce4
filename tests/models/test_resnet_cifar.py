import numpy as np
import pytest

from keras_ahbf.models import resnet_cifar
from keras_ahbf.models.resnet_cifar import resnet_cifar_blocks
from keras_ahbf.testing.test_utils import trainable_count


def test_resnet32_parameter_counts_match_the_published_model():
    model = resnet_cifar(32, num_classes=100, num_branches=4, aux=4)
    assert trainable_count(model) == 3_354_418
    assert trainable_count(model.target_model()) == 472_756
    assert model.branches.depths == [5, 9, 13, 17]


def test_resnet110_bottleneck_parameter_count():
    model = resnet_cifar(110, num_classes=100, num_branches=4, aux=3)
    assert trainable_count(model) == 5_521_906
    assert trainable_count(model.target_model()) == 1_170_868
    assert model.branches.stages[0].block == "bottleneck"


@pytest.mark.parametrize(
    "depth, block, n",
    [(8, "basic", 1), (14, "basic", 2), (20, "basic", 3), (32, "basic", 5),
     (44, "basic", 7), (56, "basic", 9), (110, "bottleneck", 12)],
)
def test_supported_depths(depth, block, n):
    assert resnet_cifar_blocks(depth) == (block, n)


def test_block_choice_for_other_depths():
    assert resnet_cifar_blocks(29, "bottleneck") == ("bottleneck", 3)
    assert resnet_cifar_blocks(110, "basic") == ("basic", 18)


def test_target_model_of_resnet8_is_a_plain_resnet8():
    model = resnet_cifar(8, num_classes=10, num_branches=2, aux=1)
    # Plain ResNet-8, 10 classes: stem + 3 stages of one BasicBlock + fc.
    def conv_bn(cin, cout, k):
        return cin * cout * k * k + 2 * cout

    want = (conv_bn(3, 16, 3) + 2 * conv_bn(16, 16, 3)
            + conv_bn(16, 32, 3) + conv_bn(32, 32, 3) + conv_bn(16, 32, 1)
            + conv_bn(32, 64, 3) + conv_bn(64, 64, 3) + conv_bn(32, 64, 1)
            + 64 * 10 + 10)
    assert trainable_count(model.target_model()) == want
    x = np.zeros((2, 32, 32, 3), "float32")
    assert model.predict(x, verbose=0).shape == (2, 10)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(depth=33), ValueError, "depth=33"),
        (dict(depth=30, block="basic"), ValueError, "depth=30"),
        (dict(num_branches=1), ValueError, "num_branches=1"),
        (dict(aux=-1), ValueError, "aux=-1"),
        (dict(num_classes=0), ValueError, "num_classes=0"),
        (dict(block="wide"), ValueError, "block='wide'"),
        (dict(input_shape=(3, 32, 32)), ValueError, "channels-first"),
        (dict(input_shape=(32, 32)), ValueError, "input_shape"),
        (dict(temperature=-1.0), ValueError, "temperature=-1.0"),
        (dict(num_branches=2.5), TypeError, "num_branches=2.5"),
    ],
)
def test_invalid_configuration_raises(kwargs, error, match):
    options = dict(depth=8, num_classes=10)
    options.update(kwargs)
    with pytest.raises(error, match=match):
        resnet_cifar(**options)
