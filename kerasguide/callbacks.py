"""Callbacks that record a run: metrics.csv, run.json, checkpoints, TensorBoard scalars, JSON progress."""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasguide._logging import get_logger
from kerasguide.io import atomic_path, atomic_write_text
from kerasguide.progress import Progress
from kerasguide.rundir import RunDir
from kerasguide.tasks import metric_direction
from kerasguide.tb_events import release_writer, shared_writer
from kerasguide.training import save_model_atomic  # re-exported: older callers

__all__ = ["RunRecorder", "BestCheckpoint", "RunBackup", "JsonProgress", "EpochScalars", "save_model_atomic",
           "current_lr"]

logger = get_logger()


def current_lr(model: keras.Model) -> float:
    """The optimizer's learning rate now (a schedule is evaluated at its step)."""
    optimizer = model.optimizer
    if optimizer is None:
        return math.nan
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (TypeError, ValueError):  # pragma: no cover
        return math.nan



_HOLD_BYTES = 64 << 20


def _better(mode: str, value: float, best: float) -> bool:
    return value < best if mode == "min" else value > best


class BestCheckpoint(keras.callbacks.Callback):
    """Keep one best checkpoint, the validation score in its file name, written when the score improves.

    Written here because Keras' `ModelCheckpoint(save_best_only=True)` with a
    formatted file name leaves one file per improvement, and saves the
    `.keras` file on the training thread: on a small model that costs a good
    part of an epoch. This callback copies the best weights (a
    millisecond), and a writer thread saves them through a twin of the model
    (`keras.models.clone_model`, compiled alike, made on that thread) as
    `best-epoch=012-val_accuracy=0.9812.keras`, atomically, then removes the
    previous best file: a run killed at any moment keeps the best checkpoint
    as of the previous improvement at least. One write runs at a time; the
    next improvement waits for it. A model that cannot be cloned is written
    on the training thread, at most every `flush_seconds`, and at the end of
    training (also when it is interrupted).

    Args:
        directory: Where the checkpoint goes.
        monitor: The logged metric to maximize (or minimize: losses, mae, rmse).
            Defaults to `"val_accuracy"`.
        flush_seconds: Longest time an improvement stays only in memory when
            the model has no twin. Defaults to `30.0`.
    """

    def __init__(self, directory: str | os.PathLike[str], monitor: str = "val_accuracy",
                 flush_seconds: float = 30.0):
        super().__init__()
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = metric_direction(monitor)
        self.flush_seconds = flush_seconds
        self._writer: _TwinWriter | None = None
        self._prior: tuple[float, int, Path | None] | None = None

    def resume_from(self, value: float, epoch: int, path: Path | None) -> None:
        """Start the next fit from a best already on disk (a resumed run): only a better epoch replaces it."""
        self._prior = (float(value), int(epoch), path)

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_path: Path | None = None
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None
        if self._prior is not None:
            self.best, self.best_epoch, self.best_path = self._prior
        self._drop_writer()
        self._pending: _Snapshot | None = None
        self._last_flush = time.perf_counter()
        # The twin is made on the writer thread at the first improvement (a model is built by then).
        self._writer = None if os.environ.get("KERASGUIDE_SYNC_CHECKPOINTS") else _TwinWriter(self.model)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is not None:
            value = float(value)
            if math.isfinite(value) and _better(self.mode, value, self.best):
                self.best = value
                self.best_epoch = epoch + 1
                snapshot = _Snapshot([np.array(w) for w in self.model.get_weights()], epoch + 1, value)
                # Held for the run's evaluation, which then reads no file (a search trial's tenth of a second);
                # a large model's copy is not held.
                small = sum(w.nbytes for w in snapshot.weights) <= _HOLD_BYTES
                self.best_weights = snapshot.weights if small else None
                if self._writer is not None:
                    snapshot.optimizer = _optimizer_state(self.model)
                    self._writer.submit(snapshot, self._target(snapshot), self._written)
                    if self._writer.no_twin:  # the writes come back to the training thread
                        self._drop_writer()
                else:
                    self._pending = snapshot
        if self._pending is not None and time.perf_counter() - self._last_flush >= self.flush_seconds:
            self.flush()

    def on_train_end(self, logs=None):
        self.flush()

    def wait(self) -> None:
        """Block until the improvements so far are on disk (the writer thread's; a run's backup waits for it)."""
        writer = self._writer
        if writer is not None:
            writer.wait(raise_error=False)  # a failed write is raised at the end of training, not here

    def pending(self) -> list[Future]:
        """The write in flight, if any (what a run's backup of this epoch waits for, on its own thread)."""
        writer = self._writer
        future = writer._future if writer is not None and writer.busy else None
        return [future] if future is not None else []

    def _target(self, snapshot: _Snapshot) -> Path:
        return self.directory / f"best-epoch={snapshot.epoch:03d}-{self.monitor}={snapshot.value:.4f}.keras"

    def _written(self, target: Path) -> None:
        # Called once the file is in place (by the writer thread or here): the previous best goes.
        if self.best_path is not None and self.best_path != target and self.best_path.exists():
            self.best_path.unlink()
        self.best_path = target

    def flush(self) -> None:
        """Write the best weights seen so far, if not yet on disk (waits for the writer thread)."""
        self._drop_writer()  # the end of training: the writer's last file, then its thread goes
        pending = getattr(self, "_pending", None)
        if pending is None:
            return
        current = self.model.get_weights()
        try:
            self.model.set_weights(pending.weights)
            target = save_model_atomic(self.model, self._target(pending))  # NAME.weights.h5 if not whole
        finally:
            self.model.set_weights(current)
        self._written(target)
        self._pending = None
        self._last_flush = time.perf_counter()

    def _drop_writer(self) -> None:
        """Close the writer thread (a write's error is raised here); a model without twin hands its newest
        snapshot back to `_pending`, for the training thread to write."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        finally:
            if writer.no_twin:
                self._pending = writer.unwritten

    @property
    def has_pending(self) -> bool:
        """True while an improvement is not yet on disk (an interrupted fit: `flush` it)."""
        writer = getattr(self, "_writer", None)
        return getattr(self, "_pending", None) is not None or (writer is not None and writer.busy)


@dataclass
class _Snapshot:
    weights: list[np.ndarray]
    epoch: int
    value: float
    optimizer: list[np.ndarray] | None = None  # the optimizer's variables then (the twin's file holds them too)


def _optimizer_state(model: keras.Model) -> list[np.ndarray] | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not optimizer.built:
        return None
    return [np.array(v) for v in optimizer.variables]


class _TwinWriter:
    """Saves snapshots of a model's weights through a twin model, on one thread (`BestCheckpoint`).

    A thread of its own rather than the monitors' background thread: that one has the lowest priority
    and a busy machine starves it, while a checkpoint should land soon after its epoch. The twin is made
    there too (cloning and compiling cost about as much as a save); a model that has none (subclassed
    without `get_config`, custom objects) sets `no_twin` and keeps its newest snapshot in `unwritten`.
    """

    def __init__(self, model: keras.Model, device: str | None = None):
        self.model = model
        self.device = device  # where the twin's variables live ("/CPU:0": no second copy in GPU memory)
        self.twin: keras.Model | None = None
        self.no_twin = False
        self.unwritten: _Snapshot | None = None
        self._lock = threading.Lock()
        self._queued: tuple | None = None  # (snapshot, target, done, save, wait_for): the newest job
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future | None = None
        self._running = False  # a _drain is on the pool (set and cleared under the lock: no lost job)
        self._error: BaseException | None = None
        self._cancel = threading.Event()

    def _make_twin(self, weights: list[np.ndarray]) -> keras.Model | None:
        try:
            if self.device is not None:
                with tf.device(self.device):
                    twin = keras.models.clone_model(self.model)
            else:
                twin = keras.models.clone_model(self.model)
            if [w.shape for w in twin.get_weights()] != [w.shape for w in weights]:
                return None
            config = self.model.get_compile_config() if getattr(self.model, "compiled", False) else None
            if config is not None:
                twin.compile_from_config(config)  # loaded best models come back compiled
            return twin
        except Exception:  # noqa: BLE001 - no twin: the checkpoint is written on the training thread
            return None

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._running

    def submit(self, snapshot: _Snapshot, target: Path, done: Callable[[Path], None],
               save: Callable[[keras.Model, Path], Path] | None = None, wait_for: Sequence[Future] = ()) -> None:
        """Write `snapshot` to `target` through the twin (`save(twin, target)`, else a whole `.keras`), after
        the futures in `wait_for` are done; `done(path)` then."""
        # One write in flight at most: the previous improvement is on disk before this one is queued
        # (a kill loses at most the newest; waiting costs only what a write longer than an epoch costs).
        self.wait(raise_error=False)  # a failed write (a full disk) is raised at the end, not mid-fit
        if self.no_twin:
            self.unwritten = snapshot
            return
        with self._lock:
            self._queued = (snapshot, target, done, save or save_model_atomic, tuple(wait_for))
            if not self._running:
                self._running = True
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kerasguide-checkpoint")
                self._future = self._pool.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                job, self._queued = self._queued, None
                if job is None:
                    self._running = False
                    return
            snapshot, target, done, save, wait_for = job
            if not self._wait_all(wait_for):  # others' writes of that epoch first (a run's backup: its records)
                continue  # cancelled (the fit was interrupted): not written, the previous one stays
            if self.twin is None and not self.no_twin:
                self.twin = self._make_twin(snapshot.weights)
                self.no_twin = self.twin is None
            if self.no_twin:
                self.unwritten = snapshot
                continue
            try:
                self.twin.set_weights(snapshot.weights)
                optimizer = getattr(self.twin, "optimizer", None)
                if snapshot.optimizer is not None and optimizer is not None and \
                        len(optimizer.variables) == len(snapshot.optimizer):
                    for variable, value in zip(optimizer.variables, snapshot.optimizer, strict=True):
                        variable.assign(value)
                done(save(self.twin, target))
            except BaseException as error:  # noqa: BLE001 - raised on the training thread by `wait`
                if self._error is None:
                    logger.warning("could not write %s: %s", target.name, error)
                self._error = self._error or error

    def _wait_all(self, futures: Sequence[Future]) -> bool:
        for future in futures:
            while not future.done():
                if self._cancel.wait(0.05):
                    return False
        return True

    def cancel(self) -> None:
        """Drop a queued job still waiting for others' writes (an interrupted fit: they will never run)."""
        self._cancel.set()

    def wait(self, raise_error: bool = True) -> None:
        """Block until every submitted snapshot is written; re-raise a write's error (else keep it)."""
        while True:
            with self._lock:
                future, running = self._future, self._running
            if not running:
                break
            future.result()
        if raise_error and self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self.twin = None


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
        prior_best: run.json's `best` of epochs no longer in `history` (a
            resumed run whose best epoch came after its last backup: its
            checkpoint is still the best on disk). Defaults to `None`.
        seconds_before: Training seconds of earlier sessions (a resumed run).
            Defaults to `0.0`.
    """

    def __init__(self, run_dir: RunDir | str | os.PathLike[str], monitor: str = "val_accuracy",
                 history: list[dict[str, float]] | None = None,
                 update_run: Callable[..., Any] | None = None,
                 prior_best: dict[str, Any] | None = None, seconds_before: float = 0.0):
        super().__init__()
        self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
        self.monitor = monitor
        self.history = history if history is not None else []
        self.update_run = update_run or self.run_dir.update_run
        self.prior_best = prior_best if prior_best and prior_best.get("metric") == monitor else None
        self.seconds_before = seconds_before

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
        prior = self.prior_best
        if prior is not None and (not best or _better(mode, float(prior["value"]), best["value"])):
            best = prior
        self.update_run(epochs_done=epoch + 1, best=best,
                        train_seconds=round(self.seconds_before + now - self._start, 3))


class RunBackup(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore` (weights, optimizer state, epoch), written off the training thread and seldom.

    Keras' callback saves a `.weights.h5` on the training thread after every epoch: on a small model, a
    good part of a short epoch. This one copies the weights and the optimizer's state (a millisecond) and
    a writer thread saves them through a twin of the model (as `BestCheckpoint` does), in Keras' own
    files (`latest.weights.h5`, `training_metadata.json`, the previous pair kept as `.bkp`), so Keras'
    loading restores them. It saves at an epoch's end when the time since the last save is at least
    `cost_factor` times what a save takes, and waits on that thread for the writes of that epoch in
    `after` (the monitors' records, the best checkpoint): a backup never says an epoch was done whose
    records are not on disk. A model without twin is saved by Keras, on the training thread, after them.
    `kerasguide run --resume` restores it (`restore`).

    Args:
        backup_dir: The folder of the backup (a run's `backup/`); deleted when a fit completes.
        cost_factor: The least time between saves, as a multiple of a recent save's time.
            Defaults to `20.0`.
        after: Objects with `pending()` (futures of their writes in flight) and `wait()`. Defaults to `()`.
        min_seconds: Training time before the first backup (a shorter run killed starts again: the
            twin and the first save cost more than it loses). Defaults to `0.0`.
    """

    def __init__(self, backup_dir: str | os.PathLike[str], cost_factor: float = 20.0, after: Sequence[Any] = (),
                 min_seconds: float = 0.0):
        # double_checkpoint: a kill in the middle of a save leaves the previous backup to restore from.
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=True, double_checkpoint=True)
        self.cost_factor = cost_factor
        self.min_seconds = min_seconds
        self._began = time.perf_counter()
        self.after = list(after)
        self._saved_at = -math.inf
        self._costs: list[float] = []  # the last saves' times but the first (a cold start); the least counts
        self._saves = 0
        self._writer: _TwinWriter | None = None

    def restore(self, model: keras.Model) -> int | None:
        """Load the backup into `model` (weights and optimizer state); the epochs it had done, None if none."""
        folder = Path(self.backup_dir)
        # Keras' file names (tests/test_resume.py fails if they change): the weights and, beside, the epoch.
        if not any((folder / name).exists() for name in ("latest.weights.h5", "latest.weights.h5.bkp")):
            return None
        self.set_model(model)
        super().on_train_begin()  # Keras' own loading, with its fallback to the previous backup
        metadata = folder / "training_metadata.json"
        try:
            return int(json.loads(metadata.read_text(encoding="utf-8"))["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._began = time.perf_counter()
        # A twin of its own on the CPU (the best checkpoint's writer is never held up by the monitors).
        self._writer = (None if os.environ.get("KERASGUIDE_SYNC_CHECKPOINTS")
                        else _TwinWriter(self.model, device="/CPU:0"))

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if now - self._began < self.min_seconds:
            return
        if self._costs and now - self._saved_at < self.cost_factor * min(self._costs):
            return
        writer = self._writer
        if writer is not None and not writer.no_twin:
            if writer.busy:
                return  # the last backup is still being written: a later epoch's turn
            snapshot = _Snapshot([np.array(w) for w in self.model.get_weights()], epoch + 1, 0.0,
                                 _optimizer_state(self.model))
            self._saved_at = now
            writer.submit(snapshot, Path(self.backup_dir), lambda _path: None,
                          save=lambda twin, folder, done=epoch + 1: self._write(twin, folder, done),
                          wait_for=[f for other in self.after for f in other.pending()])
            return
        for other in self.after:
            other.wait()
        super().on_epoch_end(epoch, logs)  # Keras' own save, here
        self._saved(time.perf_counter() - now)

    def _write(self, twin: keras.Model, folder: Path, epochs_done: int) -> Path:
        """On the writer thread: Keras' backup files, from the twin (the previous pair kept as `.bkp`)."""
        start = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        weights, metadata = folder / "latest.weights.h5", folder / "training_metadata.json"
        for path in (weights, metadata):
            if path.exists():
                shutil.copyfile(path, f"{path}.bkp")
        with atomic_path(weights) as tmp:
            twin.save_weights(tmp)
        atomic_write_text(metadata, json.dumps({"epoch": epochs_done, "batch": 0}))
        self._saved(time.perf_counter() - start)
        return weights

    def _saved(self, seconds: float) -> None:
        self._saved_at = time.perf_counter()
        self._saves += 1
        if self._saves > 1:
            self._costs = [*self._costs[-2:], seconds]

    def on_train_end(self, logs=None):
        writer, self._writer = self._writer, None
        if writer is not None:
            for other in self.after:  # what the last backup waits for runs now (the fit is over)
                other.wait()
            writer.close()
        super().on_train_end(logs)  # Keras deletes the backup: the fit completed

    def stop(self) -> None:
        """A fit that ended without `on_train_end` (interrupted): the queued backup is written once what it
        waits for is (run here now), and stays for `run --resume`. Interrupted again: it is dropped."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            for other in self.after:
                other.wait()
        except BaseException:
            writer.cancel()
            raise
        finally:
            writer.close()


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
