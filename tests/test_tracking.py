"""Recipe I33's alternative: optional MLflow logging of a recorded run."""

from __future__ import annotations

import logging
import sys

import pytest

from kerasguide.config import ConfigError
from kerasguide.tracking import MISSING_MLFLOW, flatten_config, log_to_mlflow, mlflow_requested, mlflow_stage


def test_the_environment_variable_turns_it_on():
    assert mlflow_requested({}) is None
    assert mlflow_requested({"KERASGUIDE_MLFLOW": "0"}) is None
    assert mlflow_requested({"KERASGUIDE_MLFLOW": "false"}) is None
    assert mlflow_requested({"KERASGUIDE_MLFLOW": "1"}) == ""
    assert mlflow_requested({"KERASGUIDE_MLFLOW": "http://127.0.0.1:5000"}) == "http://127.0.0.1:5000"


def test_flatten_config_gives_text_params():
    flat = flatten_config({"name": "x", "model": {"hidden": [16, 8], "dropout": 0.5, "kind": "mlp"}})
    assert flat == {"name": "x", "model.hidden": "[16, 8]", "model.dropout": "0.5", "model.kind": "mlp"}


@pytest.fixture
def fake_run(tmp_path):
    from kerasguide.config import RunConfig, save_config
    from kerasguide.rundir import RunDir

    rd = RunDir(tmp_path / "run")
    save_config(RunConfig(), rd.config_path)
    rd.update_run(status="completed", seed=0, final_metrics={"val_accuracy": 0.9})
    rd.write_metrics([{"epoch": 1, "loss": 1.0, "val_loss": 1.1}, {"epoch": 2, "loss": 0.5, "val_loss": 0.7}])
    return rd.path


def test_missing_extra_is_one_line_naming_the_extra(fake_run, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    with pytest.raises(ConfigError) as info:
        log_to_mlflow(fake_run)
    assert str(info.value) == MISSING_MLFLOW == "mlflow is not installed: pip install kerasguide[mlflow]"
    # In a run it is a warning, never a failure.
    monkeypatch.setenv("KERASGUIDE_MLFLOW", "1")
    with caplog.at_level(logging.WARNING, logger="kerasguide"):
        assert mlflow_stage(fake_run) is None
    lines = [r.getMessage() for r in caplog.records if "mlflow" in r.getMessage().lower()]
    assert len(lines) == 1 and "pip install kerasguide[mlflow]" in lines[0] and "\n" not in lines[0]


def test_off_by_default_and_never_imports_mlflow(fake_run, monkeypatch):
    monkeypatch.delenv("KERASGUIDE_MLFLOW", raising=False)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    assert mlflow_stage(fake_run) is None


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ConfigError, match="not a kerasguide run directory"):
        log_to_mlflow(tmp_path)


def test_a_pipeline_run_is_logged_to_mlflow(tiny_config, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from kerasguide.spine import run

    store = tmp_path / "mlruns"
    monkeypatch.setenv("KERASGUIDE_MLFLOW", f"file:{store}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    monkeypatch.setenv("KERASGUIDE_MLFLOW_EXPERIMENT", "kerasguide-tests")
    tiny_config.train.epochs = 3
    result = run(tiny_config, out=tmp_path / "runs", verbose=0)
    assert result.status == "completed"
    record = result.run_dir.read_run()
    run_id = record["mlflow"]["run_id"]
    client = mlflow.tracking.MlflowClient(tracking_uri=f"file:{store}")
    logged = client.get_run(run_id)
    assert logged.data.params["optimizer.learning_rate"] == "0.01"
    assert logged.data.params["model.hidden"] == "[16]"
    assert logged.data.tags["kerasguide.status"] == "completed"
    history = client.get_metric_history(run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    rows = result.run_dir.read_metrics()
    assert [m.value for m in history] == pytest.approx([r["val_loss"] for r in rows])
    assert logged.data.metrics["final_val_accuracy"] == pytest.approx(result.final_metrics["val_accuracy"])
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.toml", "run.json", "metrics.csv", "report.md", "checkpoints"} <= artifacts
    assert "tb" not in artifacts
