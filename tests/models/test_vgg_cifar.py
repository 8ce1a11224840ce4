import pytest

from keras_ahbf.models import vgg_cifar
from keras_ahbf.models.vgg_cifar import vgg_cifar_trunk
from keras_ahbf.testing.test_case import build_uninitialized
from keras_ahbf.testing.test_case import check_fit_target_and_round_trip
from keras_ahbf.testing.test_case import target_count
from keras_ahbf.testing.test_utils import trainable_count


def conv_bn(cin, cout):
    """3x3 convolution with bias, then BatchNorm."""
    return 9 * cin * cout + cout + 2 * cout


def vgg_counts(n, classes, num_branches, aux):
    """(target, full AHBF model) trainable parameters, counted by hand."""
    trunk = 0
    cin = 3
    for cout, convs in ((64, 2), (128, 2), (256, n), (512, n)):
        for _ in range(convs):
            trunk += conv_bn(cin, cout)
            cin = cout
    head = 512 * 512 + 512 + 512 * 512 + 512 + 512 * classes + classes
    branches = [(n + b * aux) * conv_bn(512, 512) + head for b in range(num_branches)]
    fusion = (1024 * 512 + 512) + 2 * 512 + (512 * 2 + 2) + 4
    return trunk + branches[0], trunk + sum(branches) + (num_branches - 1) * fusion


def test_vgg16_default_counts():
    model = build_uninitialized(vgg_cifar)  # depth 16, 100 classes, B=4, aux=4, 32x32
    assert model._input_shape_for_build == (None, 32, 32, 3)
    target, full = vgg_counts(3, 100, 4, 4)
    assert (target, full) == (15_299_748, 96_517_602)
    assert trainable_count(model) == full
    assert target_count(model) == target
    assert model.branches.depths == [3, 7, 11, 15]
    assert [s.num_convs for s in model.branches.stages] == [3, 7, 11, 15]


def test_vgg19_counts():
    model = build_uninitialized(vgg_cifar, 19, num_classes=10, num_branches=2, aux=1)
    target, full = vgg_counts(4, 10, 2, 1)
    assert trainable_count(model) == full
    assert target_count(model) == target


def test_trunk_ends_with_the_fourth_stage():
    trunk = build_uninitialized(vgg_cifar_trunk, 16)
    assert tuple(trunk.output.shape) == (None, 2, 2, 512)


@pytest.mark.large
def test_fit_target_and_round_trip(tmp_path):
    model = vgg_cifar(16, num_classes=3, num_branches=2, aux=1, fusion="cbam")
    loaded = check_fit_target_and_round_trip(model, tmp_path)
    target, _ = vgg_counts(3, 3, 2, 1)
    assert trainable_count(loaded.target_model()) == target


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(depth=11), "depth=11"),
        (dict(num_branches=1), "num_branches=1"),
        (dict(aux=-2), "aux=-2"),
        (dict(dropout=1.0), "dropout=1.0"),
        (dict(input_shape=(16, 16, 3)), "at least"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_uninitialized(vgg_cifar, **kwargs)
