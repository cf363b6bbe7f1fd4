"""Experiment files: validation messages, --set overrides, variants, early refusal.

A wrong key, type or value is refused when the file is loaded, naming the key,
the value and what is allowed; a wrong name or hyperparameter of an object the
experiment builds is refused before the first variant trains, so no run
directory is made.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from annlens.errors import AnnlensError, ConfigError
from annlens.experiment import (
    Experiment,
    load_config,
    resolve_variants,
    run_experiment,
    validate,
)
from annlens.experiment.build import build_all, build_model, schedule_monitor
from annlens.experiment.config import parse_override
from experiment_support import tiny, two_variants, write_experiment


def problems(config: dict) -> str:
    """The message validation gives ``config``."""
    with pytest.raises(ConfigError) as caught:
        validate(config)
    return str(caught.value)


# -- keys, types and ranges ------------------------------------------------------------


def test_unknown_top_level_key_is_refused_with_did_you_mean_and_allowed_keys():
    message = problems({"nmae": "x"})
    assert "nmae: unknown key (did you mean 'name'?)" in message
    assert "allowed: name, description, seed, data, model" in message


def test_unknown_key_in_a_section_names_its_path_and_the_section_keys():
    message = problems({"training": {"epoch": 3}})
    assert "training.epoch: unknown key (did you mean 'epochs'?)" in message
    assert "allowed: epochs, batch_size, steps, early_stopping, nan_guard" in message


def test_unknown_key_in_a_nested_section_names_the_nested_path():
    message = problems({"training": {"early_stopping": {"patiance": 2}}})
    assert "training.early_stopping.patiance: unknown key" in message
    assert "(did you mean 'patience'?)" in message


def test_wrong_type_names_the_key_the_value_and_the_type_wanted():
    message = problems({"training": {"epochs": "two"}})
    assert "training.epochs: Input should be a valid integer (got 'two')" in message


@pytest.mark.parametrize("value", ["3", True, 2.0])
def test_a_string_bool_or_float_is_not_taken_for_an_integer(value):
    message = problems({"training": {"epochs": value}})
    assert f"training.epochs: Input should be a valid integer (got {value!r})" in (
        message
    )


def test_an_integer_is_taken_for_a_float():
    experiment = validate({"data": {"val_fraction": 0}})
    assert experiment.data.val_fraction == 0.0
    assert isinstance(experiment.data.val_fraction, float)


@pytest.mark.parametrize(
    ("section", "key", "value", "bound"),
    [
        ("training", "epochs", 0, "greater than or equal to 1"),
        ("training", "batch_size", -4, "greater than or equal to 1"),
        ("data", "val_fraction", 1.5, "less than 1"),
        ("model", "dropout", 1.0, "less than 1"),
        ("regularization", "l2", -0.1, "greater than or equal to 0"),
        ("collect", "every", 0, "greater than or equal to 1"),
    ],
)
def test_out_of_range_value_names_the_key_the_value_and_the_bound(
    section, key, value, bound
):
    message = problems({section: {key: value}})
    assert f"{section}.{key}: Input should be {bound}" in message
    assert f"(got {value!r})" in message


def test_a_value_outside_a_fixed_set_lists_the_allowed_ones():
    message = problems({"model": {"dtype": "float16"}})
    assert "model.dtype: Input should be 'float32' or 'float64' (got 'float16')" in (
        message
    )


def test_a_bad_hidden_width_is_refused():
    message = problems({"model": {"hidden": [16, 0]}})
    assert "model.hidden: every hidden width must be >= 1 (got [16, 0])" in message


def test_a_value_of_a_union_is_one_line_naming_both_forms():
    message = problems({"model": {"init": 3}})
    assert "\n" not in message
    assert "model.init: Input should be a valid string or a table" in message
    assert "(got 3)" in message


def test_a_wrong_key_inside_an_explicit_layer_names_its_position():
    message = problems({"model": {"layers": [{"type": "dense"}, {"type": "conv"}]}})
    assert (
        "model.layers.1.type: unknown layer type; allowed: dense, activation" in message
    )
    assert "(got 'conv')" in message


def layers_problem(*layers: dict) -> str:
    """The message validation gives a model of these explicit ``layers``."""
    return problems({"model": {"layers": list(layers)}})


def test_a_dense_layer_refuses_the_keys_of_other_types_naming_what_it_accepts():
    message = layers_problem(
        {"type": "dense", "units": 16, "rate": 0.5, "momentum": 0.3}
    )
    assert (
        "model.layers.0: a dense layer does not take 'rate', 'momentum'; "
        "it accepts type, units, activation, init, bias, name"
    ) in message


def test_a_dropout_layer_refuses_units_activation_and_init():
    message = layers_problem(
        {"type": "dense"},
        {
            "type": "dropout",
            "rate": 0.5,
            "units": 3,
            "activation": "relu",
            "init": "he",
        },
    )
    assert (
        "model.layers.1: a dropout layer does not take 'units', 'activation', "
        "'init'; it accepts type, rate, name"
    ) in message


def test_an_unknown_layer_key_is_refused_with_did_you_mean():
    message = layers_problem({"type": "dense", "unit": 3})
    assert "a dense layer does not take 'unit' (did you mean 'units'?)" in message


def test_a_dropout_layer_without_rate_is_refused():
    message = layers_problem({"type": "dropout"}, {"type": "dense"})
    assert "model.layers.0: a dropout layer needs rate=" in message


def test_an_activation_layer_without_activation_is_refused():
    message = layers_problem({"type": "activation"}, {"type": "dense"})
    assert "model.layers.0: an activation layer needs activation=" in message


@pytest.mark.parametrize(
    "key, value",
    [("hidden", [8]), ("activation", "tanh"), ("dropout", 0.5), ("batchnorm", True)],
)
def test_stack_keys_beside_explicit_layers_are_refused(key, value):
    message = problems({"model": {key: value, "layers": [{"type": "dense"}]}})
    assert f"model: model.layers describes the whole model, so {key} would" in message


def test_empty_explicit_layers_are_refused():
    message = problems({"model": {"layers": []}})
    assert "model: model.layers is empty" in message


def test_a_variant_setting_a_stack_key_beside_explicit_layers_is_refused():
    experiment = validate(
        {
            "model": {"layers": [{"type": "dense"}]},
            "variants": [{"name": "wide", "model": {"hidden": [8]}}],
        }
    )
    with pytest.raises(ConfigError, match="variants.0.model: model.layers describes"):
        resolve_variants(experiment)


def test_variants_of_explicit_layers_keep_them():
    experiment = validate(
        {
            "model": {"layers": [{"type": "dense", "units": 8}, {"type": "dense"}]},
            "variants": [{"name": "float64", "model": {"dtype": "float64"}}],
        }
    )
    [(_, variant)] = resolve_variants(experiment)
    assert variant.model.layers is not None and len(variant.model.layers) == 2


@pytest.mark.parametrize(
    "first", [{"type": "batchnorm"}, {"type": "dropout", "rate": 0.2}]
)
def test_explicit_layers_may_start_with_batchnorm_or_dropout(first):
    config = {
        "model": {
            "layers": [
                first,
                {"type": "dense", "units": 8, "name": "h"},
                {"type": "dense"},
            ]
        }
    }
    model = build_model(validate(config).model, n_in=5, n_out=3, seed=0)
    assert model.in_features == 5
    assert model.layers[1].name == "h"


def test_every_problem_is_listed_at_once():
    message = problems({"seed": "x", "training": {"epochs": 0}, "colect": {}})
    assert message.startswith("experiment has 3 problems:\n")
    for key in ("seed:", "training.epochs:", "colect:"):
        assert key in message


def test_a_capitalised_unknown_key_is_kept_in_the_message():
    message = problems({"Model": {}})
    assert "Model: unknown key (did you mean 'model'?)" in message


# -- variants --------------------------------------------------------------------------


def test_unknown_section_in_a_variant_is_refused_with_did_you_mean():
    message = problems({"variants": [{"name": "a", "modle": {}}]})
    assert "variants.0.modle: unknown key (did you mean 'model'?)" in message


def test_unknown_key_inside_a_variant_section_is_refused_when_loading(tmp_path):
    path = write_experiment(
        tmp_path / "e.toml",
        tiny(variants=[{"name": "ok"}, {"name": "b", "model": {"hiden": [3]}}]),
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith("variant 'b': variants.1.model.hiden")
    assert "variants.1.model.hiden: unknown key (did you mean 'hidden'?)" in message
    assert "allowed: dtype, hidden, activation" in message


def test_out_of_range_value_inside_a_variant_is_refused_when_loading(tmp_path):
    config = tiny(variants=[{"name": "a", "training": {"epochs": -1}}])
    path = write_experiment(tmp_path / "e.toml", config)
    with pytest.raises(ConfigError, match=r"variants\.0\.training\.epochs: .*"):
        load_config(path)


def test_repeated_variant_names_are_refused():
    message = problems({"variants": [{"name": "a"}, {"name": "a"}]})
    assert "variant names must be unique; repeated: ['a']" in message


@pytest.mark.parametrize("name", ["relu he", "", ".hidden", "a/b"])
def test_a_variant_name_must_be_a_plain_name(name):
    message = problems({"variants": [{"name": name}]})
    assert "variants.0.name: Input should be a plain name" in message
    assert f"(got {name!r})" in message


def test_a_variant_merges_its_settings_into_the_base():
    config = tiny(variants=[{"name": "fast", "optimizer": {"lr": 0.5}}])
    ((name, resolved),) = resolve_variants(validate(config))
    assert name == "fast"
    assert resolved.optimizer.settings() == {"lr": 0.5, "momentum": 0.9}
    assert resolved.model.hidden == [16]


def test_a_variant_naming_another_optimizer_starts_it_afresh():
    config = tiny(variants=[{"name": "adam", "optimizer": {"name": "adam"}}])
    ((_, resolved),) = resolve_variants(validate(config))
    assert resolved.optimizer.name == "adam"
    assert resolved.optimizer.settings() == {}


def test_a_variant_seed_replaces_the_base_seed():
    config = tiny(variants=[{"name": "a"}, {"name": "b", "seed": 11}])
    seeds = [resolved.seed for _, resolved in resolve_variants(validate(config))]
    assert seeds == [7, 11]


def test_no_variants_resolve_to_the_base_alone():
    experiment = validate(tiny())
    assert resolve_variants(experiment) == [("base", experiment)]


# -- names and hyperparameters of the objects built ------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"optimizer": {"name": "adamm"}}, "unknown optimizer 'adamm' (did you mean"),
        ({"optimizer": {"lrr": 0.1}}, "no hyperparameter 'lrr'"),
        ({"loss": {"name": "crossentropy"}}, "unknown loss 'crossentropy'"),
        ({"loss": {"name": "mse", "foo": 1}}, "'foo'"),
        ({"schedule": {"name": "cosin"}}, "unknown schedule 'cosin'"),
        ({"schedule": {"name": "step", "gama": 0.1}}, "no setting 'gama'"),
        ({"model": {"activation": "rleu"}}, "unknown activation 'rleu'"),
        ({"model": {"init": "he_norm"}}, "unknown initialiser 'he_norm'"),
        ({"model": {"init": {"name": "normal", "sd": 1.0}}}, "'sd'"),
        ({"data": {"name": "irsi"}}, "unknown data set 'irsi' (did you mean 'iris'?)"),
        ({"optimizer": {"lr": -1.0}}, "optimizer.lr = -1.0: the learning rate must"),
        ({"collect": {"stats": ["grad_norm", "bogus"]}}, "unknown collector 'bogus'"),
        ({"collect": {"layers": "conv*"}}, "collect.layers 'conv*' matches no layer"),
        (
            {"training": {"early_stopping": {"monitor": "val_acc"}}},
            "monitor 'val_acc' is not a column of the history (did you mean",
        ),
        (
            {"data": {"val_fraction": 0.0}, "training": {"early_stopping": {}}},
            "help: hold out validation data (data.val_fraction > 0)",
        ),
        (
            {"loss": {"name": "mse"}},
            "loss 'mse' does not fit the data (classification, 3 classes)",
        ),
    ],
)
def test_a_bad_name_or_setting_in_the_last_variant_is_refused_before_training(
    tmp_path, override, expected
):
    config = tiny(variants=[{"name": "good"}, {"name": "bad", **override}])
    out = tmp_path / "runs"
    with pytest.raises(AnnlensError) as caught:
        run_experiment(config, out=out)
    assert str(caught.value).startswith("variant 'bad': ")
    assert expected in str(caught.value)
    assert not out.exists()  # no run directory: nothing trained


def test_a_plateau_schedule_without_validation_follows_the_training_loss():
    config = tiny(data={"val_fraction": 0.0}, schedule={"name": "plateau"})
    (parts,) = build_all(validate(config))
    assert schedule_monitor(parts) == "loss"


def test_the_builtin_default_experiment_is_valid_and_builds():
    experiment = load_config()
    assert [v.name for v in experiment.variants] == [
        "sigmoid-normal",
        "sigmoid-glorot",
        "relu-he",
    ]
    parts = build_all(experiment)
    assert [len(p.model.layers) for p in parts] == [9, 9, 9]


# -- reading files and --set overrides -------------------------------------------------


def test_a_missing_experiment_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nowhere.toml")


def test_a_file_that_is_not_toml_is_refused_naming_it(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text("[training\nepochs = 2\n")
    with pytest.raises(ConfigError, match=r"e\.toml' is not valid TOML"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "get", "value"),
    [
        ("training.epochs=3", lambda e: e.training.epochs, 3),
        ("optimizer.lr=1e-3", lambda e: e.optimizer.settings()["lr"], 0.001),
        ("training.nan_guard=false", lambda e: e.training.nan_guard, False),
        ("data.name=wine", lambda e: e.data.name, "wine"),
        ('name="my run"', lambda e: e.name, "my run"),
        ("model.hidden=[8, 4]", lambda e: e.model.hidden, [8, 4]),
        ("optimizer.nesterov=true", lambda e: e.optimizer.settings()["nesterov"], True),
        (
            "collect.stats=['grad_norm', 'dead_units']",
            lambda e: e.collect.stats,
            ["grad_norm", "dead_units"],
        ),
    ],
)
def test_set_overrides_a_key_with_a_typed_value(tmp_path, override, get, value):
    path = write_experiment(tmp_path / "e.toml", tiny())
    experiment = load_config(path, [override])
    assert get(experiment) == value
    assert type(get(experiment)) is type(value)


def test_set_creates_a_section_the_file_does_not_have(tmp_path):
    config = tiny()
    del config["optimizer"]
    path = write_experiment(tmp_path / "e.toml", config)
    experiment = load_config(path, ["optimizer.lr=0.2"])
    assert (experiment.optimizer.name, experiment.optimizer.settings()) == (
        "adam",
        {"lr": 0.2},
    )


def test_set_values_are_validated_like_the_file(tmp_path):
    path = write_experiment(tmp_path / "e.toml", tiny())
    with pytest.raises(ConfigError, match=r"training\.epochs: .* \(got 0\)"):
        load_config(path, ["training.epochs=0"])


def test_set_refuses_text_without_an_equals_sign():
    with pytest.raises(ConfigError, match="--set takes key=value, got 'epochs'"):
        parse_override("epochs")


def test_set_refuses_to_go_inside_a_value(tmp_path):
    path = write_experiment(tmp_path / "e.toml", tiny())
    with pytest.raises(ConfigError, match="name is 'tiny' here, a single str value"):
        load_config(path, ["name.first=x"])


def test_set_applies_to_the_builtin_default():
    experiment = load_config(None, ["training.epochs=1", "model.hidden=[8]"])
    assert (experiment.training.epochs, experiment.model.hidden) == (1, [8])


def test_a_dict_config_validates_to_the_same_experiment_as_its_file(tmp_path):
    config = two_variants()
    path = write_experiment(tmp_path / "e.toml", config)
    assert load_config(path) == validate(config)
    assert isinstance(validate(config), Experiment)


def test_validate_refuses_something_that_is_not_a_table():
    with pytest.raises(ConfigError, match="must be a table of sections"):
        validate([1, 2])  # type: ignore[arg-type]


def test_path_in_a_message_is_the_file(tmp_path: Path):
    path = write_experiment(tmp_path / "named.toml", tiny(seed="x"))
    with pytest.raises(ConfigError, match=r"named\.toml: seed: Input should be"):
        load_config(path)


def test_a_softmax_output_under_softmax_cross_entropy_is_refused(tmp_path):
    config = tiny(model={"hidden": [8], "output_activation": "softmax"})
    with pytest.raises(ConfigError, match="applies softmax twice"):
        run_experiment(config, out=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.init.name=he_normal", "he_normal"),
        ("model.init.gain=2.0", {"name": "glorot_uniform", "gain": 2.0}),
    ],
)
def test_set_inside_an_init_given_by_name_treats_it_as_a_table(
    tmp_path, override, expected
):
    path = write_experiment(tmp_path / "e.toml", tiny(model={"init": "glorot_uniform"}))
    init = load_config(path, [override]).model.init
    got = init if isinstance(init, str) else {"name": init.name, **init.settings()}
    assert got == (expected if isinstance(expected, dict) else {"name": expected})


def test_set_enters_a_list_by_position(tmp_path):
    layers = [{"type": "dense", "units": 8}, {"type": "dense"}]
    config = tiny()
    config["model"] = {"layers": layers}
    path = write_experiment(tmp_path / "e.toml", config)
    config = load_config(path, ["model.layers.0.units=5"])
    assert config.model.layers is not None and config.model.layers[0].units == 5
    with pytest.raises(ConfigError, match="a list of 2; .* position 0..1, got '7'"):
        load_config(path, ["model.layers.7.units=5"])


def test_set_into_a_list_the_file_does_not_have_names_the_missing_list(tmp_path):
    path = write_experiment(tmp_path / "e.toml", tiny())
    with pytest.raises(
        ConfigError, match=r"model\.layers is not set, so it has no position 0"
    ):
        load_config(path, ["model.layers.0.units=16"])


def test_set_of_a_setting_of_an_init_the_file_does_not_name_says_to_name_it(
    tmp_path,
):
    path = write_experiment(tmp_path / "e.toml", tiny())
    with pytest.raises(
        ConfigError,
        match=r"model\.init is not set, so there is no init to add std to; "
        r"help: name it first, --set model\.init\.name=normal",
    ):
        load_config(path, ["model.init.std=0.01"])
    named = load_config(path, ["model.init.name=normal", "model.init.std=0.01"])
    assert named.model.init.model_dump() == {"name": "normal", "std": 0.01}


@pytest.mark.parametrize(
    "optimizer, expected",
    [
        ({"lr": float("inf")}, "optimizer.lr = inf: must be a finite number, >= 0"),
        ({"lr": float("nan")}, "optimizer.lr = nan: must be a finite number"),
        ({"lr": -0.1}, "optimizer.lr = -0.1: the learning rate must be >= 0"),
    ],
)
def test_a_bad_learning_rate_is_named_by_its_key(optimizer, expected):
    with pytest.raises(ConfigError) as caught:
        build_all(validate(tiny(optimizer=optimizer)))
    assert str(caught.value).startswith(expected)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ({"name": "warmup"}, "schedule 'warmup' needs schedule.warmup_steps = an"),
        (
            {"name": "warmup", "warmup_steps": -3},
            "schedule.warmup_steps = -3: must be an integer >= 1",
        ),
        (
            {"name": "warmup", "warmup_steps": 2, "after": "cosine"},
            "schedule.after = 'cosine' cannot be set in a config",
        ),
    ],
)
def test_a_bad_warmup_setting_is_named_by_its_key(schedule, expected):
    with pytest.raises(ConfigError) as caught:
        build_all(validate(tiny(schedule=schedule)))
    assert str(caught.value).startswith(expected)


def test_a_misspelt_layer_type_or_type_key_gets_a_suggestion():
    misspelt = problems({"model": {"layers": [{"type": "dens"}]}})
    assert "model.layers.0.type: unknown layer type (did you mean 'dense'?)" in misspelt
    missing = problems({"model": {"layers": [{"typ": "dense"}]}})
    assert "('typ' given: did you mean 'type'?)" in missing


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"model": {"activation": "rleu"}}, "model.activation: unknown activation"),
        (
            {"model": {"output_activation": "sigmoidd"}},
            "model.output_activation: unknown activation 'sigmoidd'",
        ),
        ({"model": {"init": "he_nromal"}}, "model.init: unknown initialiser"),
        (
            {"model": {"init": {"name": "normal", "stdd": 0.1}}},
            "model.init: initialiser 'normal' has no setting 'stdd'",
        ),
        (
            {
                "model": {
                    "layers": [
                        {"type": "dense", "units": 4, "activation": "rel"},
                        {"type": "dense"},
                    ],
                }
            },
            "model.layers.0: unknown activation 'rel'",
        ),
        ({"collect": {"stats": ["mean"]}}, "collect.stats: unknown collector"),
        (
            {"schedule": {"name": "step", "step_size": 1, "unit": "batches"}},
            "schedule: ",
        ),
        (
            {"optimizer": {"name": "adam", "betas": [0.9]}},
            "optimizer: Adam betas must be a pair",
        ),
    ],
)
def test_a_bad_setting_of_a_named_object_is_named_by_its_config_key(changes, expected):
    config = {**tiny(), **changes}  # each section given whole
    with pytest.raises(ConfigError) as caught:
        build_all(validate(config))
    assert str(caught.value).startswith(expected)


def test_a_variant_name_longer_than_100_characters_is_refused():
    config = {**tiny(), "variants": [{"name": "v" * 101}]}
    with pytest.raises(ConfigError) as caught:
        validate(config)
    assert "variants.0.name: String should have at most 100 characters" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"activation": "relux"}, "model.activation: unknown activation 'relux'"),
        ({"init": {"name": "normal", "std": -1}}, "model.init: normal initialiser"),
    ],
)
def test_a_bad_base_value_is_refused_though_every_variant_overrides_it(model, message):
    config = load_config(None, [])  # the built-in study: every variant sets both
    raw = config.model_dump(exclude_unset=True)
    raw["model"] = {**raw["model"], **model}

    with pytest.raises(ConfigError, match=message):
        build_all(validate(raw, "test"))
