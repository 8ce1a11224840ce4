import math

import pytest

from keras_ahbf.models import densenet_cifar
from keras_ahbf.models.densenet_cifar import densenet_cifar_trunk, densenet_layers
from keras_ahbf.testing.test_case import build_uninitialized
from keras_ahbf.testing.test_case import check_fit_target_and_round_trip
from keras_ahbf.testing.test_utils import trainable_count


def dense_block(cin, k, layers, bottleneck=True, final=False):
    """Trainable parameters of a dense block; returns (params, channels)."""
    n = 0
    for _ in range(layers):
        n += 2 * cin  # BN
        if bottleneck:
            n += cin * 4 * k + 2 * 4 * k + 9 * 4 * k * k
        else:
            n += 9 * cin * k
        cin += k
    if final:
        n += 2 * cin
    return n, cin


def densenet_counts(depth, k, classes, num_branches, aux):
    L = (depth - 4) // 6
    c = 2 * k
    trunk = 9 * 3 * c
    for _ in range(2):
        n, c = dense_block(c, k, L)
        out = int(math.floor(c * 0.5))
        trunk += n + 2 * c + c * out
        c = out
    branches, channels = [], []
    for b in range(num_branches):
        n, cb = dense_block(c, k, L + b * aux, final=True)
        branches.append(n + cb * classes + classes)
        channels.append(cb)
    fusions = sum(
        (ca + cb) * cb + cb + 2 * cb + cb * 2 + 2 + 4
        for ca, cb in zip(channels[:-1], channels[1:])
    )
    return trunk + branches[0], trunk + sum(branches) + fusions, channels


def test_depth_forms():
    assert densenet_layers(40) == 6
    assert densenet_layers(100) == 16
    assert densenet_layers(40, bottleneck=False) == 12
    with pytest.raises(ValueError, match="depth=41"):
        densenet_layers(41)


def test_densenet40_default_counts():
    model = build_uninitialized(densenet_cifar)  # depth 40, k=12, 100 classes, B=4, aux=4, 32x32
    assert model._input_shape_for_build == (None, 32, 32, 3)
    target, full, channels = densenet_counts(40, 12, 100, 4, 4)
    assert (target, full) == (188_092, 1_071_046)
    assert trainable_count(model) == full
    assert trainable_count(model.target_model()) == target
    assert model.branches.depths == [6, 10, 14, 18]
    # Branch widths differ: 60 + depth * 12 channels; fusion m maps
    # C_{m-1} + C_m -> C_m.
    assert channels == [132, 180, 228, 276]
    assert [f.conv.kernel.shape[2:] for f in model.fusions] == [
        (132 + 180, 180), (180 + 228, 228), (228 + 276, 276)
    ]


def test_densenet100_default_counts():
    model = build_uninitialized(densenet_cifar, 100)
    target, full, _ = densenet_counts(100, 12, 100, 4, 4)
    assert (target, full) == (800_032, 3_464_716)
    assert trainable_count(model) == full
    assert trainable_count(model.target_model()) == target


def test_trunk_shape():
    trunk = build_uninitialized(densenet_cifar_trunk, 40)
    assert tuple(trunk.output.shape) == (None, 8, 8, 60)


def test_fit_target_and_round_trip(tmp_path):
    # DenseNet-16 (L = 2): the same architecture, fast to compile.
    model = densenet_cifar(16, num_classes=3, num_branches=2, aux=1, fusion="nonlocal")
    assert [f[-1] for f in model.branches.compute_output_shape((None, 8, 8, 24))[0]] == [
        48, 60
    ]
    check_fit_target_and_round_trip(model, tmp_path)


@pytest.mark.large
def test_fit_densenet40(tmp_path):
    model = densenet_cifar(40, num_classes=10, num_branches=3, aux=2)
    check_fit_target_and_round_trip(model, tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(depth=42), "depth=42"),
        (dict(num_branches=1), "num_branches=1"),
        (dict(compression=1.5), "compression"),
        (dict(growth_rate=0), "growth_rate=0"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_uninitialized(densenet_cifar, **kwargs)
