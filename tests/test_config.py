"""The run config schema: defaults, round trips, and one-line errors for bad input."""

from __future__ import annotations

import tomllib

import pydantic
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerasguide.config import (
    ConfigError,
    RunConfig,
    config_from_dict,
    dump_config,
    load_config,
    loads_config,
    save_config,
)
from kerasguide.presets import preset_names, preset_path


def test_defaults_are_the_digits_recipe():
    cfg = RunConfig()
    assert cfg.data.source == "digits"
    assert cfg.model.kind == "mlp"
    assert cfg.optimizer.name == "adam"
    assert cfg.data.epsilon == 1e-5


def test_minimal_config_is_a_few_lines():
    cfg = loads_config('name = "x"\n[train]\nepochs = 3\n')
    assert cfg.train.epochs == 3
    assert cfg.train.batch_size == RunConfig().train.batch_size


def test_round_trip_through_toml(tmp_path):
    cfg = RunConfig()
    cfg.model.kind = "cnn"
    cfg.model.filters = [8, 16]
    cfg.model.max_norm = 3.0
    cfg.optimizer.learning_rate = "auto"
    path = tmp_path / "c.toml"
    save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert dump_config(again) == dump_config(cfg)


@pytest.mark.parametrize("name", preset_names())
def test_presets_load(name):
    cfg = load_config(preset_path(name))
    assert cfg.name


def test_required_presets_ship():
    assert {"digits", "mnist1d_cnn"} <= set(preset_names())


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[train]\nepochs = 0\n", "train.epochs"),
        ("[train]\nepoch = 3\n", "unknown key `train.epoch`"),
        ("[traon]\nepochs = 3\n", "unknown key `traon`"),
        ("[train]\nepochs = 'ten'\n", "train.epochs"),
        ("[data]\nsource = 'imagenet'\n", "data.source"),
        ("[data]\nvalidation_fraction = 1.5\n", "data.validation_fraction"),
        ("[model]\nactivation = 'swish'\n", "model.activation"),
        ("[model]\nkind = 'python:only'\n", "python:PATH:FUNCTION"),
        ("[optimizer]\nlearning_rate = -1\n", "optimizer.learning_rate"),
        ("[optimizer]\nlearning_rate = 'fast'\n", "optimizer.learning_rate"),
        ("name = 'has space'\n", "name"),
        ("[train\nepochs = 3\n", "not valid TOML"),
        ("train = 3\n", "train"),
        ("[schedule]\nkind = 'piecewise'\nboundaries_epochs = [1]\nvalues = [1.0]\n", "one more entry"),
        ("[lr_find]\nstart_lr = 1.0\nend_lr = 0.1\n", "end_lr"),
    ],
)
def test_bad_configs_give_one_line_naming_the_key(text, needle):
    with pytest.raises(ConfigError) as info:
        loads_config(text, "c.toml")
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
    assert message.startswith("c.toml: ")


def test_bad_value_is_echoed():
    with pytest.raises(ConfigError, match="= 0"):
        loads_config("[train]\nepochs = 0\n")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="without a config.toml"):
        load_config(tmp_path)


def test_binary_file(tmp_path):
    path = tmp_path / "b.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_checks_shorthand():
    assert loads_config("checks = false\n").checks.enabled is False
    assert loads_config("[checks]\nenabled = true\n").checks.enabled is True


def test_loading_never_runs_code(tmp_path):
    marker = tmp_path / "ran"
    builder = tmp_path / "b.py"
    builder.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef build(**kw):\n    pass\n")
    cfg = loads_config(f'[model]\nkind = "python:{builder}:build"\n')
    assert cfg.model.builder == (str(builder), "build")
    assert not marker.exists()


def test_assignment_is_validated():
    cfg = RunConfig()
    with pytest.raises(pydantic.ValidationError, match="epochs"):
        cfg.train.epochs = -1


def test_dump_has_no_nulls():
    text = dump_config(RunConfig())
    data = tomllib.loads(text)
    assert "max_norm" not in data["model"]


# Malformed configs generated with hypothesis: nothing but ConfigError may escape.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_known = {
    section: list(type(getattr(RunConfig(), section)).model_fields)
    for section in RunConfig.model_fields if section not in ("name", "description")
}


@st.composite
def _configs(draw):
    config = {}
    for section, keys in _known.items():
        if draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(keys + ["bogus"]), max_size=4))
            config[section] = {k: draw(_values) for k in chosen}
    if draw(st.booleans()):
        config[draw(st.text(max_size=8))] = draw(_values)
    return config


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_configs())
def test_malformed_dicts_raise_only_config_error(data):
    try:
        config_from_dict(data)
    except ConfigError as error:
        assert "\n" not in str(error)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_malformed_toml_text_raises_only_config_error(text):
    try:
        loads_config(text)
    except ConfigError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_configs())
def test_valid_configs_round_trip(data):
    try:
        cfg = config_from_dict(data)
    except ConfigError:
        return
    assert loads_config(tomli_w.dumps(cfg.to_dict())) == cfg


@pytest.mark.parametrize(
    "schedule, names",
    [
        ({"kind": "cosine", "reduce_on_plateau": True}, "`schedule.kind` = 'cosine'"),
        ({"kind": "one_cycle", "reduce_on_plateau": True}, "`schedule.kind` = 'one_cycle'"),
        ({"warmup_epochs": 2.0, "reduce_on_plateau": True}, "`schedule.warmup_epochs` = 2"),
    ],
)
def test_reduce_on_plateau_with_a_schedule_is_refused_by_the_schema(schedule, names):
    """Keras' ReduceLROnPlateau cannot change a scheduled rate: refused when the config is read."""
    with pytest.raises(ConfigError) as info:
        config_from_dict({"schedule": schedule}, "c.toml")
    message = str(info.value)
    assert message.startswith("c.toml: ") and "\n" not in message
    assert "`schedule.reduce_on_plateau` = true needs a constant rate" in message and names in message
    # ... and when the form (or a script) changes one key of a valid config
    cfg = RunConfig()
    cfg.schedule.reduce_on_plateau = True
    with pytest.raises(pydantic.ValidationError, match="reduce_on_plateau"):
        for key, value in schedule.items():
            setattr(cfg.schedule, key, value)


def test_reduce_on_plateau_on_a_constant_rate_is_fine():
    cfg = config_from_dict({"schedule": {"reduce_on_plateau": True, "plateau_factor": 0.2}})
    assert cfg.schedule.reduce_on_plateau and cfg.schedule.kind == "constant"
    assert config_from_dict({"schedule": {"kind": "cosine", "warmup_epochs": 1.0}}).schedule.kind == "cosine"


def test_cli_config_shows_the_plateau_error_before_a_run(tmp_path):
    from tests.conftest import run_cli

    path = tmp_path / "plateau.toml"
    path.write_text("[schedule]\nkind = 'step'\nreduce_on_plateau = true\n")
    out = run_cli("config", str(path), timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "schedule.reduce_on_plateau" in out.stderr


# ------------------------------------------------------------------ the task
def test_every_existing_preset_keeps_its_meaning():
    from kerasguide.tasks import config_task, task_settings

    for name in ("digits", "mnist1d_cnn", "digits_search", "digits_ensemble"):
        cfg = load_config(preset_path(name))
        assert cfg.data.task == "auto" and config_task(cfg) is None
        settings = task_settings(cfg)
        assert settings.task == "classification"
        assert (settings.loss, list(settings.metrics), settings.monitor_metric) == (
            cfg.train.loss, cfg.train.metrics, cfg.train.monitor_metric)
    assert task_settings(loads_config('[train]\nloss = "mse"\n')).loss == "mse"  # the one-hot MSE, as before


def test_the_task_from_the_config_alone():
    from kerasguide.tasks import config_task

    assert config_task(load_config(preset_path("diabetes"))) == "regression"
    assert config_task(loads_config('[data]\nsource = "diabetes"\n')) == "regression"
    assert config_task(loads_config('[train]\nloss = "huber"\nmetrics = ["mae"]\n')) == "regression"
    assert config_task(loads_config('[train]\nloss = "binary_crossentropy"\n')) == "binary"
    assert config_task(loads_config('[data]\nsource = "npz:x.npz"\n')) is None  # the data decide


def test_regression_defaults_stand_for_the_classification_ones():
    from kerasguide.tasks import task_settings

    settings = task_settings(loads_config('[data]\ntask = "regression"\n'))
    assert (settings.loss, settings.metrics, settings.monitor_metric) == ("mse", ("mae", "rmse"), "val_loss")
    assert task_settings(RunConfig(), "regression").loss == "mse"
    # Given values are kept when they fit.
    # (the monitored metric must be one the run logs: `val_rmse` is, `val_mae` is not without the `mae` metric)
    cfg = loads_config('[data]\ntask = "regression"\n[train]\nloss = "mae"\nmetrics = ["rmse"]\nmonitor_metric = "val_rmse"\n')
    assert task_settings(cfg) == task_settings(cfg, "regression")
    assert (task_settings(cfg).loss, task_settings(cfg).metrics, task_settings(cfg).monitor_metric) == (
        "mae", ("rmse",), "val_rmse")


@pytest.mark.parametrize("text, key", [
    ('[data]\ntask = "regression"\n[train]\nloss = "categorical_hinge"\n', "`train.loss` = 'categorical_hinge'"),
    ('[data]\nsource = "diabetes"\n[train]\nmetrics = ["accuracy", "mae"]\n', "`train.metrics`"),
    ('[data]\ntask = "classification"\n[train]\nloss = "mae"\n', "`train.loss` = 'mae'"),
    ('[data]\ntask = "binary"\n[train]\nloss = "mse"\n', "`train.loss` = 'mse'"),
    ('[data]\ntask = "classification"\n[train]\nmetrics = ["rmse"]\n', "`train.metrics`"),
])
def test_a_loss_or_metric_that_does_not_fit_the_task_is_one_line(text, key):
    with pytest.raises(ConfigError) as info:
        loads_config(text, "c.toml")
    message = str(info.value)
    assert key in message and "\n" not in message and "use" in message
    assert "{" not in message  # names the keys, not the whole table


def test_unknown_task_is_refused():
    with pytest.raises(ConfigError, match="data.task"):
        loads_config('[data]\ntask = "ranking"\n')
