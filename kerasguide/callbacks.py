"""Callbacks that record a run: metrics.csv, run.json, checkpoints, TensorBoard scalars, JSON progress."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasguide.progress import Progress
from kerasguide.rundir import RunDir
from kerasguide.tasks import metric_direction
from kerasguide.tb_events import release_writer, shared_writer
from kerasguide.training import save_model_atomic  # re-exported: older callers

__all__ = ["RunRecorder", "BestCheckpoint", "JsonProgress", "EpochScalars", "save_model_atomic", "current_lr"]


def current_lr(model: keras.Model) -> float:
    """The optimizer's learning rate now (a schedule is evaluated at its step)."""
    optimizer = model.optimizer
    if optimizer is None:
        return math.nan
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (TypeError, ValueError):  # pragma: no cover
        return math.nan



def _better(mode: str, value: float, best: float) -> bool:
    return value < best if mode == "min" else value > best


class BestCheckpoint(keras.callbacks.Callback):
    """Keep one best checkpoint, the validation score in its file name.

    Written here because Keras' `ModelCheckpoint(save_best_only=True)` with a
    formatted file name leaves one file per improvement, and saves a `.keras`
    file at every improvement: on a small model that costs more than the
    epoch itself. This callback keeps the best weights in memory, writes
    `best-epoch=012-val_accuracy=0.9812.keras` atomically at most every
    `flush_seconds` and at the end of training (also when it is
    interrupted), and removes the previous best file.

    Args:
        directory: Where the checkpoint goes.
        monitor: The logged metric to maximize (or minimize: losses, mae, rmse).
            Defaults to `"val_accuracy"`.
        flush_seconds: Longest time an improvement stays only in memory.
            Defaults to `30.0`.
    """

    def __init__(self, directory: str | os.PathLike[str], monitor: str = "val_accuracy",
                 flush_seconds: float = 30.0):
        super().__init__()
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = metric_direction(monitor)
        self.flush_seconds = flush_seconds

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_path: Path | None = None
        self.best_epoch: int | None = None
        self._pending: list[np.ndarray] | None = None
        self._last_flush = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is not None:
            value = float(value)
            if math.isfinite(value) and _better(self.mode, value, self.best):
                self.best = value
                self.best_epoch = epoch + 1
                self._pending = [np.array(w) for w in self.model.get_weights()]
        if self._pending is not None and time.perf_counter() - self._last_flush >= self.flush_seconds:
            self.flush()

    def on_train_end(self, logs=None):
        self.flush()

    def flush(self) -> None:
        """Write the best weights seen so far, if not yet on disk."""
        if self._pending is None:
            return
        current = self.model.get_weights()
        try:
            self.model.set_weights(self._pending)
            target = self.directory / f"best-epoch={self.best_epoch:03d}-{self.monitor}={self.best:.4f}.keras"
            target = save_model_atomic(self.model, target)  # NAME.weights.h5 for a model Keras cannot save whole
        finally:
            self.model.set_weights(current)
        if self.best_path is not None and self.best_path != target and self.best_path.exists():
            self.best_path.unlink()
        self.best_path = target
        self._pending = None
        self._last_flush = time.perf_counter()

    @property
    def has_pending(self) -> bool:
        """True while an improvement is only in memory (an interrupted fit: `flush` it)."""
        return getattr(self, "_pending", None) is not None


class EpochScalars(keras.callbacks.Callback):
    """Every epoch's logs as TensorBoard scalars, as Keras' `TensorBoard(update_freq="epoch")` writes them.

    `epoch_<key>` in `<log_dir>/train` and, for the `val_` keys, in
    `<log_dir>/validation`, plus `epoch_learning_rate`. Written with
    TensorBoard's own event writer in plain Python
    (`kerasguide.tb_events.EventWriter`): Keras' callback writes each scalar
    with an eager `tf.summary` op, slow on a small model (benchmarks/README.md).

    Args:
        log_dir: The run's TensorBoard folder.
    """

    def __init__(self, log_dir: str | os.PathLike[str]):
        super().__init__()
        self.log_dir = Path(log_dir)

    def on_train_begin(self, logs=None):
        self._train = shared_writer(self.log_dir / "train")
        self._validation = shared_writer(self.log_dir / "validation")

    def on_epoch_end(self, epoch, logs=None):
        values = {key: float(np.asarray(value)) for key, value in (logs or {}).items()
                  if np.ndim(value) == 0 and key != "learning_rate"}
        values["learning_rate"] = current_lr(self.model)
        with self._train, self._validation:
            for key, value in values.items():
                if not math.isfinite(value):
                    continue
                if key.startswith("val_"):
                    self._validation.scalar(f"epoch_{key[4:]}", value, epoch)
                else:
                    self._train.scalar(f"epoch_{key}", value, epoch)

    def on_train_end(self, logs=None):
        for folder in ("train", "validation"):
            release_writer(self.log_dir / folder, force=True)


class RunRecorder(keras.callbacks.Callback):
    """Append each epoch to metrics.csv and keep run.json's progress and best current.

    Args:
        run_dir: The run directory (a `RunDir` or a path).
        monitor: The logged metric whose best epoch run.json names.
            Defaults to `"val_accuracy"` (minimized when its name has "loss", "mae", "mse" or "error").
        history: The list the epochs' rows are appended to (a caller's, to
            read them afterwards). Defaults to a new list.
        update_run: Called with run.json's new fields instead of
            `run_dir.update_run` (a caller that keeps a copy of the record).
            Defaults to `None`.
    """

    def __init__(self, run_dir: RunDir | str | os.PathLike[str], monitor: str = "val_accuracy",
                 history: list[dict[str, float]] | None = None,
                 update_run: Callable[..., Any] | None = None):
        super().__init__()
        self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
        self.monitor = monitor
        self.history = history if history is not None else []
        self.update_run = update_run or self.run_dir.update_run

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._epoch_start = self._start

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        now = time.perf_counter()
        row: dict[str, Any] = {"epoch": epoch + 1}
        for key, value in logs.items():
            if key == "learning_rate":
                continue
            row[key] = float(np.asarray(value))
        row["lr"] = current_lr(self.model)
        row["seconds"] = round(now - self._epoch_start, 4)
        self.history.append(row)
        self.run_dir.write_metrics(self.history)
        mode = metric_direction(self.monitor)
        values = [(r.get(self.monitor), r["epoch"]) for r in self.history
                  if r.get(self.monitor) is not None and math.isfinite(r.get(self.monitor))]
        best = {}
        if values:
            value, best_epoch = (min if mode == "min" else max)(values, key=lambda v: v[0])
            best = {"metric": self.monitor, "value": value, "epoch": best_epoch,
                    "metrics": next(r for r in self.history if r["epoch"] == best_epoch)}
        self.update_run(epochs_done=epoch + 1, best=best, train_seconds=round(now - self._start, 3))


class JsonProgress(keras.callbacks.Callback):
    """Emit `epoch` events (and throttled `step` events) as JSON lines."""

    def __init__(self, progress: Progress, epochs: int, steps_per_epoch: int, step_interval: float = 0.5):
        super().__init__()
        self.progress = progress
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.step_interval = step_interval

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._last_step = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self._last_step >= self.step_interval:
            self._last_step = now
            self.progress.emit("step", epoch=self._epoch + 1, step=batch + 1, steps=self.steps_per_epoch)

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        done = epoch + 1
        elapsed = now - self._start
        eta = elapsed / done * (self.epochs - done)
        metrics = {k: float(np.asarray(v)) for k, v in (logs or {}).items()}
        self.progress.emit(
            "epoch", epoch=done, total=self.epochs, metrics=metrics,
            seconds=round(now - self._epoch_start, 4), elapsed=round(elapsed, 3), eta=round(eta, 3),
        )
