"""`LossMonitor`: every batch's loss and its wiggle (recipe E16), the train/validation gap (E17)."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasguide.monitors.base import MonitorCallback
from kerasguide.monitors.epoch_end import epoch_end
from kerasguide.monitors.hooks import (
    install_hook,
    is_multi_replica,
    read_and_reset,
    read_then_zero,
    remove_hook,
    retrace,
)
from kerasguide.monitors.signals import loss_noise

__all__ = ["LossMonitor"]

_MAX_BUFFER = 1 << 20  # at most this many steps an epoch read at its end (8 MB); more: after each execution


class LossMonitor(MonitorCallback):
    """The loss of every batch and its wiggle (recipe E16), the train/validation gap (E17).

    Each step's loss is read inside the compiled step from the model's loss
    tracker (so `steps_per_execution` keeps its speed); models whose
    `train_step` does not use it get one value per execution (the mean of
    its steps, recovered from Keras' running mean). Adds to the epoch logs
    `loss_noise` (see `loss_noise`: the relative step-to-step jitter) and,
    with accuracies, `accuracy_gap` (train minus validation). Record
    (`loss.jsonl`): `{"epoch", "losses": [...], "mean", "noise", "loss",
    "val_loss", "accuracy", "val_accuracy", "accuracy_gap"}`. TensorBoard:
    `batch_loss` against the global step, `loss_noise` and `accuracy_gap`
    per epoch.

    Args:
        log_dir: TensorBoard folder. Defaults to `None`.
        record_dir: Records folder. Defaults to `None`.
        max_losses: Keep at most this many batch losses per epoch in the
            record (evenly spaced; all are used for `noise`). Defaults to `1000`.

    Example:

    ```python
    monitor = LossMonitor()
    model.fit(x, y, epochs=2, callbacks=[monitor])
    len(monitor.records[0]["losses"])   # steps in epoch 1
    ```
    """

    record_name = "loss"

    def __init__(self, log_dir=None, record_dir=None, max_losses: int = 1000):
        super().__init__(log_dir, record_dir)
        if not isinstance(max_losses, int) or max_losses <= 0:
            raise ValueError(f"Argument `max_losses` must be an integer > 0. Received: max_losses={max_losses}")
        self.max_losses = max_losses
        self._hook = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._unhook()
        self._losses: list[float] = []
        self._running = (0, 0.0)
        self._global_step = 0
        tracker = getattr(self.model, "_loss_tracker", None)
        own_step = type(self.model).train_step is not keras.Model.train_step
        weights = self.model.trainable_weights
        self._in_step = (tracker is not None and not own_step and bool(weights)
                         and not is_multi_replica(self.model) and keras.backend.backend() == "tensorflow")
        self._key = f"loss/{id(self)}"
        if self._in_step:
            spe = int(getattr(self.model, "steps_per_execution", 1) or 1)
            steps = (self.params or {}).get("steps")
            # With the epoch's steps known, the buffer holds a whole epoch: read once, in the epoch's one
            # compiled call of every monitor (`epoch_end`); else read after every execution.
            self._at_epoch_end = isinstance(steps, int) and 0 < steps <= _MAX_BUFFER
            capacity = (steps + spe if self._at_epoch_end else spe) + 1
            self._capacity = capacity
            # The tracker's running (total, count) after each step; the losses are their differences.
            self._buffer = tf.Variable(tf.zeros((capacity, 2), tf.float32), trainable=False)
            self._pos = tf.Variable(0, dtype=tf.int32, trainable=False)
            if self._at_epoch_end:
                epoch_end(self.model).add(self._key, read_then_zero(self._pos, self._buffer))
            else:  # read after every execution: its own compiled read (traced now, about 5 ms)
                self._take = read_and_reset(self._pos, self._buffer)
            self._last = np.zeros(2)
            buffer, pos = self._buffer, self._pos

            def fn(value):
                pair = tf.stack([tf.cast(tracker.total, tf.float32), tf.cast(tracker.count, tf.float32)])
                buffer.scatter_nd_update(tf.reshape(pos % capacity, [1, 1]), pair[None])
                pos.assign_add(1)

            # The tracker is updated before the optimizer step: any variable's hook sees this step's loss.
            self._hook = (weights[-1], install_hook(weights[-1], fn))
            retrace(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._losses = []
        self._running = (0, 0.0)
        if self._in_step:
            self._last = np.zeros(2)  # fit() has just reset the tracker (`_pos` is 0: read and reset below)

    def _read(self, pos, buffer) -> list[float]:
        n = min(int(pos), self._capacity)
        if not n:
            return []
        pairs = np.vstack([self._last[None], np.asarray(buffer)[:n].astype(np.float64)])
        self._last = pairs[-1]
        return (np.diff(pairs[:, 0]) / np.maximum(np.diff(pairs[:, 1]), 1e-12)).tolist()

    def on_train_batch_end(self, batch, logs=None):
        if self._in_step:
            if self._at_epoch_end:
                return
            values = self._read(*self._take())
        else:
            loss = (logs or {}).get("loss")
            if loss is None:
                return
            loss = float(np.asarray(loss))
            steps_before, mean_before = self._running
            steps = batch + 1
            # Keras logs the running mean of the epoch: recover this execution's mean.
            values = [(loss * steps - mean_before * steps_before) / max(steps - steps_before, 1)]
            self._running = (steps, loss)
        self._losses.extend(values)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self._in_step and self._at_epoch_end:
            self._losses.extend(self._read(*epoch_end(self.model).take(self._key, epoch)))
        losses = np.asarray(self._losses, dtype=np.float64)
        noise = loss_noise(losses)
        record: dict[str, Any] = {"epoch": epoch + 1}
        if len(losses) > self.max_losses:
            keep = np.linspace(0, len(losses) - 1, self.max_losses).round().astype(int)
            record["losses"] = losses[keep].tolist()
        else:
            record["losses"] = losses.tolist()
        record["mean"] = float(np.mean(losses)) if len(losses) else math.nan
        record["noise"] = noise
        logs["loss_noise"] = noise
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            if key in logs:
                record[key] = float(np.asarray(logs[key]))
        if "accuracy" in logs and "val_accuracy" in logs:
            gap = float(np.asarray(logs["accuracy"])) - float(np.asarray(logs["val_accuracy"]))
            logs["accuracy_gap"] = gap
            record["accuracy_gap"] = gap
        self._submit(self._write_epoch, epoch, record, list(self._losses), self._global_step)
        self._global_step += len(self._losses)

    def _write_epoch(self, epoch: int, record: dict[str, Any], losses: list[float], first_step: int) -> None:
        writer = self.writer
        if writer is not None:
            for i, value in enumerate(losses):
                if math.isfinite(value):
                    writer.scalar("batch_loss", value, first_step + 1 + i, "training loss of each batch (E16)")
            if math.isfinite(record["noise"]):
                writer.scalar("loss_noise", record["noise"], epoch + 1, "std of the step-to-step change of log loss (E16)")
            if "accuracy_gap" in record:
                writer.scalar("accuracy_gap", record["accuracy_gap"], epoch + 1, "train minus validation accuracy (E17)")
        self._add_record(record)

    def _unhook(self) -> None:
        if self.model is not None and getattr(self, "_key", None):
            epoch_end(self.model).remove(self._key)
        if self._hook is not None:
            remove_hook(*self._hook)
            self._hook = None
            if self.model is not None:
                retrace(self.model)

    def on_train_end(self, logs=None):
        self._unhook()
        super().on_train_end(logs)
