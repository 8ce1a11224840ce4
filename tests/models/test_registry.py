import pytest

from keras_ahbf import models
from keras_ahbf.online_kd_model import OnlineKDModel
from keras_ahbf.testing.test_case import build_uninitialized


@pytest.mark.parametrize(
    "name, builder, fixed",
    [
        ("resnet32", models.resnet_cifar, {"depth": 32}),
        ("ResNet-110", models.resnet_cifar, {"depth": 110}),
        ("resnet18_imagenet", models.resnet_imagenet, {"depth": 18}),
        ("resnet34_imagenet", models.resnet_imagenet, {"depth": 34}),
        ("vgg16", models.vgg_cifar, {"depth": 16}),
        ("densenet40", models.densenet_cifar, {"depth": 40, "growth_rate": 12}),
        ("DenseNet-100", models.densenet_cifar, {"depth": 100, "growth_rate": 12}),
        ("mobilenetv2", models.mobilenet_v2_cifar, {}),
        ("mobilenet_v2", models.mobilenet_v2_cifar, {}),
    ],
)
def test_get_builder_maps_names(name, builder, fixed):
    partial = models.get_builder(name)
    assert partial.func is builder
    assert partial.keywords == fixed


def test_available_backbones_lists_every_paper_backbone():
    names = models.available_backbones()
    for name in ("resnet32", "resnet56", "resnet110", "resnet18_imagenet",
                 "resnet34_imagenet", "vgg16", "densenet40", "densenet100",
                 "mobilenetv2"):
        assert name in names


def test_build_backbone_passes_arguments():
    model = build_uninitialized(
        models.build_backbone, "resnet8", num_classes=10, num_branches=2, aux=1,
        fusion="se",
    )
    assert isinstance(model, OnlineKDModel)
    assert model.branches.depths == [1, 2]
    assert model.fusions[0].attention == "se"


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="Valid names: .*densenet40.*vgg16"):
        models.get_builder("resnet99")
    with pytest.raises(ValueError, match="resnet18_imagenet"):
        models.build_backbone("resnet18")
    with pytest.raises(TypeError, match="name"):
        models.get_builder(32)
