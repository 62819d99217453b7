"""Regression end to end: the task, the output layer, the losses and metrics, a run through the API and the CLI.

The sanity checks are switched off in the runs here (`checks.enabled = false`): their regression
judgement (initial loss and overfit against the targets' variance) is being written at the same time
and is tested with the checks; these tests must not stop at `checks_failed` while it lands.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

from kerasguide.config import ConfigError, RunConfig, load_config, loads_config  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402
from kerasguide.losses import SparseMeanSquaredError  # noqa: E402
from kerasguide.models import build_model, make_loss, make_metrics  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.rundir import read_metrics  # noqa: E402
from kerasguide.spine import run  # noqa: E402
from kerasguide.tasks import apply_task, task_settings  # noqa: E402
from kerasguide.training import prepare  # noqa: E402
from tests.conftest import cli_in_process  # noqa: E402


def _targets(n=240, d=4, seed=0, columns=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = 50.0 + 20.0 * np.tanh(x @ rng.normal(size=(d, columns))) + rng.normal(scale=1.0, size=(n, columns))
    return x, (y[:, 0] if columns == 1 else y).astype(np.float32)


def _npz(tmp_path, columns=1):
    x, y = _targets(columns=columns)
    np.savez(tmp_path / "r.npz", x=x, y=y)
    return f"npz:{tmp_path / 'r.npz'}"


def _small(cfg: RunConfig, epochs: int = 3) -> RunConfig:
    cfg.train.epochs = epochs
    cfg.checks.enabled = False  # see the module docstring
    cfg.monitor.enabled = False
    return cfg


# ------------------------------------------------------------------- model
def test_regression_head_starts_at_the_targets_mean(tmp_path):
    cfg = RunConfig()
    cfg.data.source = _npz(tmp_path)
    ds, model = prepare(cfg)  # `kerasguide check` and `lr-find` build this way
    assert ds.task == "regression" and model.output_shape == (None, 1)
    assert isinstance(model.layers[-1], keras.layers.Rescaling)
    pred = model.predict(ds.x_train, verbose=0)[:, 0]
    # The small head + the targets' scale: every prediction near the training mean, so the initial MSE
    # is the targets' variance (what the initial-loss check expects), not mean² + variance.
    assert np.abs(pred - ds.y_train.mean()).max() < 0.2 * ds.y_train.std()
    mse = float(np.mean((pred - ds.y_train) ** 2))
    assert mse == pytest.approx(float(ds.y_train.var()), rel=0.05)


def test_several_target_columns_get_one_output_each(tmp_path):
    cfg = RunConfig()
    cfg.data.source = _npz(tmp_path, columns=3)
    ds = load_dataset(cfg.data)
    cfg = apply_task(cfg, ds.task)  # the data say regression: the config follows
    model = build_model(cfg, ds.input_shape, ds.num_classes, target_stats=ds.target_stats)
    assert model.output_shape == (None, 3)
    np.testing.assert_allclose(model.predict(ds.x_val[:4], verbose=0).mean(axis=0), ds.target_mean, rtol=0.05)


def test_the_regression_model_round_trips_through_a_keras_file(tmp_path):
    cfg = load_config(preset_path("diabetes"))
    ds, model = prepare(cfg)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(ds.x_val, verbose=0), model.predict(ds.x_val, verbose=0), rtol=1e-6)


def test_binary_is_one_sigmoid_with_binary_crossentropy():
    cfg = loads_config('[data]\ntask = "binary"\n')
    model = build_model(cfg, (6,), 2)
    assert model.output_shape == (None, 1) and model.layers[-1].activation.__name__ == "sigmoid"
    assert isinstance(make_loss(cfg), keras.losses.BinaryCrossentropy)
    assert isinstance(make_metrics(cfg)[0], keras.metrics.BinaryAccuracy)


def test_classification_models_are_unchanged():
    model = build_model(RunConfig(), (64,), 10)
    assert model.output_shape == (None, 10) and model.layers[-1].activation.__name__ == "softmax"
    assert isinstance(make_loss(RunConfig()), keras.losses.SparseCategoricalCrossentropy)
    assert isinstance(make_loss(loads_config('[train]\nloss = "mse"\n')), SparseMeanSquaredError)


# ---------------------------------------------------------- losses, metrics
@pytest.mark.parametrize("name, expected", [
    ("mse", lambda e: np.mean(e**2)),
    ("mae", lambda e: np.mean(np.abs(e))),
    ("huber", lambda e: np.mean(np.where(np.abs(e) <= 1.0, 0.5 * e**2, np.abs(e) - 0.5))),
])
def test_regression_losses_are_against_the_targets(name, expected):
    cfg = loads_config(f'[data]\ntask = "regression"\n[train]\nloss = "{name}"\n')
    y = np.array([10.0, 20.0, 30.0, 41.5], np.float32)
    pred = np.array([[11.0], [18.0], [30.5], [40.0]], np.float32)  # the model's (n, 1): no broadcasting
    assert float(make_loss(cfg)(y, pred)) == pytest.approx(expected(pred[:, 0] - y), rel=1e-6)


def test_planted_the_one_hot_mse_on_a_regression_is_caught():
    # The old meaning of `loss = "mse"`: MSE against one-hot encodings of the targets cast to class ids.
    cfg = loads_config('[data]\ntask = "regression"\n[train]\nloss = "mse"\n')
    y = np.array([10.0, 20.0, 30.0], np.float32)
    pred = np.array([[10.5], [19.0], [30.0]], np.float32)
    right = float(np.mean((pred[:, 0] - y) ** 2))
    assert not isinstance(make_loss(cfg), SparseMeanSquaredError)
    assert float(make_loss(cfg)(y, pred)) == pytest.approx(right)
    assert float(SparseMeanSquaredError()(y, pred)) != pytest.approx(right)  # what the assertion above catches
    # And a classification loss on a regression is refused, not run.
    with pytest.raises(ConfigError, match="train.loss"):
        loads_config('[data]\ntask = "regression"\n[train]\nloss = "categorical_hinge"\n')


def test_regression_metrics_mae_and_rmse():
    cfg = loads_config('[data]\ntask = "regression"\n')
    metrics = {m.name: m for m in make_metrics(cfg)}
    assert set(metrics) == {"mae", "rmse"}
    y = np.array([1.0, 2.0, 4.0], np.float32)
    pred = np.array([[2.0], [2.0], [2.0]], np.float32)
    for metric in metrics.values():
        metric.update_state(y, pred)
    assert float(metrics["mae"].result()) == pytest.approx(1.0)
    assert float(metrics["rmse"].result()) == pytest.approx(np.sqrt(5 / 3))


# -------------------------------------------------------------- end to end
def test_diabetes_preset_runs_through_the_api(tmp_path):
    cfg = _small(load_config(preset_path("diabetes")))
    cfg.monitor.enabled = True  # the monitors, the diagnosis and the report on a regression run
    result = run(cfg, out=tmp_path, verbose=0)
    assert result.status == "completed", result.error
    final = result.final_metrics
    assert {"val_loss", "val_mae", "val_rmse", "loss", "mae", "rmse"} <= set(final)
    assert "val_accuracy" not in final
    rows = read_metrics(result.path / "metrics.csv")
    assert len(rows) == 3 and {"mae", "val_mae", "val_rmse"} <= set(rows[0])
    record = result.run_dir.read_run()
    assert record["data"]["task"] == "regression" and record["data"]["num_classes"] == 0
    assert record["best"]["metric"] == "val_loss"
    assert record["best"]["value"] == min(r["val_loss"] for r in rows)  # minimized, not maximized
    assert any(p.name.startswith("best-epoch=") and "val_loss=" in p.name for p in result.run_dir.checkpoints_dir.iterdir())
    # The final numbers are in the targets' units: recompute them from the saved model on the same split.
    ds = load_dataset(cfg.data, cfg.train.seed)
    model = keras.models.load_model(result.run_dir.checkpoints_dir / "last.keras")
    pred = model.predict(ds.x_val, verbose=0)[:, 0]
    assert final["val_mae"] == pytest.approx(float(np.mean(np.abs(pred - ds.y_val))), rel=1e-4)
    assert final["val_loss"] == pytest.approx(float(np.mean((pred - ds.y_val) ** 2)), rel=1e-4)
    report = (result.path / "report.md").read_text()
    assert "| targets | regression" in report and "final val_mae" in report
    assert json.loads((result.path / "diagnosis.json").read_text())["format_version"] == 1


def test_diabetes_preset_runs_through_the_cli(tmp_path, capsys):
    config = tmp_path / "d.toml"
    text = preset_path("diabetes").read_text().replace("epochs = 40", "epochs = 2")
    config.write_text(text + "\n[checks]\nenabled = false  # see the module docstring\n")
    out = cli_in_process(capsys, "run", str(config), "--out", str(tmp_path / "runs"), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = next((tmp_path / "runs").iterdir())
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and "val_mae" in record["final_metrics"]
    assert "val_mae" in (run_dir / "metrics.csv").read_text().splitlines()[0]


def test_npz_float_targets_run_and_the_task_is_written_into_config_toml(tmp_path):
    cfg = _small(RunConfig())  # every train default is the classification one
    cfg.name = "floats"
    cfg.data.source = _npz(tmp_path)
    cfg.model.hidden = [16]
    result = run(cfg, out=tmp_path / "runs", verbose=0)
    assert result.status == "completed", result.error
    assert {"val_mae", "val_rmse"} <= set(result.final_metrics)
    recorded = load_config(result.path / "config.toml")
    assert recorded.data.task == "regression"
    assert (recorded.train.loss, recorded.train.metrics, recorded.train.monitor_metric) == (
        "mse", ["mae", "rmse"], "val_loss")
    assert cfg.data.task == "auto" and cfg.train.loss == "sparse_categorical_crossentropy"  # the caller's


def test_csv_float_target_runs(tmp_path):
    x, y = _targets()
    lines = ["a,b,c,d,value"] + [",".join(f"{v:.5f}" for v in (*row, target)) for row, target in zip(x, y, strict=True)]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    cfg = _small(loads_config(f'name = "csv"\n[data]\nsource = "csv:{tmp_path / "r.csv"}"\nlabel_column = "value"\n'
                              '[train]\nloss = "huber"\nhuber_delta = 5.0\nmetrics = ["mae"]\n'))
    assert task_settings(cfg).task == "regression"  # huber says so before the data are read
    result = run(cfg, out=tmp_path / "runs", verbose=0)
    assert result.status == "completed", result.error
    assert "val_mae" in result.final_metrics and "val_rmse" not in result.final_metrics
    assert result.run_dir.read_run()["best"]["metric"] == "val_loss"


def test_a_config_the_data_contradict_is_bad_input(tmp_path):
    cfg = _small(RunConfig())
    cfg.data.source = _npz(tmp_path)
    cfg.train.loss = "categorical_hinge"  # a classification loss, on targets that are not whole numbers
    with pytest.raises(ConfigError, match="categorical_hinge"):
        run(cfg, out=tmp_path / "runs", verbose=0)


def test_classification_run_is_unchanged(tmp_path, tiny_config):
    result = run(tiny_config, out=tmp_path, verbose=0)
    assert result.status == "completed"
    assert "val_accuracy" in result.final_metrics and "val_mae" not in result.final_metrics
    assert result.run_dir.read_run()["best"]["metric"] == "val_accuracy"
    recorded = load_config(result.path / "config.toml")
    assert recorded == tiny_config and recorded.data.task == "auto"  # not rewritten


def test_errors_are_minimized_by_the_checkpoint(tmp_path):
    from kerasguide.callbacks import BestCheckpoint

    for monitor in ("val_loss", "val_mae", "val_rmse", "val_mean_squared_error"):
        assert BestCheckpoint(tmp_path, monitor=monitor).mode == "min"
    assert BestCheckpoint(tmp_path, monitor="val_accuracy").mode == "max"
