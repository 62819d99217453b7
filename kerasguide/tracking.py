"""Optional MLflow tracking (recipe I33: "MLflow as an environment-agnostic alternative").

The run directory stays the record (recipe I32); MLflow gets a copy of it:
the resolved config as params, metrics.csv as per-epoch metrics (step =
epoch), the final metrics, tags (status, seed, git commit, run directory)
and the run's files as artifacts. Logging reads only the run directory, so
any finished run can be logged afterwards too.

MLflow is an optional extra, imported only here and only when asked for:
`pip install kerasguide[mlflow]` (the light `mlflow-skinny` client is enough).

Ask for it with the environment variable `KERASGUIDE_MLFLOW`:
`1`/`true` logs to MLflow's default tracking URI (`MLFLOW_TRACKING_URI` if
set), any other value is used as the tracking URI (e.g. `file:./mlruns`,
`http://127.0.0.1:5000`). `KERASGUIDE_MLFLOW_EXPERIMENT` names the
experiment (default: `kerasguide`).

Example:

```python
from kerasguide.tracking import log_to_mlflow
run_id = log_to_mlflow("runs/20261123-101500-digits-mlp-0a5c59", tracking_uri="file:./mlruns")
```
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from kerasguide.config import ConfigError
from kerasguide.rundir import RunDir, read_json

__all__ = ["log_to_mlflow", "mlflow_requested", "mlflow_stage", "MISSING_MLFLOW", "flatten_config"]

logger = logging.getLogger("kerasguide")

ENV = "KERASGUIDE_MLFLOW"
ENV_EXPERIMENT = "KERASGUIDE_MLFLOW_EXPERIMENT"
MISSING_MLFLOW = "mlflow is not installed: pip install kerasguide[mlflow]"
_ARTIFACT_SKIP = {"tb"}  # TensorBoard's event files have their own viewer


def mlflow_requested(environ: dict[str, str] | None = None) -> str | None:
    """The tracking URI asked for by `KERASGUIDE_MLFLOW` ("" = MLflow's default), or None when off."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip()
    if value.lower() in ("", "0", "false", "no", "off"):
        return None
    if value.lower() in ("1", "true", "yes", "on"):
        return ""
    return value


def _import_mlflow():
    try:
        import mlflow  # an optional extra: imported only when a run asks for MLflow
    except ImportError:
        raise ConfigError(MISSING_MLFLOW) from None
    return mlflow


def flatten_config(config: dict[str, Any]) -> dict[str, str]:
    """`{"section.key": value}` of a config dict, values as text (MLflow params are strings)."""
    flat: dict[str, str] = {}
    for section, values in config.items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[f"{section}.{key}"] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        else:
            flat[section] = values if isinstance(values, str) else json.dumps(values)
    return flat


def log_to_mlflow(
    run_dir: str | os.PathLike[str], tracking_uri: str | None = None, experiment: str | None = None
) -> str:
    """Log a recorded run directory to MLflow; returns the MLflow run id.

    Args:
        run_dir: A kerasguide run directory.
        tracking_uri: Where to log; MLflow's default if None or "".
            Defaults to `None`.
        experiment: The experiment's name. Defaults to
            `$KERASGUIDE_MLFLOW_EXPERIMENT` or `"kerasguide"`.

    Raises:
        ConfigError: mlflow is not installed (one line naming the extra), or
            `run_dir` is not a run directory.
    """
    path = Path(run_dir)
    if not (path / "run.json").is_file():
        raise ConfigError(f"{path}: not a kerasguide run directory (no run.json)")
    mlflow = _import_mlflow()
    rd = RunDir(path)
    record = read_json(rd.run_json, default={}) or {}
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment or os.environ.get(ENV_EXPERIMENT) or "kerasguide")
    config = rd.read_config().to_dict()
    with mlflow.start_run(run_name=path.name) as active:
        mlflow.log_params(flatten_config(config))
        tags = {
            "kerasguide.status": str(record.get("status")),
            "kerasguide.run_dir": str(path.resolve()),
            "kerasguide.seed": str(record.get("seed")),
        }
        git = record.get("git") or {}
        if git.get("commit"):
            tags["mlflow.source.git.commit"] = git["commit"]
        mlflow.set_tags(tags)
        for row in rd.read_metrics():
            step = int(row.get("epoch", 0))
            values = {k: float(v) for k, v in row.items() if k != "epoch" and math.isfinite(v)}
            if values:
                mlflow.log_metrics(values, step=step)
        final = {f"final_{k}": float(v) for k, v in (record.get("final_metrics") or {}).items()
                 if isinstance(v, (int, float)) and math.isfinite(v)}
        if final:
            mlflow.log_metrics(final)
        for item in sorted(path.iterdir()):
            if item.name in _ARTIFACT_SKIP or item.name.startswith("."):
                continue
            if item.is_dir():
                mlflow.log_artifacts(str(item), artifact_path=item.name)
            else:
                mlflow.log_artifact(str(item))
        return active.info.run_id


def mlflow_stage(run_dir: RunDir | str | os.PathLike[str]) -> str | None:
    """The pipeline's final "mlflow" stage: log the run if `KERASGUIDE_MLFLOW` asks for it.

    A missing extra or an unreachable server is one warning line; the run's
    own outcome never changes.
    """
    uri = mlflow_requested()
    if uri is None:
        return None
    path = run_dir.path if isinstance(run_dir, RunDir) else Path(run_dir)
    try:
        run_id = log_to_mlflow(path, tracking_uri=uri or None)
    except ConfigError as error:
        logger.warning("MLflow logging asked for (%s) but skipped: %s", ENV, error)
        return None
    except Exception as error:  # a server down must not turn a good run bad
        logger.warning("MLflow logging failed: %s: %s", type(error).__name__, str(error).splitlines()[0] if str(error) else "")
        return None
    logger.info("logged to MLflow: run %s", run_id)
    RunDir(path).update_run(mlflow={"run_id": run_id, "tracking_uri": uri or None})
    return run_id
