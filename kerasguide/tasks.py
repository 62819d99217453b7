"""The task a run trains for: classification, binary or regression, and the loss, metrics and
monitored metric that go with it.

`data.task = "auto"` is decided by the config where it can (a regression loss, the diabetes source)
and otherwise by the data (`load_dataset`: targets that are not whole numbers make a regression);
`apply_task(config, dataset.task)` then writes the task and its settings into a copy of the config,
so that everything built from it (the loss, the metrics, the output layer, the checkpoint's metric)
agrees with the data. Plain Python: the config schema validates with it, the app imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kerasguide.errors import ConfigError

if TYPE_CHECKING:  # the schema imports this module: type names only
    from kerasguide.config import RunConfig

__all__ = ["metric_direction", "TASKS", "TASK_LOSSES", "TASK_METRICS", "REGRESSION_SOURCES", "TaskSettings", "config_task",
           "resolve_task", "task_settings", "apply_task"]

TASKS = ("classification", "binary", "regression")
REGRESSION_SOURCES = ("diabetes",)  # bundled sources whose targets are quantities
TASK_LOSSES = {"classification": ("sparse_categorical_crossentropy", "categorical_hinge", "mse"),
               "binary": ("binary_crossentropy",), "regression": ("mse", "mae", "huber")}
TASK_METRICS = {"classification": ("accuracy", "top3_accuracy", "mae"), "binary": ("accuracy",),
                "regression": ("mae", "rmse")}
# What the classification defaults of `train` (loss, metrics, monitor_metric) stand for in another task.
_TASK_DEFAULTS = {"binary": ("binary_crossentropy", ["accuracy"], "val_accuracy"),
                  "regression": ("mse", ["mae", "rmse"], "val_loss")}


@dataclass(frozen=True)
class TaskSettings:
    """What a run trains for: the task and the loss, metrics and monitored metric it takes."""

    task: str
    loss: str
    metrics: tuple[str, ...]
    monitor_metric: str


def config_task(config: RunConfig) -> str | None:
    """The task the config names by itself: `data.task`, else what `train.loss` or the source imply;
    None when only the data can tell (targets that are not whole numbers make a regression)."""
    if config.data.task != "auto":
        return config.data.task
    if config.train.loss in ("mae", "huber"):
        return "regression"
    if config.train.loss == "binary_crossentropy":
        return "binary"
    return "regression" if config.data.source in REGRESSION_SOURCES else None


def resolve_task(config: RunConfig) -> str:
    """The run's task as far as the config says: `config_task`, else classification.

    A task only the data tell (float targets under "auto") is known after `load_dataset`: pass
    `dataset.task` to `apply_task`, whose config then names it.
    """
    return config_task(config) or "classification"


def task_settings(config: RunConfig, task: str | None = None) -> TaskSettings:
    """The loss, metrics and monitored metric of `task` (`resolve_task` if None) under this config: the
    classification defaults stand for the task's own; anything else must fit it, or `ConfigError`."""
    task = task or resolve_task(config)
    train = config.train
    loss, metrics, monitor = train.loss, list(train.metrics), train.monitor_metric
    if task in _TASK_DEFAULTS:
        default_loss, default_metrics, default_monitor = _TASK_DEFAULTS[task]
        loss = default_loss if loss == "sparse_categorical_crossentropy" else loss
        metrics = list(default_metrics) if metrics == ["accuracy"] else metrics
        monitor = default_monitor if monitor == "val_accuracy" else monitor
    why = f'data.task = "{task}"' if config.data.task == task else f"the {task} task of " + (
        f"train.loss = {train.loss!r}" if train.loss in ("mae", "huber", "binary_crossentropy")
        else f"data.source = {config.data.source!r}" if config.data.source in REGRESSION_SOURCES
        else 'targets that are not whole numbers (data.task = "auto")')
    if loss not in TASK_LOSSES[task]:
        raise ConfigError(f"`train.loss` = {loss!r} does not fit {why}; use {' | '.join(TASK_LOSSES[task])}"
                          " (or set `data.task`)")
    wrong = [name for name in metrics if name not in TASK_METRICS[task]]
    if wrong:
        raise ConfigError(f"`train.metrics` = {metrics!r}: {', '.join(wrong)} does not fit {why}; use "
                          f"{' | '.join(TASK_METRICS[task])}")
    return TaskSettings(task, loss, tuple(metrics), monitor)


def apply_task(config: RunConfig, task: str) -> RunConfig:
    """`config` with `task` and the task's loss, metrics and monitored metric written in: a copy, or
    `config` itself when nothing changes (a classification config that said "auto" keeps saying it).

    Raises:
        ConfigError: when the config's loss or metrics do not fit the task.
    """
    settings = task_settings(config, task)
    train = config.train
    current = (train.loss, tuple(train.metrics), train.monitor_metric)
    if current == (settings.loss, settings.metrics, settings.monitor_metric) and (
            task == "classification" or config.data.task == task):
        return config
    resolved = config.model_copy(deep=True)  # the caller's config stays as it was
    if task != "classification":
        resolved.data.task = task
    resolved.train.loss = settings.loss
    resolved.train.metrics = list(settings.metrics)
    resolved.train.monitor_metric = settings.monitor_metric
    return resolved


def metric_direction(name: str) -> str:
    """`"min"` for losses and errors (`val_loss`, a regression's `mae`, `rmse`, `mse`), else `"max"`.

    One rule for the best checkpoint, the run record's best epoch and a search's objective.
    """
    return "min" if any(word in name for word in ("loss", "mae", "mse", "error")) else "max"
