"""Optional MLflow tracking (recipe I33: "MLflow as an environment-agnostic alternative").

The run directory stays the record (recipe I32); MLflow gets a copy of it:
the resolved config as params, metrics.csv as per-epoch metrics (step =
epoch), the final metrics, tags (status, seed, git commit, run directory),
the run's files as artifacts and its best checkpoint as a model in MLflow's
Keras flavour (`model/`). Logging reads only the run directory, so any
finished run can be logged afterwards too.

MLflow is an optional extra, imported only here and only when asked for:
`pip install kerasguide[mlflow]` (the light `mlflow-skinny` client is enough).
`mlflow.keras.log_model` itself needs the full `mlflow` (it imports pandas),
so the model is written in that flavour's layout by hand (`MLmodel`,
`data/model.keras`, the environment files) and logged as artifacts: the
full package's `mlflow.keras.load_model("runs:/ID/model")` loads it.

Where to log, in order of precedence:

1. `[tracking] mlflow = "URI"` in the config (`sqlite:///mlflow.db`,
   `http://127.0.0.1:5000`, ...);
2. else the environment variable `KERASGUIDE_MLFLOW`: `1`/`true` logs to
   MLflow's default tracking URI (`MLFLOW_TRACKING_URI` if set), any other
   value is used as the tracking URI;
3. else nothing is logged.

The experiment is `[tracking] experiment`, else `KERASGUIDE_MLFLOW_EXPERIMENT`,
else `kerasguide`. A search (`kerasguide tune`) is a parent run with each
trial nested under it, an ensemble a parent run with its trained members:
the parent's id travels to each trial or member in its config
(`tracking.parent_run`), so trials on worker processes or Ray actors nest too.

Example:

```python
from kerasguide.tracking import log_to_mlflow
run_id = log_to_mlflow("runs/20261123-101500-digits-mlp-0a5c59", tracking_uri="sqlite:///mlflow.db")
```
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kerasguide.config import ConfigError, RunConfig
from kerasguide.errors import one_line
from kerasguide.rundir import RunDir, read_json

__all__ = [
    "log_to_mlflow", "mlflow_requested", "mlflow_stage", "MISSING_MLFLOW", "flatten_config",
    "tracking_uri", "experiment_name", "ParentRun", "start_parent_run", "finish_parent_run", "nest_config",
    "log_keras_model", "best_checkpoint",
]

logger = logging.getLogger("kerasguide")

ENV = "KERASGUIDE_MLFLOW"
ENV_EXPERIMENT = "KERASGUIDE_MLFLOW_EXPERIMENT"
DEFAULT_EXPERIMENT = "kerasguide"
MISSING_MLFLOW = "mlflow is not installed: pip install kerasguide[mlflow]"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag: its UI draws the children under the parent
_ARTIFACT_SKIP = {"tb"}  # TensorBoard's event files have their own viewer
_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
_STATUS = {"completed": "FINISHED", "pruned": "FINISHED", "stopped": "KILLED", "interrupted": "KILLED"}
# An unreachable server: MLflow retries for minutes by default; one retry, 20 s each, unless the user set them.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def mlflow_requested(environ: dict[str, str] | None = None) -> str | None:
    """The tracking URI asked for by `KERASGUIDE_MLFLOW` ("" = MLflow's default), or None when off."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip()
    if value.lower() in ("", "0", "false", "no", "off"):
        return None
    if value.lower() in ("1", "true", "yes", "on"):
        return ""
    return value


def tracking_uri(config: RunConfig, environ: dict[str, str] | None = None) -> str | None:
    """Where `config` logs: `tracking.mlflow`, else `KERASGUIDE_MLFLOW` ("" = MLflow's default); None when off."""
    if config.tracking.mlflow:
        return config.tracking.mlflow
    return mlflow_requested(environ)


def experiment_name(config: RunConfig | None = None, environ: dict[str, str] | None = None) -> str:
    """`tracking.experiment`, else `KERASGUIDE_MLFLOW_EXPERIMENT`, else `"kerasguide"`."""
    if config is not None and config.tracking.experiment:
        return config.tracking.experiment
    return (os.environ if environ is None else environ).get(ENV_EXPERIMENT) or DEFAULT_EXPERIMENT


def _import_mlflow():
    try:
        import mlflow  # an optional extra: imported only when a run asks for MLflow
        from mlflow.tracking import MlflowClient  # noqa: F401  (skinny has it; a broken install fails here)
    except ImportError:
        raise ConfigError(MISSING_MLFLOW) from None
    return mlflow


@contextlib.contextmanager
def _http_limits() -> Iterator[None]:
    """MLflow's HTTP retries bounded while kerasguide logs (the user's own settings win), then put back."""
    added = {k: v for k, v in _HTTP_DEFAULTS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _client(uri: str | None):
    mlflow = _import_mlflow()
    return mlflow.tracking.MlflowClient(tracking_uri=uri or None)


def _artifact_location(uri: str, name: str) -> str | None:
    """Beside a SQLite store's file: MLflow's default (`./mlruns`) is the working directory of whoever made it."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///"):])
    return str((database.parent / "mlartifacts" / name.replace("/", "_")).resolve())


def _experiment_id(client, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_location(client.tracking_uri, name))
    except Exception:  # created by a trial's worker at the same moment: read it back
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _short_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return one_line(f"{type(error).__name__}: {text[0] if text else ''}")[:300]


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


def _params(config: RunConfig) -> dict[str, str]:
    # Where a run is logged is no parameter of it (and a trial's parent id would differ in every one).
    return flatten_config({k: v for k, v in config.to_dict().items() if k != "tracking"})


def _log_params(client, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + _PARAMS_PER_BATCH])


def _log_metrics(client, run_id: str, values: dict[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in values.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if items:
        client.log_batch(run_id, metrics=items)


def best_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """A run's best checkpoint (the newest `best-*.keras`), else its `last.keras`; None without either."""
    folder = Path(run_dir) / "checkpoints"
    best = sorted(folder.glob("best-*.keras"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if best:
        return best[-1]
    last = folder / "last.keras"
    return last if last.is_file() else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _keras_flavour_dir(keras_file: Path, dest: Path) -> Path:
    """`dest` laid out as `mlflow.keras.save_model` lays out a Keras 3 model (MLmodel, data/model.keras, envs)."""
    from mlflow.models.model import Model  # plain Python in mlflow-skinny (no pandas)

    data = dest / "data"
    data.mkdir(parents=True)
    shutil.copy2(keras_file, data / "model.keras")
    (data / "keras_module.txt").write_text("keras", encoding="utf-8")
    pins = [f"{name}=={_version(name)}" for name in ("mlflow", "keras", "tensorflow", "kerasguide") if _version(name)]
    (dest / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    python = platform.python_version()
    (dest / "python_env.yaml").write_text(
        f"python: {python}\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n", encoding="utf-8")
    (dest / "conda.yaml").write_text(
        f"channels:\n- conda-forge\ndependencies:\n- python={python}\n- pip\n- pip:\n"
        + "".join(f"  - {pin}\n" for pin in pins) + "name: mlflow-env\n", encoding="utf-8")
    model = Model()
    # The two flavours `mlflow.keras.save_model` writes: its loader reads `data` + "/model" + ".keras".
    model.add_flavor("keras", data="data", keras_version=_version("keras") or "", keras_backend="tensorflow",
                     save_exported_model=False)
    model.add_flavor("python_function", loader_module="mlflow.keras", python_version=python,
                     env={"conda": "conda.yaml", "virtualenv": "python_env.yaml"})
    model.model_size_bytes = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    model.save(str(dest / "MLmodel"))
    return dest


def log_keras_model(client, run_id: str, keras_file: str | os.PathLike[str], artifact_path: str = "model") -> None:
    """Log a `.keras` file as an MLflow model of the Keras flavour under `artifact_path` of run `run_id`."""
    with tempfile.TemporaryDirectory(prefix="kerasguide-mlflow-") as tmp:
        folder = _keras_flavour_dir(Path(keras_file), Path(tmp) / artifact_path)
        client.log_artifacts(run_id, str(folder), artifact_path=artifact_path)


def log_to_mlflow(
    run_dir: str | os.PathLike[str], tracking_uri: str | None = None, experiment: str | None = None,
    parent_run_id: str | None = None,
) -> str:
    """Log a recorded run directory to MLflow; returns the MLflow run id.

    Args:
        run_dir: A kerasguide run directory.
        tracking_uri: Where to log; MLflow's default if None or "".
            Defaults to `None`.
        experiment: The experiment's name. Defaults to the run's
            `tracking.experiment`, `$KERASGUIDE_MLFLOW_EXPERIMENT` or `"kerasguide"`.
        parent_run_id: The MLflow run this one nests under (its
            `mlflow.parentRunId` tag). Defaults to the run's `tracking.parent_run`.

    Raises:
        ConfigError: mlflow is not installed (one line naming the extra), or
            `run_dir` is not a run directory.
    """
    path = Path(run_dir)
    if not (path / "run.json").is_file():
        raise ConfigError(f"{path}: not a kerasguide run directory (no run.json)")
    client = _client(tracking_uri)
    rd = RunDir(path)
    record = read_json(rd.run_json, default={}) or {}
    config = rd.read_config()
    parent = parent_run_id or config.tracking.parent_run
    tags = {
        "kerasguide.status": str(record.get("status")),
        "kerasguide.run_dir": str(path.resolve()),
        "kerasguide.seed": str(record.get("seed")),
        "kerasguide.kind": "run",
    }
    if parent:
        tags[PARENT_TAG] = parent
    git = record.get("git") or {}
    if git.get("commit"):
        tags["mlflow.source.git.commit"] = git["commit"]
    with _http_limits():
        active = client.create_run(_experiment_id(client, experiment or experiment_name(config)),
                                   run_name=path.name, tags=tags)
        run_id = active.info.run_id
        try:
            _log_params(client, run_id, _params(config))
            for row in rd.read_metrics():
                _log_metrics(client, run_id, {k: v for k, v in row.items() if k != "epoch"},
                             step=int(row.get("epoch", 0)))
            _log_metrics(client, run_id, {f"final_{k}": v for k, v in (record.get("final_metrics") or {}).items()})
            for item in sorted(path.iterdir()):
                if item.name in _ARTIFACT_SKIP or item.name.startswith("."):
                    continue
                if item.is_dir():
                    client.log_artifacts(run_id, str(item), artifact_path=item.name)
                else:
                    client.log_artifact(run_id, str(item))
            checkpoint = best_checkpoint(path)
            if checkpoint is not None and not parent:  # a trial's or member's model: its parent logs the one that counts
                log_keras_model(client, run_id, checkpoint)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, _STATUS.get(str(record.get("status")), "FAILED"))
    return run_id


def mlflow_stage(run_dir: RunDir | str | os.PathLike[str]) -> str | None:
    """The pipeline's final "mlflow" stage: log the run if `[tracking] mlflow` or `KERASGUIDE_MLFLOW` asks.

    A missing extra or an unreachable server is one warning line; the run's
    own outcome never changes.
    """
    path = run_dir.path if isinstance(run_dir, RunDir) else Path(run_dir)
    try:
        config = RunDir(path).read_config()
    except (ConfigError, OSError):  # no config: nothing says where to log
        config = None
    uri = tracking_uri(config) if config is not None else mlflow_requested()
    if uri is None:
        return None
    try:
        run_id = log_to_mlflow(path, tracking_uri=uri or None)
    except ConfigError as error:
        logger.warning("MLflow logging asked for (%s) but skipped: %s",
                       "tracking.mlflow" if config is not None and config.tracking.mlflow else ENV, error)
        return None
    except Exception as error:  # a server down must not turn a good run bad
        logger.warning("MLflow logging failed: %s", _short_error(error))
        return None
    logger.info("logged to MLflow: run %s", run_id)
    RunDir(path).update_run(mlflow={"run_id": run_id, "tracking_uri": uri or None})
    return run_id


# ------------------------------------------------------------------ parents: a search, an ensemble
@dataclass(frozen=True)
class ParentRun:
    """An MLflow run that others nest under (a search's, an ensemble's), as its children need to find it."""

    run_id: str
    tracking_uri: str
    experiment: str

    def to_dict(self) -> dict[str, str]:
        return {"run_id": self.run_id, "tracking_uri": self.tracking_uri, "experiment": self.experiment}

    @classmethod
    def from_dict(cls, data: Any) -> ParentRun | None:
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("run_id", "tracking_uri")):
            return None
        return cls(data["run_id"], data["tracking_uri"], str(data.get("experiment") or DEFAULT_EXPERIMENT))


def _absolute_uri(uri: str) -> str:
    """A local store's URI with an absolute path (`sqlite:///mlflow.db` is relative to the working directory)."""
    for prefix in ("sqlite:///", "file://", "file:"):
        if uri.startswith(prefix):
            rest = uri[len(prefix):]
            if rest.startswith("/") or (prefix == "file://" and not rest.startswith(".")):
                return uri
            return ("sqlite:///" if prefix == "sqlite:///" else "file:") + str(Path(rest).resolve())
    return uri


def start_parent_run(config: RunConfig, name: str, kind: str, *, tags: dict[str, str] | None = None,
                     resume: Any = None) -> ParentRun | None:
    """Open the parent MLflow run of a search or an ensemble; None when the config logs nowhere.

    Args:
        config: The config; its tracking URI and experiment (`tracking_uri`, `experiment_name`).
        name: The run's name (the search or ensemble directory's).
        kind: `"search"` or `"ensemble"` (the `kerasguide.kind` tag).
        tags: More tags. Defaults to `None`.
        resume: A `ParentRun.to_dict()` recorded before (a resumed search): that run is opened again when it
            is in the same store. Defaults to `None`.

    Raises:
        ConfigError: one line, when mlflow is missing or the store cannot be reached: the children could not
            nest, so the search or ensemble does not start.
    """
    uri = tracking_uri(config)
    if uri is None:
        return None
    mlflow = _import_mlflow()
    experiment = experiment_name(config)
    where = "tracking.mlflow" if config.tracking.mlflow else ENV
    try:
        with _http_limits():
            client = mlflow.tracking.MlflowClient(tracking_uri=uri or None)
            # The resolved URI goes to the children: a worker's MLflow default or working directory may differ.
            resolved = _absolute_uri(uri or mlflow.get_tracking_uri())
            before = ParentRun.from_dict(resume)
            if before is not None and before.tracking_uri == resolved:
                with contextlib.suppress(Exception):  # deleted meanwhile: a new parent below
                    client.update_run(before.run_id, status="RUNNING")
                    return before
            run = client.create_run(_experiment_id(client, experiment), run_name=name,
                                    tags={"kerasguide.kind": kind, **(tags or {})})
            _log_params(client, run.info.run_id, _params(config))
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"{where} = {uri or mlflow.get_tracking_uri()!r}: MLflow cannot be reached: "
                          f"{_short_error(error)}") from None
    return ParentRun(run.info.run_id, resolved, experiment)


def nest_config(config: RunConfig, parent: ParentRun | None) -> RunConfig:
    """A copy of `config` whose runs log to `parent`'s store, nested under it (None: `config` itself)."""
    if parent is None:
        return config
    nested = config.model_copy(deep=True)
    try:
        nested.tracking.mlflow = parent.tracking_uri
    except ValueError:  # MLflow's default, a bare path: the children read KERASGUIDE_MLFLOW as the parent did
        pass
    nested.tracking.experiment = parent.experiment
    nested.tracking.parent_run = parent.run_id
    return nested


def finish_parent_run(parent: ParentRun | None, status: str, *, metrics: dict[str, Any] | None = None,
                      params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                      artifacts: list[Path] | tuple[Path, ...] = (), model: Path | None = None) -> None:
    """Log a search's or ensemble's outcome into its parent run and close it; best effort (a warning line)."""
    if parent is None:
        return
    try:
        client = _client(parent.tracking_uri)
        run_id = parent.run_id
        with _http_limits():
            if params:
                _log_params(client, run_id, {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()})
            _log_metrics(client, run_id, metrics or {})
            for key, value in (tags or {}).items():
                client.set_tag(run_id, key, value)
            client.set_tag(run_id, "kerasguide.status", status)
            for item in artifacts:
                if item.is_dir():
                    client.log_artifacts(run_id, str(item), artifact_path=item.name)
                elif item.is_file():
                    client.log_artifact(run_id, str(item))
            if model is not None and model.is_file():
                log_keras_model(client, run_id, model)
            client.set_terminated(run_id, _STATUS.get(status, "FAILED"))
    except Exception as error:  # the search or ensemble is recorded in its directory whatever MLflow says
        logger.warning("MLflow logging of %s failed: %s", parent.run_id, _short_error(error))
