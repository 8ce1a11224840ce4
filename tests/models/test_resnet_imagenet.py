import pytest

from keras_ahbf.models import resnet_imagenet
from keras_ahbf.models.resnet_imagenet import resnet_imagenet_trunk
from keras_ahbf.testing.test_case import build_uninitialized
from keras_ahbf.testing.test_case import check_fit_target_and_round_trip
from keras_ahbf.testing.test_utils import trainable_count


def basic_block(cin, c, stride):
    """Trainable parameters of a torchvision BasicBlock (conv-BN x2 + shortcut)."""
    n = 9 * cin * c + 2 * c + 9 * c * c + 2 * c
    if stride != 1 or cin != c:
        n += cin * c + 2 * c
    return n


def stage(cin, c, blocks, stride):
    return basic_block(cin, c, stride) + (blocks - 1) * basic_block(c, c, 1)


def torchvision_resnet(layers, classes=1000):
    n = 7 * 7 * 3 * 64 + 2 * 64
    cin = 64
    for c, blocks, stride in zip((64, 128, 256, 512), layers, (1, 2, 2, 2)):
        n += stage(cin, c, blocks, stride)
        cin = c
    return n + 512 * classes + classes


def fusion(c):
    return (2 * c * c + c) + 2 * c + (c * 2 + 2) + 2 * 2


def test_independent_formula_gives_the_published_counts():
    assert torchvision_resnet((2, 2, 2, 2)) == 11_689_512
    assert torchvision_resnet((3, 4, 6, 3)) == 21_797_672


def test_resnet18_default_input_size_and_published_counts():
    model = build_uninitialized(resnet_imagenet, 18)  # 224x224, 1000 classes, B=4, aux=1
    assert model.built
    assert model._input_shape_for_build == (None, 224, 224, 3)
    assert trainable_count(model) == 60_453_362
    assert trainable_count(model.target_model()) == 11_689_512
    # Extra blocks alternate: stage 3 gets ceil(b/2), stage 4 floor(b/2).
    assert model.branches.depths == [[2, 2], [3, 2], [3, 3], [4, 3]]
    fusions = 3 * fusion(512)
    per_branch = [
        stage(128, 256, d3, 2) + stage(256, 512, d4, 2) + 512 * 1000 + 1000
        for d3, d4 in model.branches.depths
    ]
    trunk = torchvision_resnet((2, 2, 2, 2)) - per_branch[0]
    assert trainable_count(model) == trunk + sum(per_branch) + fusions
    assert trainable_count(model.trunk) == trunk


def test_resnet34_published_counts():
    # Parameter counts do not depend on the input size.
    model = build_uninitialized(resnet_imagenet, 34, input_shape=(32, 32, 3))
    assert trainable_count(model) == 98_891_506
    assert trainable_count(model.target_model()) == 21_797_672
    assert model.branches.depths == [[6, 3], [7, 3], [7, 4], [8, 4]]


def test_resnet50_target_is_torchvision_resnet50():
    model = build_uninitialized(resnet_imagenet, 50, input_shape=(32, 32, 3))
    assert trainable_count(model.target_model()) == 25_557_032
    assert trainable_count(model) == 136_483_826
    assert model.fusions[0].conv.kernel.shape == (1, 1, 4096, 2048)


def test_aux_two_distributes_in_units_of_aux():
    model = build_uninitialized(
        resnet_imagenet, 18, num_classes=3, num_branches=4, aux=2,
        input_shape=(32, 32, 3),
    )
    assert model.branches.depths == [[2, 2], [4, 2], [4, 4], [6, 4]]


def test_trunk_output_is_stride_8():
    trunk = build_uninitialized(resnet_imagenet_trunk, 18, input_shape=(224, 224, 3))
    assert tuple(trunk.output.shape) == (None, 28, 28, 128)


@pytest.mark.large
def test_fit_target_and_round_trip_at_default_size(tmp_path):
    model = resnet_imagenet(18, num_classes=10, num_branches=2, aux=1, fusion="se")
    check_fit_target_and_round_trip(model, tmp_path)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(depth=101), ValueError, "depth=101"),
        (dict(num_branches=1), ValueError, "num_branches=1"),
        (dict(aux=-1), ValueError, "aux=-1"),
        (dict(num_classes=0), ValueError, "num_classes=0"),
        (dict(input_shape=(16, 16, 3)), ValueError, "at least 32x32"),
        (dict(input_shape=(3, 224, 224)), ValueError, "channels-first"),
        (dict(fusion="sk"), ValueError, "fusion='sk'"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    kwargs.setdefault("input_shape", (32, 32, 3))
    with pytest.raises(error, match=match):
        build_uninitialized(resnet_imagenet, **kwargs)
