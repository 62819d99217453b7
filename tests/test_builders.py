"""Your own model in the config: `python:` builders (with keras-tuner `hp`), `HyperModel`s, saved `.keras`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import keras
import pytest

from kerasguide.builders import DeclaredHyperParameters, build_user_model
from kerasguide.cli import EXIT_BAD_INPUT, EXIT_OK, main
from kerasguide.config import ConfigError, RunConfig, SearchConfig, save_config
from kerasguide.rundir import read_json
from kerasguide.spine import run

HP_BUILDER = textwrap.dedent('''
    import keras

    def build(hp, input_shape, num_classes):
        units = hp.Int("units", 4, 64, sampling="log", default=16)
        act = hp.Choice("act", ["relu", "tanh"], default="relu")
        inputs = keras.Input(input_shape)
        x = keras.layers.Dense(units, activation=act, name="hidden")(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    def twice(hp, input_shape, num_classes):
        a = hp.Int("units", 4, 64)
        b = hp.Int("units", 32, 512)          # the same name, another range
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(num_classes)(inputs))

    def compiled(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        small = keras.initializers.RandomNormal(stddev=1e-3, seed=0)  # initial loss at chance (D12)
        model = keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax",
                                                       kernel_initializer=small)(inputs))
        model.compile(keras.optimizers.SGD(0.05, momentum=0.5), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def not_a_model(input_shape, num_classes):
        return 42

    def raises(input_shape, num_classes):
        raise ValueError("my builder is broken")

    import keras_tuner

    class MyHyperModel(keras_tuner.HyperModel):
        def build(self, hp):
            units = hp.Int("width", 8, 32, default=8)
            inputs = keras.Input((64,))
            x = keras.layers.Dense(units, activation="relu", name="hidden")(inputs)
            return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
''')


@pytest.fixture
def builders(tmp_path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(HP_BUILDER)
    return path


def _config(kind: str, **model) -> RunConfig:
    cfg = RunConfig()
    cfg.name = "mine"
    cfg.model.kind = kind
    for key, value in model.items():
        setattr(cfg.model, key, value)
    cfg.train.epochs = 2
    cfg.train.batch_size = 128
    cfg.optimizer.learning_rate = 1e-2
    cfg.checks.enabled = False
    cfg.monitor.enabled = False
    return cfg


def _hidden_units(run_dir: Path) -> int:
    (best,) = (run_dir / "checkpoints").glob("best-*.keras")
    return keras.models.load_model(best).get_layer("hidden").units


def test_a_builder_declares_its_hyperparameters_and_the_config_sets_them(builders, tmp_path):
    result = run(_config(f"python:{builders}:build"), out=tmp_path / "a", verbose=0)
    assert result.status == "completed" and _hidden_units(result.path) == 16  # the declared default
    result = run(_config(f"python:{builders}:build", hp={"units": 5}), out=tmp_path / "b", verbose=0)
    assert result.status == "completed" and _hidden_units(result.path) == 5
    assert read_json(result.path / "run.json")["user_code"]["hp"] == {"units": 5}


def test_bad_builders_are_one_line_config_errors(builders):
    cases = {
        f"python:{builders}:twice": "declares hyperparameter 'units' twice",
        f"python:{builders}:not_a_model": "returned int, not a keras.Model",
        f"python:{builders}:raises": "raised ValueError: my builder is broken",
        f"python:{builders}:missing": "has no function 'missing'",
        f"python:{builders.parent / 'nope.py'}:build": "does not exist",
    }
    for kind, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            build_user_model(_config(kind), (64,), 10)
    with pytest.raises(ConfigError, match="declares no such hyperparameter"):
        build_user_model(_config(f"python:{builders}:build", hp={"unit": 3}), (64,), 10)


def test_declared_twice_is_caught_where_keras_tuner_would_pass(builders):
    # The planted bug: keras-tuner's own HyperParameters returns the first range's value for the
    # second declaration without a word.
    import keras_tuner as kt

    plain = kt.HyperParameters()
    plain.Int("units", 4, 64)
    plain.Int("units", 32, 512)
    declared = DeclaredHyperParameters()
    declared.Int("units", 4, 64)
    declared.Int("units", 4, 64)  # the same declaration again is fine (a builder called twice)
    with pytest.raises(ConfigError, match="twice"):
        declared.Int("units", 32, 512)


def test_a_hypermodel_subclass_works(builders, tmp_path):
    result = run(_config(f"python:{builders}:MyHyperModel", hp={"width": 12}), out=tmp_path, verbose=0)
    assert result.status == "completed" and _hidden_units(result.path) == 12


def test_a_compiled_builder_keeps_its_optimizer_and_loss(builders, tmp_path):
    cfg = _config(f"python:{builders}:compiled")
    cfg.optimizer.name = "adam"
    cfg.checks.enabled = True
    result = run(cfg, out=tmp_path, verbose=0)
    assert result.status == "completed"
    model = keras.models.load_model(result.path / "checkpoints" / "last.keras")
    assert type(model.optimizer).__name__ == "SGD"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    assert float(model.optimizer.momentum) == pytest.approx(0.5)
    checks = read_json(result.path / "checks.json")
    assert {c["name"] for c in checks} >= {"initial_loss", "overfit"}  # ran with the model's own loss


def test_a_saved_model_is_fine_tuned_with_its_first_layers_frozen(tmp_path, capsys):
    base = run(_config("mlp", hidden=[16, 8]), out=tmp_path / "base", verbose=0)
    saved = base.path / "checkpoints" / "last.keras"
    cfg = _config(f"keras:{saved}", freeze=1)
    path = tmp_path / "finetune.toml"
    save_config(cfg, path)
    assert main(["run", str(path), "--out", str(tmp_path / "ft")]) == EXIT_OK
    (run_dir,) = (tmp_path / "ft").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["saved_model"] == str(saved)
    tuned = keras.models.load_model(run_dir / "checkpoints" / "last.keras")
    original = keras.models.load_model(saved)
    first = [layer for layer in tuned.layers if layer.weights][0]
    assert not first.trainable
    assert all((a == b).all() for a, b in zip(first.get_weights(), original.get_layer(first.name).get_weights(),
                                             strict=True))  # frozen: unchanged by the fine-tuning
    # A file that is no Keras model: one line, exit 2.
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    save_config(_config(f"keras:{bad}"), path)
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(tmp_path / "bad")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()  # the run's "kerasguide: ..." progress lines, then the error
    assert err[-1].startswith("kerasguide: error: ") and "cannot load" in err[-1] and "Traceback" not in str(err), err


def test_tune_searches_the_builders_hyperparameters_with_the_config_keys(builders, tmp_path):
    from kerasguide.search import tune

    cfg = _config(f"python:{builders}:build")
    cfg.train.epochs = 1
    cfg.search = SearchConfig(algorithm="random", workers=0, stages=[{"epochs": 1, "trials": 3}], widen_on_border=False)
    result = tune(cfg, out=tmp_path)
    assert result.status == "completed"
    state = json.loads((result.path / "search.json").read_text())
    (stage,) = state["stages"]
    keys = {r["key"] for r in stage["ranges"]}
    assert keys == {"optimizer.learning_rate", "model.hp.units", "model.hp.act"}  # no model.l2/dropout
    units = {r["key"]: r for r in stage["ranges"]}["model.hp.units"]
    assert (units["low"], units["high"], units["log"]) == (4, 64, True)
    first = stage["trials"][0]
    assert first["baseline"] and first["values"]["model.hp.units"] == 16
    for trial in stage["trials"]:
        run_dir = result.path / trial["run_dir"]
        assert _hidden_units(run_dir) == trial["values"]["model.hp.units"]


def test_the_cli_says_a_bad_builder_in_one_line_exit_2(builders, tmp_path, capsys):
    for name, message in (("raises", "raised ValueError: my builder is broken"), ("twice", "twice")):
        path = tmp_path / f"{name}.toml"
        save_config(_config(f"python:{builders}:{name}"), path)
        capsys.readouterr()
        assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip().splitlines()  # the run's progress lines, then the error
        assert err[-1].startswith("kerasguide: error: ") and message in err[-1] and "Traceback" not in str(err), err
