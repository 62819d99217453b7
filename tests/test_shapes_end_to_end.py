"""Every model shape and task end to end: the Babysitter on the user's own fit, and the CLI on `python:` builders.

The model factories and data are `tests/test_model_shapes.py`'s (keras-io style models on seeded synthetic
data). Through the CLI, a model reads what kerasguide's data sources give (one input array, integer class
ids or float targets): the one-hot and several-input models need a `python:` data source (the issue beside
this one), so they are exercised through the API here.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from kerasguide.babysitter import Babysitter  # noqa: E402  (after the shapes' TensorFlow import)
from kerasguide.config import RunConfig, save_config  # noqa: E402
from kerasguide.diagnosis import CODES, diagnose_run  # noqa: E402
from kerasguide.rundir import read_json  # noqa: E402
from tests.conftest import cli_in_process
from tests.test_model_shapes import MODELS, _data  # noqa: F401  (the shapes, one place)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_babysitter_records_every_model_shape(name, tmp_path):
    model, x, y, (xt, yt, xv, yv) = _data(name)
    sitter = Babysitter(tmp_path / name, x=xt, y=yt, validation_data=(xv, yv), seed=0)
    model.fit(xt, yt, validation_data=(xv, yv), epochs=10, batch_size=32, verbose=0, callbacks=[sitter])
    run = tmp_path / name
    record = read_json(run / "run.json")
    assert record["status"] == "completed", record.get("error")
    assert set(record["fingerprints"]) == {"train", "validation"}
    assert (run / "monitor" / "probe.jsonl").exists() and (run / "report.md").exists()
    metric = record["best"]["metric"]
    assert metric.startswith("val_") and (("accuracy" in metric) == any("accuracy" in k for k in record["final_metrics"]))
    # The diagnosis reads it; what it says of a 10-epoch fit of each shape is the diagnosis' own business.
    assert {f.code for f in diagnose_run(run)} <= set(CODES)


BUILDERS = textwrap.dedent('''
    import keras


    class Block(keras.Model):
        def __init__(self, num_classes):
            super().__init__()
            self.hidden = keras.layers.Dense(32, activation="relu")
            self.out = keras.layers.Dense(num_classes, activation="softmax",
                                          kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))

        def call(self, x):
            return self.out(self.hidden(x))


    def subclassed(input_shape, num_classes):
        return Block(num_classes)


    def bn_cnn(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        small = keras.initializers.RandomNormal(stddev=1e-3)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=small)(x))


    def text_lstm(input_shape):
        inputs = keras.Input(input_shape, dtype="int32")
        x = keras.layers.Embedding(50, 8)(inputs)
        x = keras.layers.LSTM(8)(x)
        small = keras.initializers.RandomNormal(stddev=1e-3)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", kernel_initializer=small)(x))


    def regression_mlp(input_shape):
        inputs = keras.Input(input_shape)
        x = keras.layers.Dense(32, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(1)(x))
''')


def _images(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(0, 0.3, size=(n, 8, 8, 1)).astype("float32")
    x[y == 0, :4] += 1.0
    x[y == 1, :, :4] += 1.0
    return x, y


def _tokens(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 50, size=(n, 12))
    return x, (x[:, 0] < 25).astype("int64")  # the first token decides


def _regression(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.3 * x[:, 3]).astype("float32")


CASES = {
    # name: (builder, data, config overrides)
    "subclassed": ("subclassed", None, {}),
    "bn_cnn": ("bn_cnn", _images, {"data.preprocess": "none"}),
    "text_lstm_binary": ("text_lstm", _tokens, {"data.preprocess": "none", "train.loss": "binary_crossentropy"}),
    "regression_mse": ("regression_mlp", _regression, {"data.task": "regression"}),
}


def _case_config(tmp_path, name) -> str:
    builder, make, overrides = CASES[name]
    (tmp_path / "models.py").write_text(BUILDERS)
    cfg = RunConfig()
    cfg.name = name.replace("_", "-")
    cfg.model.kind = f"python:{tmp_path / 'models.py'}:{builder}"
    cfg.train.epochs = 3
    cfg.train.batch_size = 32
    cfg.optimizer.learning_rate = 3e-3
    cfg.lr_find.steps = 30
    if make is not None:
        x, y = make()
        np.savez(tmp_path / "data.npz", x=x, y=y)
        cfg.data.source = f"npz:{tmp_path / 'data.npz'}"
    for key, value in overrides.items():
        section, field = key.split(".")
        setattr(getattr(cfg, section), field, value)
    path = tmp_path / f"{name}.toml"
    save_config(cfg, path)
    return str(path)


@pytest.mark.parametrize("name", list(CASES))
def test_the_cli_checks_and_runs_every_shape_its_data_sources_carry(name, tmp_path, capsys):
    config = _case_config(tmp_path, name)
    out = tmp_path / "runs"
    check = cli_in_process(capsys, "check", config, "--out", str(out), "--json")
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    results = {r["name"]: r for r in json.loads(check.stdout)}
    assert all(r["passed"] for r in results.values()), {k: r["advice"] for k, r in results.items() if not r["passed"]}
    done = cli_in_process(capsys, "run", config, "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if json.loads((p / "run.json").read_text()).get("kind") is None]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["checks"]["passed"]
    regression = name.startswith("regression")
    assert ("val_mae" in record["final_metrics"]) == regression
    assert ("val_accuracy" in record["final_metrics"]) != regression
    found = cli_in_process(capsys, "lr-find", config, "--out", str(out))
    assert found.returncode in (0, 1), found.stderr[-2000:]  # a rate, or "no usable rate" with its reason
    assert "chosen:" in found.stdout or "no" in found.stdout.lower()
