import numpy as np
import pytest

from keras_ahbf.models import mobilenet_v2_cifar
from keras_ahbf.models.mobilenet_v2_cifar import mobilenet_v2_cifar_trunk
from keras_ahbf.testing.test_case import build_uninitialized
from keras_ahbf.testing.test_case import check_fit_target_and_round_trip
from keras_ahbf.testing.test_utils import to_numpy
from keras_ahbf.testing.test_utils import trainable_count


def inverted_residual(cin, cout, t):
    hidden = cin * t
    return cin * hidden + 2 * hidden + 9 * hidden + 2 * hidden + hidden * cout + 2 * cout


def stages(cin, settings):
    n = 0
    for t, c, blocks in settings:
        for _ in range(blocks):
            n += inverted_residual(cin, c, t)
            cin = c
    return n, cin


def mobilenet_counts(classes, num_branches, aux, w=0.5):
    ch = lambda c: int(c * w)
    stem = 9 * 3 * ch(32) + 2 * ch(32)
    trunk, cin = stages(ch(32), [(1, ch(16), 1), (6, ch(24), 2), (6, ch(32), 3), (6, ch(64), 4)])
    trunk += stem
    branches = []
    for b in range(num_branches):
        # The extra blocks alternate over the three stages, aux at a time.
        d = [3 + aux * -(-b // 3), 3 + aux * -(-(b - 1) // 3) if b >= 1 else 3,
             1 + aux * (b // 3)]
        n, c = stages(cin, [(6, ch(96), d[0]), (6, ch(160), d[1]), (6, ch(320), d[2])])
        n += c * 1280 + 2 * 1280 + 1280 * classes + classes
        branches.append(n)
    fusion = (2560 * 1280 + 1280) + 2 * 1280 + (1280 * 2 + 2) + 4
    return trunk + branches[0], trunk + sum(branches) + (num_branches - 1) * fusion


def test_default_counts_and_branch_depths():
    model = build_uninitialized(mobilenet_v2_cifar)  # 100 classes, B=4, aux=4, width 0.5, 32x32
    assert model._input_shape_for_build == (None, 32, 32, 3)
    target, full = mobilenet_counts(100, 4, 4)
    assert (target, full) == (812_836, 15_221_858)
    assert trainable_count(model) == full
    assert trainable_count(model.target_model()) == target
    assert model.branches.depths == [[3, 3, 1], [7, 3, 1], [7, 7, 1], [7, 7, 5]]


def test_trunk_shape():
    trunk = build_uninitialized(mobilenet_v2_cifar_trunk)
    assert tuple(trunk.output.shape) == (None, 4, 4, 32)


def test_branches_really_differ_in_depth():
    """Every branch has its own, deeper stages (the published code ran
    branch 0's 96- and 160-channel blocks in every branch)."""
    model = build_uninitialized(mobilenet_v2_cifar, num_classes=3, num_branches=3, aux=1)
    stages = model.branches.stages
    assert [len(s.blocks) for s in stages] == [7, 8, 9]
    ids = [set(map(id, s.blocks)) for s in stages]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # Branch 1's extra block is in the 96-channel stage, branch 2's in the
    # 160-channel stage.
    filters = [[b.filters for b in s.blocks] for s in stages]
    assert filters[1].count(48) == 4 and filters[1].count(80) == 3
    assert filters[2].count(48) == 4 and filters[2].count(80) == 4


@pytest.mark.large
def test_fit_target_and_round_trip_with_really_deeper_branches(tmp_path):
    model = mobilenet_v2_cifar(num_classes=3, num_branches=2, aux=1)
    loaded = check_fit_target_and_round_trip(model, tmp_path)
    # Every branch runs its own, deeper stages (the published code ran
    # branch 0's 96- and 160-channel blocks in every branch).
    assert [len(s.blocks) for s in loaded.branches.stages] == [7, 8]
    assert not set(map(id, loaded.branches.stages[1].blocks)) & set(
        map(id, loaded.branches.stages[0].blocks)
    )
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    out = loaded.all_outputs(x)
    feats = loaded.trunk(x)
    for b in range(2):
        _, z = loaded.branches.call_branch(b, feats, training=False)
        np.testing.assert_allclose(
            to_numpy(z), to_numpy(out["branch_logits"][b]), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_branches=1), "num_branches=1"),
        (dict(width_multiplier=0), "width_multiplier"),
        (dict(expansion=0), "expansion=0"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_uninitialized(mobilenet_v2_cifar, **kwargs)
