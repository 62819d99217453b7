"""Your own data in the config (`data.source = "python:PATH:FUNCTION"`): several inputs and one-hot labels
through the CLI, the splits as given, one line for a bad function."""

from __future__ import annotations

import json
import textwrap

import pytest

from kerasguide.config import ConfigError, DataConfig, RunConfig, save_config
from kerasguide.data import load_dataset
from tests.conftest import cli_in_process

DATA = textwrap.dedent('''
    import numpy as np


    def _tabular(n, seed):
        rng = np.random.default_rng(seed)
        a = rng.normal(size=(n, 6)).astype("float32")
        b = rng.normal(size=(n, 4)).astype("float32")
        y = (a[:, 0] + b[:, 0] > 0).astype("int64") + (a[:, 1] > 1).astype("int64")
        return a, b, y


    def two_inputs(seed):
        a, b, y = _tabular(300, seed)
        return {"train": ({"a": a[:240], "b": b[:240]}, y[:240]), "validation": ({"a": a[240:], "b": b[240:]}, y[240:])}


    def one_hot():
        a, _, y = _tabular(300, 0)
        onehot = np.eye(3, dtype="float32")[y]
        return a[:240], onehot[:240], a[240:], onehot[240:]


    def two_outputs():
        a, _, y = _tabular(300, 0)
        value = (a[:, 2] * 2 + a[:, 3]).astype("float32")
        return {"train": (a[:240], {"label": y[:240], "value": value[:240]}),
                "validation": (a[240:], {"label": y[240:], "value": value[240:]})}


    def ragged():
        a, _, y = _tabular(300, 0)
        return {"train": (a, y[:10]), "validation": (a, y)}


    def wrong():
        return [1, 2, 3]


    def raises(seed):
        raise OSError("my data are on a disk that is not there")
''')

MODELS = textwrap.dedent('''
    import keras


    def two_inputs(input_shape, num_classes):
        a = keras.Input(input_shape["a"], name="a")
        b = keras.Input(input_shape["b"], name="b")
        x = keras.layers.Concatenate()([a, b])
        x = keras.layers.Dense(32, activation="relu")(x)
        small = keras.initializers.RandomNormal(stddev=1e-3)
        return keras.Model({"a": a, "b": b}, keras.layers.Dense(num_classes, activation="softmax",
                                                                kernel_initializer=small)(x))


    def two_outputs(input_shape):
        inputs = keras.Input(input_shape)
        x = keras.layers.Dense(32, activation="relu")(inputs)
        small = keras.initializers.RandomNormal(stddev=1e-3)
        label = keras.layers.Dense(3, activation="softmax", kernel_initializer=small, name="label")(x)
        value = keras.layers.Dense(1, kernel_initializer=small, name="value")(x)
        model = keras.Model(inputs, {"label": label, "value": value})
        model.compile(keras.optimizers.Adam(1e-2), loss={"label": "sparse_categorical_crossentropy", "value": "mse"},
                      metrics={"label": ["accuracy"]})
        return model


    def one_hot(input_shape, num_classes):
        model = keras.Sequential([keras.Input(input_shape), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(num_classes, activation="softmax",
                                                     kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))])
        model.compile(keras.optimizers.Adam(1e-2), "categorical_crossentropy", metrics=["accuracy"])
        return model
''')


@pytest.fixture
def files(tmp_path):
    (tmp_path / "my_data.py").write_text(DATA)
    (tmp_path / "my_models.py").write_text(MODELS)
    return tmp_path


def _config(files, name: str) -> str:
    cfg = RunConfig()
    cfg.name = name.replace("_", "-")
    cfg.data.source = f"python:{files / 'my_data.py'}:{name}"
    cfg.data.preprocess = "none"
    cfg.model.kind = f"python:{files / 'my_models.py'}:{name}"
    cfg.train.epochs = 3
    cfg.train.batch_size = 32
    cfg.optimizer.learning_rate = 3e-3
    path = files / f"{name}.toml"
    save_config(cfg, path)
    return str(path)


@pytest.mark.parametrize("name", ["two_inputs", "one_hot", "two_outputs"])
def test_the_cli_checks_runs_and_sweeps_a_python_data_source(files, name, capsys):
    config = _config(files, name)
    out = files / "runs"
    check = cli_in_process(capsys, "check", config, "--out", str(out), "--json")
    assert check.returncode == 0, check.stderr[-3000:]
    results = json.loads(check.stdout)
    assert all(r["passed"] for r in results), [(r["name"], r["advice"]) for r in results if not r["passed"]]
    done = cli_in_process(capsys, "run", config, "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if json.loads((p / "run.json").read_text()).get("kind") is None]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["checks"]["passed"]
    assert record["data"]["train"] == 240 and record["data"]["validation"] == 60  # the splits as given
    accuracy = next(v for k, v in record["final_metrics"].items() if k.startswith("val_") and k.endswith("accuracy"))
    assert accuracy > 0.5
    assert (run_dir / "monitor" / "probe.jsonl").exists()
    found = cli_in_process(capsys, "lr-find", config, "--out", str(out))
    assert found.returncode in (0, 1), found.stderr[-2000:]


def test_several_inputs_are_kept_as_a_dict_and_fingerprinted(files):
    ds = load_dataset(DataConfig(source=f"python:{files / 'my_data.py'}:two_inputs", preprocess="none"), seed=1)
    assert set(ds.x_train) == {"a", "b"} and ds.input_shape == {"a": (6,), "b": (4,)}
    assert ds.num_classes == 3 and ds.task == "classification"
    again = load_dataset(DataConfig(source=f"python:{files / 'my_data.py'}:two_inputs", preprocess="none"), seed=2)
    assert ds.fingerprints()["train"] != again.fingerprints()["train"]  # the seed reached the function
    onehot = load_dataset(DataConfig(source=f"python:{files / 'my_data.py'}:one_hot"), seed=0)
    assert onehot.y_train.shape == (240, 3) and onehot.num_classes == 3  # one-hot rows kept as given
    assert onehot.preprocessor is not None and onehot.preprocessor.fitted_on  # one input array: standardized


def test_bad_python_data_sources_are_one_line(files, tmp_path, capsys):
    cases = {
        "ragged": "differ in length",
        "wrong": "must return",
        "raises": "raised OSError: my data are on a disk",
        "missing": "has no function 'missing'",
    }
    for name, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_dataset(DataConfig(source=f"python:{files / 'my_data.py'}:{name}"))
    with pytest.raises(ConfigError, match="data.source: builder file"):
        load_dataset(DataConfig(source=f"python:{tmp_path / 'nope.py'}:load"))
    with pytest.raises(ValueError, match="python:PATH:FUNCTION"):
        DataConfig(source="python:only_a_path.py")
    # kerasguide's own MLP takes one input array: one line naming what to do.
    cfg = RunConfig()
    cfg.data.source = f"python:{files / 'my_data.py'}:two_inputs"
    cfg.data.preprocess = "none"
    path = files / "own.toml"
    save_config(cfg, path)
    out = cli_in_process(capsys, "run", str(path), "--out", str(files / "runs-own"))
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and last.startswith("kerasguide: error: ") and "takes one input array" in last
    assert "Traceback" not in out.stderr
