"""Recipe I33 on Ray: a search's trials on Ray actors nest under its MLflow run (the parent's id in their config)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")

ray = pytest.importorskip("ray")
mlflow = pytest.importorskip("mlflow")

from tests.conftest import tiny_digits  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _no_ray_left():
    ray.shutdown()
    yield
    ray.shutdown()


@pytest.mark.timeout(300)
def test_trials_on_ray_actors_nest_under_the_search(tmp_path, monkeypatch):
    from kerasguide.search import tune

    monkeypatch.delenv("KERASGUIDE_MLFLOW", raising=False)  # the actors know only what their config says
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tiny_digits(epochs=1, monitors=False, workers=1, engine="ray", algorithm="random",
                      stages=[{"epochs": 1, "trials": 2}], widen_on_border=False,
                      space={"optimizer.learning_rate": {"low": 1e-3, "high": 1e-1, "log": True}})
    cfg.tracking.mlflow = store
    result = tune(cfg, out=tmp_path / "runs")
    assert result.status == "completed"
    trials = [t for stage in result.state["stages"] for t in stage["trials"]]
    assert {t["worker"] for t in trials} == {"ray"} and all(t.get("pid") != os.getpid() for t in trials)
    parent_id = result.state["mlflow"]["run_id"]
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    experiment = client.get_run(parent_id).info.experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(c.data.tags["kerasguide.run_dir"] for c in children) == sorted(
        str((result.path / t["run_dir"]).resolve()) for t in trials)
