import keras
import numpy as np
import pytest

from keras_ahbf.layers import CallableStage, RepeatedBlockStage, ResidualStage
from keras_ahbf.models import from_backbone
from keras_ahbf.testing.test_case import check_fit_target_and_round_trip
from keras_ahbf.testing.test_utils import to_numpy
from keras_ahbf.testing.test_utils import trainable_count

@pytest.fixture
def no_weight_init():
    """Layers get weight shapes but no values (fast on JAX): for tests that
    never run the model."""
    with keras.StatelessScope(initialize_variables=False):
        yield


X = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")


def small_resnet(input_shape=(16, 16, 3), name="small_resnet"):
    """A functional CNN: stem, a strided stage and two residual blocks."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="down_conv")(x)
    x = keras.layers.ReLU(name="down_relu")(x)
    for i in (1, 2):
        h = keras.layers.Conv2D(16, 3, padding="same", name=f"res{i}_conv1")(x)
        h = keras.layers.ReLU(name=f"res{i}_relu1")(h)
        h = keras.layers.Conv2D(16, 3, padding="same", name=f"res{i}_conv2")(h)
        x = keras.layers.Add(name=f"res{i}_add")([x, h])
        x = keras.layers.ReLU(name=f"res{i}_out")(x)
    x = keras.layers.Conv2D(24, 1, name="head_conv")(x)
    return keras.Model(inputs, x, name=name)


@keras.saving.register_keras_serializable(package="keras_ahbf_tests")
def conv_stack(depth):
    return keras.Sequential(
        [keras.layers.Conv2D(12, 3, padding="same", activation="relu",
                             name=f"conv_{i}") for i in range(depth)],
        name="conv_stack",
    )


def test_derived_stage_repeats_the_last_residual_block():
    backbone = small_resnet()
    model = from_backbone(backbone, "down_relu", num_classes=5, num_branches=3, aux=2)
    stages = model.branches.stages
    assert all(isinstance(s, RepeatedBlockStage) for s in stages)
    assert [len(s.blocks) for s in stages] == [1, 3, 5]
    # The last residual block (res2, with its output ReLU) is repeated;
    # res1 is the prefix, the 1x1 head convolution the suffix.
    block_layers = [l.name for l in stages[0].blocks[0].layers[1:]]
    assert block_layers == ["res2_conv1", "res2_relu1", "res2_conv2", "res2_add", "res2_out"]
    assert stages[0].suffix_model.layers[-1].name == "head_conv"
    # The trunk shares layers and weights with the backbone.
    assert model.trunk.get_layer("down_conv") is backbone.get_layer("down_conv")
    # Branch 0 is the rest of the backbone, with its weights copied.
    feats = model.branches.stages[0](model.trunk(X))
    np.testing.assert_allclose(to_numpy(feats), to_numpy(backbone(X)), rtol=1e-5, atol=1e-5)
    block = sum(int(np.prod(v.shape)) for v in stages[0].blocks[0].trainable_variables)
    assert block == 2 * (9 * 16 * 16 + 16)
    head = 24 * 5 + 5
    target = trainable_count(backbone) + head
    assert trainable_count(model.target_model()) == target
    fusion = (48 * 24 + 24) + 2 * 24 + (24 * 2 + 2) + 4
    rest = trainable_count(backbone) - trainable_count(model.trunk)
    assert trainable_count(model) == (
        trainable_count(model.trunk) + 3 * (rest + head) + (0 + 2 + 4) * block + 2 * fusion
    )


def test_derived_model_fit_target_and_round_trip(tmp_path):
    model = from_backbone(
        small_resnet(), "stem_relu", num_classes=3, num_branches=2, aux=1, fusion="se"
    )
    check_fit_target_and_round_trip(model, tmp_path)


def test_explicit_repeat_block():
    with keras.StatelessScope(initialize_variables=False):
        model = from_backbone(
            small_resnet(), "down_relu", num_classes=3, num_branches=2, aux=1,
            repeat_block=("res1_conv1", "res1_out"), copy_weights=False,
        )
    stage = model.branches.stages[1]
    assert stage.prefix_model is None
    assert len(stage.blocks) == 2
    assert [l.name for l in stage.suffix_model.layers[1:3]] == ["res2_conv1", "res2_relu1"]


def test_template_stage_layer():
    with keras.StatelessScope(initialize_variables=False):
        model = from_backbone(
            small_resnet(), "down_relu", ResidualStage(32, depth=1, strides=1),
            num_classes=4, num_branches=3, aux=1,
        )
    assert model.branches.depths == [1, 2, 3]
    assert tuple(model.target_model().output.shape) == (None, 4)


def test_function_stage():
    model = from_backbone(
        small_resnet(), "down_relu", conv_stack, base_depth=1,
        num_classes=3, num_branches=2, aux=2,
    )
    stages = model.branches.stages
    assert all(isinstance(s, CallableStage) for s in stages)
    assert [len(s.stage.layers) for s in stages] == [1, 3]
    out = model.all_outputs(X)
    assert [tuple(z.shape) for z in out["branch_logits"]] == [(4, 3), (4, 3)]
    np.testing.assert_allclose(
        to_numpy(model.target_model()(X)), to_numpy(out["branch_logits"][0]),
        rtol=1e-5, atol=1e-5,
    )


@pytest.mark.usefixtures("no_weight_init")
def test_unregistered_function_warns():
    def local_stack(depth):
        return keras.Sequential([keras.layers.Conv2D(4, 1) for _ in range(depth)])

    with pytest.warns(UserWarning, match="not registered"):
        from_backbone(small_resnet(), "down_relu", local_stack, base_depth=1,
                      num_classes=2, num_branches=2)


@pytest.mark.usefixtures("no_weight_init")
def test_unknown_split_point_lists_valid_names():
    with pytest.raises(ValueError, match=r"no layer named 'down_rel'.*'down_relu'"):
        from_backbone(small_resnet(), "down_rel", num_classes=3)
    with pytest.raises(ValueError, match="Some valid names"):
        from_backbone(small_resnet(), "zzzz", num_classes=3)


@pytest.mark.usefixtures("no_weight_init")
def test_split_point_errors():
    inputs = keras.Input((16, 16, 3))
    flat = keras.layers.Flatten(name="flat")(inputs)
    outputs = keras.layers.Dense(4, name="fc")(flat)
    mlp = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="4D"):
        from_backbone(mlp, "flat", num_classes=3)
    with pytest.raises(ValueError, match="last layer"):
        from_backbone(small_resnet(), "head_conv", num_classes=3)
    with pytest.raises(ValueError, match="input layer"):
        backbone = small_resnet()
        from_backbone(backbone, backbone.layers[0].name, num_classes=3)
    with pytest.raises(ValueError, match="repeatable residual block"):
        from_backbone(small_resnet(), "res2_out", num_classes=3)
    with pytest.raises(ValueError, match="base_depth"):
        from_backbone(small_resnet(), "down_relu", conv_stack, num_classes=3)
    with pytest.raises(TypeError, match="backbone"):
        from_backbone("resnet", "x", num_classes=3)


@pytest.mark.usefixtures("no_weight_init")
def test_skip_connection_across_the_split_is_rejected():
    inputs = keras.Input((8, 8, 4))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(a)
    out = keras.layers.Add(name="skip")([a, b])
    with pytest.raises(ValueError, match="skips the split"):
        from_backbone(keras.Model(inputs, out), "b", num_classes=2)


@pytest.mark.usefixtures("no_weight_init")
def test_branches_that_do_not_fit_together_raise():
    @keras.saving.register_keras_serializable(package="keras_ahbf_tests")
    def strided_stack(depth):
        # Every added layer halves the map: branch outputs differ in size.
        return keras.Sequential(
            [keras.layers.Conv2D(8, 3, strides=2, padding="same") for _ in range(depth)]
        )

    with pytest.raises(ValueError, match="do not fit together"):
        from_backbone(small_resnet(), "down_relu", strided_stack, base_depth=1,
                      num_classes=2, num_branches=2, aux=1)

    @keras.saving.register_keras_serializable(package="keras_ahbf_tests")
    def pooled(depth):
        return keras.Sequential(
            [keras.layers.Conv2D(8, 1) for _ in range(depth)]
            + [keras.layers.GlobalAveragePooling2D()]
        )

    with pytest.raises(ValueError, match="4D"):
        from_backbone(small_resnet(), "down_relu", pooled, base_depth=1,
                      num_classes=2, num_branches=2)


def test_keras_applications_mobilenetv2():
    backbone = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), include_top=False, alpha=0.35
    )
    # Split between the 96- and 160-channel stages ("block_12_add").
    model = from_backbone(backbone, "block_12_add", num_classes=10, num_branches=2, aux=1)
    stage = model.branches.stages[0]
    assert [l.name for l in stage.blocks[0].layers][-1] == "block_15_add"
    assert [len(s.blocks) for s in model.branches.stages] == [1, 2]
    # Branch 0 starts from the backbone's weights (e.g. pretrained ones).
    for part, name in ((stage.prefix_model, "block_13_expand"),
                       (stage.blocks[0], "block_15_project"),
                       (stage.suffix_model, "Conv_1")):
        np.testing.assert_array_equal(
            to_numpy(part.get_layer(name).kernel),
            to_numpy(backbone.get_layer(name).kernel),
        )
    assert trainable_count(model.target_model()) == trainable_count(backbone) + 1280 * 10 + 10
    assert "." not in model.name


@pytest.mark.large
def test_keras_applications_resnet50_fit(tmp_path):
    # 64x64 (2x2 maps in stage 5): at 32x32 the 1x1 maps of a batch of two
    # leave BatchNorm nothing to normalise and one SGD step diverges.
    backbone = keras.applications.ResNet50(
        weights=None, input_shape=(64, 64, 3), include_top=False
    )
    model = from_backbone(backbone, "conv4_block6_out", num_classes=5, num_branches=2, aux=1)
    assert [len(s.blocks) for s in model.branches.stages] == [1, 2]
    check_fit_target_and_round_trip(model, tmp_path, n=4)


@pytest.mark.large
def test_keras_applications_mobilenetv2_fit(tmp_path):
    backbone = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), include_top=False, alpha=0.35
    )
    model = from_backbone(backbone, "block_12_add", num_classes=4, num_branches=3, aux=1)
    check_fit_target_and_round_trip(model, tmp_path)
