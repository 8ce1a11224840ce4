"""Property-based tests of the Python builders' argument checks (issue #15).

`hypothesis` draws one argument at a time (the others valid and small) for
`keras_ahbf.models.resnet_cifar`, the `OnlineKDModel` constructor,
`keras_ahbf.layers.AdaptiveFusion` (constructed and built) and the scalar
arguments of `keras_ahbf.losses.ahbf_loss`, from valid values and from
anything else: negative, zero, huge, NaN, infinite, strings (empty,
unknown names), bools, None, containers. The property: the call succeeds,
or raises `ValueError` / `TypeError` whose message names the argument
(`Received: name=value`), never another exception. The profile (derandomised
in CI) is set in `tests/conftest.py`.
"""

import math

import keras
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from keras_ahbf import config as ahbf_config  # noqa: E402
from keras_ahbf import losses  # noqa: E402
from keras_ahbf.layers import AdaptiveFusion  # noqa: E402
from keras_ahbf.layers import HierarchicalBranches  # noqa: E402
from keras_ahbf.layers import ResidualStage  # noqa: E402
from keras_ahbf.layers.adaptive_fusion import ATTENTION_LAYERS  # noqa: E402
from keras_ahbf.models import resnet_cifar  # noqa: E402
from keras_ahbf.online_kd_model import OnlineKDModel  # noqa: E402

# Anything a caller might pass by mistake.
ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, 5e-324]),
    st.text(max_size=8),
    st.sampled_from(["", "bogus", "conv", "se", "basic", "exp", "3", "nan"]),
    st.lists(st.integers(-2, 40), max_size=4),
    st.tuples(st.integers(-2, 40), st.integers(-2, 40), st.integers(-2, 4)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(np.float32(0.5)),
    st.just(np.int64(3)),
)


def assert_accepts_or_names(call, name, value):
    """Runs `call()`; it succeeds, or fails naming `name` (a ValueError/TypeError)."""
    try:
        return call()
    except (ValueError, TypeError) as e:
        message = str(e)
        assert f"{name}" in message, f"{name}={value!r}: {type(e).__name__}: {message}"
        assert "\n" not in message.strip(), message
        return None


def one_argument(valid):
    """`(name, value)`: one argument of `valid` with a valid or arbitrary value."""
    return st.sampled_from(sorted(valid)).flatmap(
        lambda name: st.tuples(st.just(name), st.one_of(st.sampled_from(valid[name]), ANYTHING))
    )


# --------------------------------------------------------------------------
# resnet_cifar: a valid value builds a small ResNet, so few examples.

RESNET_VALID = {
    "depth": [8, 14],
    "num_classes": [3, 1],
    "num_branches": [2, 3],
    "aux": [0, 1],
    "fusion": ["conv", "se"],
    "block": [None, "basic"],
    "input_shape": [(8, 8, 3), (10, 12, 1)],
    "name": ["tiny"],
    "temperature": [3.0, 1],
    "kd_weight": [1.5, 0],
    "lambda_ta": [2.0],
    "lambda_branch": [4.0],
    "rampup_epochs": [0, 10],
    "stop_teacher_gradient": [True, False],
    "weight_decay": [5e-4, 0.0],
    "rampup_shape": ["exp", "linear"],
    "aux_ce_weight": [1.0],
    "fused_ce_weight": [0.5],
}
SMALL_RESNET = dict(depth=8, num_classes=3, num_branches=2, aux=0, input_shape=(8, 8, 3))


@settings(max_examples=min(6, settings.default.max_examples))
@given(argument=one_argument(RESNET_VALID))
@example(argument=("input_shape", (3, 32, 32)))
@example(argument=("temperature", math.nan))
def test_resnet_cifar_builds_or_names_the_argument(argument):
    name, value = argument
    kwargs = dict(SMALL_RESNET, **{name: value})
    model = assert_accepts_or_names(lambda: resnet_cifar(**kwargs), name, value)
    if model is not None:
        assert model.num_branches == kwargs["num_branches"]


# --------------------------------------------------------------------------
# OnlineKDModel: one trunk and one set of branches, shared by every example.

KD_VALID = {
    "fusion": ["conv", "cbam"],
    "temperature": [3.0, 0.5],
    "kd_weight": [1.5, 0.0],
    "lambda_ta": [2.0, 0.0],
    "lambda_branch": [4.0, 0.0],
    "rampup_epochs": [240, 0],
    "stop_teacher_gradient": [False, True],
    "weight_decay": [0.0, 5e-4],
    "rampup_shape": ["exp", "linear"],
    "aux_ce_weight": [1.0, 0.0],
    "fused_ce_weight": [1.0, 2.0],
}


@pytest.fixture(scope="module")
def trunk_and_branches():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    trunk = keras.Model(inputs, x, name="trunk")
    branches = HierarchicalBranches(ResidualStage(4, 1, strides=1), num_branches=2,
                                    aux=0, num_classes=3)
    return trunk, branches


@settings(max_examples=min(40, settings.default.max_examples))
@given(argument=one_argument(KD_VALID))
@example(argument=("rampup_epochs", 2.5))
@example(argument=("fusion", ["conv"]))
def test_online_kd_model_builds_or_names_the_argument(trunk_and_branches, argument):
    name, value = argument
    trunk, branches = trunk_and_branches
    assert_accepts_or_names(
        lambda: OnlineKDModel(trunk, branches, **{name: value}), name, value
    )


@given(value=ANYTHING)
def test_online_kd_model_refuses_a_trunk_or_branches_of_another_kind(
    trunk_and_branches, value
):
    trunk, branches = trunk_and_branches
    if not isinstance(value, dict):  # A dict is a serialized layer: tried below.
        with pytest.raises(TypeError, match="trunk"):
            OnlineKDModel(value, branches)
        with pytest.raises(TypeError, match="branches"):
            OnlineKDModel(trunk, value)


# --------------------------------------------------------------------------
# AdaptiveFusion: constructed and built on small shapes.

FUSION_VALID = {
    "attention": [None, "se", "cbam", "nonlocal"],
    "return_weights": [True, False],
    "kernel_initializer": ["default", "he_normal", "zeros",
                           keras.initializers.GlorotUniform(seed=1)],
}
FUSION_SHAPES = [(2, 4, 4, 3), (2, 4, 4, 5), (2, 6), (2, 6)]


@given(argument=one_argument(FUSION_VALID))
@example(argument=("kernel_initializer", "bogus"))
@example(argument=("kernel_initializer", 3))
def test_adaptive_fusion_builds_or_names_the_argument(argument):
    name, value = argument

    def build():
        layer = AdaptiveFusion(**{name: value})
        layer.build(FUSION_SHAPES)
        return layer

    layer = assert_accepts_or_names(build, name, value)
    if layer is not None:
        assert layer.built


def test_the_fusion_names_of_the_config_are_the_layers():
    assert set(ahbf_config.FUSIONS) == {"conv"} | set(ATTENTION_LAYERS)


# --------------------------------------------------------------------------
# ahbf_loss: the scalar arguments, on small NumPy logits.

LOSS_VALID = {
    "temperature": [3.0, 1, 0.25],
    "kd_weight": [1.5, 0],
    "lambda_ta": [2.0, 0.0],
    "lambda_branch": [4.0, 0],
    "rampup_weight": [0.5, 0.0, np.float32(0.25)],
    "stop_teacher_gradient": [False, True, np.bool_(True)],
    "aux_ce_weight": [1.0, 0.5],
    "fused_ce_weight": [1.0, 0.0],
}
RNG = np.random.default_rng(0)
LOGITS = [RNG.normal(size=(4, 5)).astype("float32") for _ in range(3)]
LABELS = np.array([0, 1, 2, 4])


@given(argument=one_argument(LOSS_VALID))
@example(argument=("temperature", 0))
@example(argument=("rampup_weight", math.inf))
def test_ahbf_loss_computes_or_names_the_argument(argument):
    name, value = argument
    terms = assert_accepts_or_names(
        lambda: losses.ahbf_loss(LABELS, LOGITS[:2], LOGITS[2:], **{name: value}),
        name, value,
    )
    if terms is not None:
        assert set(terms) >= {"ce", "kd", "total"}
