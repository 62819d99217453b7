"""Recipe I33's alternative: optional MLflow logging of a recorded run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

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


# ------------------------------------------------------------------ [tracking] mlflow = "URI"
def test_the_config_key_wins_over_the_environment_variable():
    from kerasguide.config import RunConfig
    from kerasguide.tracking import experiment_name, tracking_uri

    cfg = RunConfig()
    assert tracking_uri(cfg, {}) is None
    assert tracking_uri(cfg, {"KERASGUIDE_MLFLOW": "http://127.0.0.1:5000"}) == "http://127.0.0.1:5000"
    cfg.tracking.mlflow = "sqlite:///a.db"
    assert tracking_uri(cfg, {"KERASGUIDE_MLFLOW": "http://127.0.0.1:5000"}) == "sqlite:///a.db"
    assert experiment_name(cfg, {}) == "kerasguide"
    assert experiment_name(cfg, {"KERASGUIDE_MLFLOW_EXPERIMENT": "env"}) == "env"
    cfg.tracking.experiment = "mine"
    assert experiment_name(cfg, {"KERASGUIDE_MLFLOW_EXPERIMENT": "env"}) == "mine"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A real local MLflow store (SQLite), nothing from the environment."""
    pytest.importorskip("mlflow")
    monkeypatch.delenv("KERASGUIDE_MLFLOW", raising=False)
    monkeypatch.delenv("KERASGUIDE_MLFLOW_EXPERIMENT", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _client(uri):
    import mlflow

    return mlflow.tracking.MlflowClient(tracking_uri=uri)


def _assert_keras_flavour(client, run_id, tmp_path, name="model"):
    """The model logged in the layout of `mlflow.keras.log_model`: MLmodel with the keras and pyfunc flavours,
    data/model.keras that Keras loads (what `mlflow.keras.load_model` reads with the full mlflow)."""
    import keras
    import yaml  # mlflow's own dependency; its Model.load needs pandas (full mlflow)

    local = Path(client.download_artifacts(run_id, name, str(tmp_path / f"download-{run_id}")))
    flavours = yaml.safe_load((local / "MLmodel").read_text())["flavors"]
    assert flavours["keras"]["data"] == "data" and flavours["keras"]["save_exported_model"] is False
    assert flavours["python_function"]["loader_module"] == "mlflow.keras"
    assert (local / "requirements.txt").read_text().count("==") >= 2
    model = keras.saving.load_model(local / "data" / "model.keras", compile=False)
    return model


def test_a_run_with_the_key_logs_params_metrics_artifacts_and_its_model(tiny_config, tmp_path, store):
    from kerasguide.spine import run

    tiny_config.tracking.mlflow = store
    tiny_config.tracking.experiment = "key-tests"
    result = run(tiny_config, out=tmp_path / "runs", verbose=0)
    assert result.status == "completed"
    run_id = result.run_dir.read_run()["mlflow"]["run_id"]
    client = _client(store)
    logged = client.get_run(run_id)
    assert client.get_experiment(logged.info.experiment_id).name == "key-tests"
    assert logged.info.status == "FINISHED"
    assert logged.info.artifact_uri.startswith(str(tmp_path / "mlartifacts" / "key-tests"))  # beside the store
    assert logged.data.params["model.hidden"] == "[16]" and "tracking.mlflow" not in logged.data.params
    assert "mlflow.parentRunId" not in logged.data.tags
    history = client.get_metric_history(run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.toml", "run.json", "metrics.csv", "checkpoints", "model"} <= artifacts
    model = _assert_keras_flavour(client, run_id, tmp_path)
    assert model.output_shape == (None, 10)


def test_a_search_is_a_parent_run_with_its_trials_nested_across_processes(tmp_path, store):
    """Trials in worker processes (engine = "process") find the parent in their own config.toml."""
    from kerasguide.search import tune
    from tests.conftest import tiny_digits

    cfg = tiny_digits(epochs=1, monitors=False, workers=1, engine="process", algorithm="random",
                      stages=[{"epochs": 1, "trials": 2}], widen_on_border=False,
                      space={"optimizer.learning_rate": {"low": 1e-3, "high": 1e-1, "log": True}})
    cfg.tracking.mlflow = store
    result = tune(cfg, out=tmp_path / "runs")
    assert result.status == "completed"
    parent_id = result.state["mlflow"]["run_id"]
    client = _client(store)
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["kerasguide.kind"] == "search"
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(result.best["score"])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    trials = [t for stage in result.state["stages"] for t in stage["trials"]]
    assert {t["worker"] for t in trials} == {"process"}
    assert sorted(c.data.tags["kerasguide.run_dir"] for c in children) == sorted(
        str((result.path / t["run_dir"]).resolve()) for t in trials)
    assert {a.path for a in client.list_artifacts(parent_id)} >= {"search.json", "best.toml", "model"}
    _assert_keras_flavour(client, parent_id, tmp_path)  # the best trial's model


def test_an_ensemble_is_a_parent_run_with_its_members_nested(tmp_path, store):
    from kerasguide.ensemble import run_ensemble
    from tests.conftest import tiny_digits

    cfg = tiny_digits(epochs=1, monitors=False)
    cfg.tracking.mlflow = store
    result = run_ensemble(cfg, members=2, out=tmp_path / "runs", verbose=0)
    client = _client(store)
    [parent] = client.search_runs([client.get_experiment_by_name("kerasguide").experiment_id],
                                  "tags.`kerasguide.kind` = 'ensemble'")
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["validation_ensemble_accuracy"] == pytest.approx(
        result.validation["ensemble"]["accuracy"])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == sorted(m.run_dir.name for m in result.members)
    _assert_keras_flavour(client, parent.info.run_id, tmp_path)  # the ensemble itself


def test_a_bad_uri_is_one_line_and_exit_2(tmp_path, capsys, tiny_config):
    from kerasguide.config import dump_config
    from tests.conftest import cli_in_process

    path = tmp_path / "bad.toml"
    path.write_text(dump_config(tiny_config).replace("[tracking]\n", '[tracking]\nmlflow = "htp://127.0.0.1:5000"\n'))
    done = cli_in_process(capsys, "run", str(path), "--out", str(tmp_path / "runs"))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "tracking.mlflow" in lines[0] and "htp://" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()


def test_an_unreachable_store_stops_a_search_before_its_trials_in_one_line(tmp_path, capsys, store):
    from kerasguide.board import free_port
    from kerasguide.config import save_config
    from tests.conftest import cli_in_process, tiny_digits

    cfg = tiny_digits(epochs=1, monitors=False, workers=0, algorithm="random", stages=[{"epochs": 1, "trials": 2}])
    cfg.tracking.mlflow = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    save_config(cfg, tmp_path / "search.toml")
    done = cli_in_process(capsys, "tune", str(tmp_path / "search.toml"), "--out", str(tmp_path / "runs"))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "MLflow" in line]
    assert len(lines) == 1 and "tracking.mlflow = 'http://127.0.0.1:" in lines[0], done.stderr
    assert "MLflow cannot be reached" in lines[0] and "Traceback" not in done.stderr
    [search_dir] = (tmp_path / "runs").glob("*-search")
    assert "MLflow cannot be reached" in _state_of(search_dir)["error"]  # recorded; the same tune resumes it
    assert not list((tmp_path / "runs").glob("*-search/trials/*"))


def _state_of(search_dir):
    import json

    return json.loads((search_dir / "search.json").read_text())


def test_a_resumed_search_reopens_its_parent_run(store):
    from kerasguide.config import RunConfig
    from kerasguide.tracking import ParentRun, finish_parent_run, nest_config, start_parent_run

    cfg = RunConfig()
    cfg.tracking.mlflow = store
    first = start_parent_run(cfg, "s", "search")
    finish_parent_run(first, "interrupted")
    client = _client(store)
    assert client.get_run(first.run_id).info.status == "KILLED"
    again = start_parent_run(cfg, "s", "search", resume=first.to_dict())
    assert again == first and client.get_run(first.run_id).info.status == "RUNNING"
    assert ParentRun.from_dict(again.to_dict()) == again
    # Another store: a new parent there, not the old id.
    cfg.tracking.mlflow = store.replace("mlflow.db", "other.db")
    assert start_parent_run(cfg, "s", "search", resume=first.to_dict()).run_id != first.run_id
    nested = nest_config(cfg, again)
    assert (nested.tracking.mlflow, nested.tracking.parent_run) == (store, first.run_id)
    assert cfg.tracking.parent_run is None  # the caller's config is left as it was


def test_the_children_get_the_store_as_an_absolute_path(tmp_path, monkeypatch, store):
    """`sqlite:///mlflow.db` is relative to the working directory; a Ray actor's may be another."""
    from kerasguide.config import RunConfig
    from kerasguide.tracking import finish_parent_run, nest_config, start_parent_run

    monkeypatch.chdir(tmp_path)
    cfg = RunConfig()
    cfg.tracking.mlflow = "sqlite:///relative.db"
    parent = start_parent_run(cfg, "s", "search")
    assert parent.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'relative.db'}"
    assert nest_config(cfg, parent).tracking.mlflow == parent.tracking_uri
    finish_parent_run(parent, "completed")
