"""The pure-Python training configuration: presets, new options, checks."""

import dataclasses
import math

import pytest

from keras_ahbf import config


def test_config_imports_no_keras_or_backend():
    import subprocess
    import sys

    code = (
        "import sys, keras_ahbf.config as c; c.resolve_config('cifar100', epochs=3);"
        "bad = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_paper_preset_is_the_default_and_the_published_method():
    c = config.resolve_config("cifar100", epochs=30)
    assert c.recipe == "paper"
    assert (c.temperature, c.kd_weight, c.lambda_ta, c.lambda_branch) == (3.0, 1.5, 2.0, 4.0)
    assert (c.rampup_shape, c.aux_ce_weight, c.fused_ce_weight) == ("exp", 1.0, 1.0)
    assert not c.stop_teacher_gradient and not c.zero_init_residual and not c.baseline
    assert c.warmup_epochs == 0 and c.validation_split == 0.0
    assert c.rampup_epochs == 24  # scaled from 240 of 300


@pytest.mark.parametrize("name", sorted(config.PRESETS))
def test_every_preset_resolves_and_explicit_options_win(name):
    preset = config.PRESETS[name]
    c = config.resolve_config("cifar10", epochs=12, recipe=name)
    assert c.recipe == name
    for key, value in preset.options.items():
        assert getattr(c, key) == value, key
    # An explicit option overrides the preset.
    c2 = config.resolve_config("cifar10", epochs=12, recipe=name, kd_weight=0.25, rampup_epochs=3)
    assert c2.kd_weight == 0.25 and c2.rampup_epochs == 3


def test_short_preset_is_the_measured_structure_over_the_paper_recipe():
    short = config.resolve_config("cifar100", epochs=10, recipe="short")
    paper = config.resolve_config("cifar100", epochs=10)
    assert (short.num_branches, short.aux, short.recipe) == (2, 2, "short")
    differs = {k for k, v in short.to_dict().items() if paper.to_dict()[k] != v}
    assert differs == {"num_branches", "aux", "recipe"}
    # The branch structure is AHBF-OKD's: DML ignores it, explicit options win.
    assert config.resolve_config("cifar100", recipe="short", method="dml").method == "dml"
    assert config.resolve_config("cifar100", recipe="short", aux=1).aux == 1


def test_a_preset_applies_under_explicit_options(monkeypatch):
    monkeypatch.setitem(
        config.PRESETS, "test", config.Preset("test", {"rampup_epochs": 0, "kd_weight": 0.5})
    )
    c = config.resolve_config("cifar10", epochs=12, recipe="test", kd_weight=2.0)
    assert (c.recipe, c.rampup_epochs, c.kd_weight) == ("test", 0, 2.0)


def test_unknown_preset_is_refused_by_name():
    with pytest.raises(ValueError, match="recipe.*'fast'"):
        config.resolve_config("cifar10", recipe="fast")


FLOAT_OPTIONS = (
    "lr", "momentum", "lr_decay", "weight_decay", "temperature", "kd_weight",
    "lambda_ta", "lambda_branch", "aux_ce_weight", "fused_ce_weight", "validation_split",
)


@pytest.mark.parametrize("name", FLOAT_OPTIONS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_float_options_are_refused(name, value):
    with pytest.raises(ValueError, match=f"{name}.*finite"):
        config.resolve_config("cifar10", **{name: value})


@pytest.mark.parametrize(
    "options, name",
    [
        (dict(validation_split=1.0), "validation_split"),
        (dict(validation_split=-0.1), "validation_split"),
        (dict(momentum=1.0), "momentum"),
        (dict(rampup_shape="cosine"), "rampup_shape"),
        (dict(warmup_epochs=-1), "warmup_epochs"),
        (dict(warmup_epochs=5, epochs=4), "warmup_epochs"),
        (dict(aux_ce_weight=-1.0), "aux_ce_weight"),
        (dict(baseline="yes"), "baseline"),
        (dict(zero_init_residual=1), "zero_init_residual"),
    ],
)
def test_bad_new_options_name_the_option(options, name):
    with pytest.raises((ValueError, TypeError), match=name):
        config.resolve_config("cifar10", **options)


def test_round_trip_and_old_config_files_still_load():
    c = config.resolve_config("digits", epochs=3, recipe="paper", validation_split=0.1)
    assert config.TrainConfig.from_dict(c.to_dict()) == c
    old = c.to_dict()
    for key in ("recipe", "baseline", "rampup_shape", "aux_ce_weight", "fused_ce_weight",
                "zero_init_residual", "warmup_epochs", "validation_split"):
        old.pop(key)
    restored = config.TrainConfig.from_dict(old)
    assert restored.recipe == "paper" and restored.aux_ce_weight == 1.0


def test_kd_options_are_the_model_arguments():
    import inspect

    from keras_ahbf.online_kd_model import OnlineKDModel

    parameters = inspect.signature(OnlineKDModel.__init__).parameters
    assert set(config.KD_OPTIONS) <= set(parameters)
    # One source of the published defaults: the model's defaults are PAPER's.
    for field in ("temperature", "kd_weight", "lambda_ta", "lambda_branch",
                  "stop_teacher_gradient", "rampup_shape", "aux_ce_weight", "fused_ce_weight"):
        assert parameters[field].default == getattr(config.PAPER, field), field


@pytest.mark.parametrize("name", sorted(config.METHOD_SPECS))
def test_every_method_spec_is_complete(name):
    """Each `METHOD_SPECS` entry names its builder, its defaults and options a
    `TrainConfig` holds, without importing the builder's module (Keras)."""
    spec = config.METHOD_SPECS[name]
    assert spec.name == name and name in config.METHODS and name != "ahbf"
    module, function = spec.builder.split(":")
    assert module.startswith("keras_ahbf.methods.") and function.isidentifier()
    fields = {f.name for f in dataclasses.fields(config.TrainConfig)}
    assert set(spec.options) <= fields and set(config.PEER_MODEL_OPTIONS) <= fields
    for option in ("temperature", "kd_weight", "stop_teacher_gradient", "rampup_epochs",
                   "num_peers"):
        assert hasattr(spec.defaults, option), option
    resolved = config.resolve_config("cifar100", method=name, epochs=30)
    assert resolved.temperature == spec.defaults.temperature
    assert resolved.num_peers == spec.defaults.num_peers
    # The ramp-up is given for the 300-epoch recipe and scales with the budget.
    assert resolved.rampup_epochs == config.scale_epochs(spec.defaults.rampup_epochs, 30, 300)
    assert set(resolved.method_options()) == {*config.PEER_MODEL_OPTIONS, *spec.options}


def test_a_method_refuses_the_options_of_the_others():
    for name in config.METHOD_SPECS:
        with pytest.raises(ValueError, match="num_branches"):
            config.resolve_config("cifar100", method=name, num_branches=3)
    with pytest.raises(ValueError, match="num_peers"):
        config.resolve_config("cifar100", num_peers=3)
    specs = list(config.METHOD_SPECS.values())
    for spec in specs:
        for other in specs:
            for option in set(other.options) - set(spec.options):
                with pytest.raises(ValueError, match=option):
                    config.resolve_config("cifar100", method=spec.name, **{option: 1})
