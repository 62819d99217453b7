"""`UpdateRatioMonitor`: `||dw|| / ||w||` per tensor and layer, measured inside the compiled step (recipe E18)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasguide.monitors.base import MonitorCallback
from kerasguide.monitors.epoch_end import epoch_end
from kerasguide.monitors.hooks import (
    ConstraintHook,
    install_hook,
    is_multi_replica,
    layer_of_variables,
    read_then_zero,
    remove_hook,
    retrace,
    var_name,
)

__all__ = ["UpdateRatioMonitor"]


class UpdateRatioMonitor(MonitorCallback):
    """Update:weight ratio `||w_t - w_{t-1}|| / ||w_{t-1}||` per trainable tensor (recipe E18).

    Measured from the actual update (whatever the optimizer and schedule),
    inside the compiled step every `every_steps` steps, or at the first
    step of every execution (`every_steps=0`: the cheapest, one gated
    branch per step), so `steps_per_execution` keeps its speed (see
    `kerasguide.monitors.hooks`). At
    each epoch end: the mean ratio of each tensor over the measured steps,
    and per layer the RMS ratio `sqrt(sum ||dw||^2 / sum ||w||^2)` over the
    layer's tensors and steps. A healthy ratio is about 1e-3; much lower
    means the learning rate is too low, much higher too high. Under a
    multi-replica strategy the ratio is measured across each execution and
    divided by its number of steps (exact for `steps_per_execution=1`).

    Adds `update_ratio` (median over layers) to the epoch logs. Record
    (`update_ratio.jsonl`): `{"epoch", "steps", "median", "layers": {layer:
    ratio}, "tensors": {path: ratio}}`. TensorBoard scalars
    `update_ratio/<layer>` and `update_ratio_tensor/<path>` (log10).

    Args:
        every_steps: Measure every N training steps; 0: the first step of
            every execution. Defaults to `1`.
        log_dir: TensorBoard folder. Defaults to `None`.
        record_dir: Records folder. Defaults to `None`.

    Example:

    ```python
    monitor = UpdateRatioMonitor()
    model.fit(x, y, epochs=3, callbacks=[monitor])
    monitor.records[-1]["layers"]          # {"dense": 0.0012, ...}
    ```
    """

    record_name = "update_ratio"
    _force_fallback = False  # tests: compare weights across executions even when in-step works

    def __init__(self, every_steps: int = 1, log_dir=None, record_dir=None):
        super().__init__(log_dir, record_dir)
        if not isinstance(every_steps, int) or every_steps < 0:
            raise ValueError(f"Argument `every_steps` must be an integer >= 0. Received: every_steps={every_steps}")
        self.every_steps = every_steps
        self._hooks: list[tuple[Any, ConstraintHook]] = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._remove_hooks()
        self._vars = list(self.model.trainable_weights)
        owners = layer_of_variables(self.model)
        self._names = [var_name(v) for v in self._vars]
        self._layers = [owners.get(id(v), var_name(v).split("/")[0]) for v in self._vars]
        self._layer_names = list(dict.fromkeys(self._layers))  # in order of their first tensor
        self._layer_index = np.array([self._layer_names.index(layer) for layer in self._layers], dtype=np.int64)
        self._key = f"update_ratio/{id(self)}"
        self._in_step = (not self._force_fallback and bool(self._vars) and not is_multi_replica(self.model)
                         and keras.backend.backend() == "tensorflow")
        self._executions = 0
        n = len(self._vars)
        if self._in_step:
            self._prev = [tf.Variable(tf.cast(v.value, tf.float32), trainable=False) for v in self._vars]
            self._acc = tf.Variable(tf.zeros(4 * n + 1, tf.float32), trainable=False)
            self._armed = tf.Variable(0.0, trainable=False)
            # Read and zeroed in the epoch's one compiled call of every monitor (`epoch_end`).
            epoch_end(self.model).add(self._key, read_then_zero(self._acc))
            last = self._vars[-1]
            self._hooks.append((last, install_hook(last, self._step_fn())))
            retrace(self.model)
        else:
            self._acc_np = np.zeros(4 * n + 1)

    def _step_fn(self) -> Callable[[Any], None]:
        # Runs in the last variable's constraint: every variable has its new
        # (constrained) value by then, the last one is handed in.
        every = self.every_steps
        optimizer = self.model.optimizer
        variables = self._vars
        prevs, acc, armed = self._prev, self._acc, self._armed

        def current(value):
            return [tf.cast(v.value, tf.float32) for v in variables[:-1]] + [tf.cast(value, tf.float32)]

        def measure(values):
            # Few passes over each tensor (on a small model every elementwise op over a kernel is a
            # visible part of the step): one read of the previous value, the difference, and the
            # fused sum of squares `l2_loss` (sum(t**2) / 2) of each (XLA has it; not EuclideanNorm).
            olds = [tf.identity(p) for p in prevs]
            d2 = 2.0 * tf.stack([tf.nn.l2_loss(v - p) for v, p in zip(values, olds, strict=True)])
            p2 = 2.0 * tf.stack([tf.nn.l2_loss(p) for p in olds])
            valid = tf.cast(p2 > 0.0, tf.float32)  # a zero tensor (a fresh bias) has no ratio yet
            ratio = tf.sqrt(d2 / tf.maximum(p2, 1e-30)) * valid
            acc.assign_add(tf.concat([ratio, d2, p2, valid, [1.0]], 0))

        def save(values):
            for v, p in zip(values, prevs, strict=True):
                p.assign(v)

        def fn(value):
            if every == 1:
                values = current(value)
                measure(values)
                save(values)
                return
            if every == 0:
                # The first step of each execution; the weights before it were saved from Python.
                def first():
                    measure(current(value))
                    armed.assign(0.0)
                    return tf.constant(0)

                tf.cond(armed > 0.0, first, lambda: tf.constant(0))
                return
            step = tf.cast(optimizer.iterations, tf.int64)  # steps done before this one

            def due():
                measure(current(value))
                return tf.constant(0)

            def before_due():
                save(current(value))
                return tf.constant(0)

            tf.cond(step % every == 0, due, lambda: tf.constant(0))
            tf.cond((step + 1) % every == 0, before_due, lambda: tf.constant(0))

        return fn

    def on_train_batch_begin(self, batch, logs=None):
        super().on_train_batch_begin(batch, logs)
        if self._in_step:
            if self.every_steps == 0:
                for variable, prev in zip(self._vars, self._prev, strict=True):
                    prev.assign(variable.value if variable.dtype == "float32" else tf.cast(variable.value, tf.float32))
                self._armed.assign(1.0)
            return
        self._executions += 1
        self._snapshot = None
        if (self._executions - 1) % max(self.every_steps, 1) == 0:
            self._snapshot = [np.asarray(v.value, dtype=np.float64) for v in self._vars]
            self._snapshot_step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if self._in_step or getattr(self, "_snapshot", None) is None:
            return
        # Across one execution: the step's average movement (exact with one step per execution).
        steps = max(1, int(self.model.optimizer.iterations.numpy()) - self._snapshot_step)
        n = len(self._vars)
        for i, variable in enumerate(self._vars):
            old = self._snapshot[i]
            d2 = float(np.sum((np.asarray(variable.value, dtype=np.float64) - old) ** 2)) / steps ** 2
            p2 = float(np.sum(old ** 2))
            self._acc_np[i] += math.sqrt(d2 / p2) if p2 > 0 else 0.0
            self._acc_np[n + i] += d2
            self._acc_np[2 * n + i] += p2
            self._acc_np[3 * n + i] += float(p2 > 0)
        self._acc_np[-1] += 1
        self._snapshot = None

    def on_epoch_end(self, epoch, logs=None):
        n = len(self._vars)
        if self._in_step:
            values = np.asarray(epoch_end(self.model).take(self._key, epoch), dtype=np.float64)
        else:
            values = self._acc_np
            self._acc_np = np.zeros(4 * n + 1)
        steps = int(values[-1])
        if steps == 0:
            return
        # Here only what the epoch's logs need (the median over layers); the record on the background thread.
        d2, p2 = (np.bincount(self._layer_index, weights=values[start:start + n],
                              minlength=len(self._layer_names)).astype(np.float64) for start in (n, 2 * n))
        ratios = np.sqrt(np.divide(d2, p2, out=np.full(len(d2), np.nan), where=p2 > 0))
        finite = ratios[np.isfinite(ratios) & (ratios > 0)]
        median = float(np.median(finite)) if len(finite) else math.nan
        if logs is not None:
            logs["update_ratio"] = median
        self._submit(self._write_epoch, epoch, steps, median, values, ratios)

    def _write_epoch(self, epoch: int, steps: int, median: float, values: np.ndarray, ratios: np.ndarray) -> None:
        n = len(self._vars)
        tensors = {name: float(values[i] / values[3 * n + i]) if values[3 * n + i] else math.nan
                   for i, name in enumerate(self._names)}
        layers = {layer: float(ratio) for layer, ratio in zip(self._layer_names, ratios, strict=True)}
        record = {"epoch": epoch + 1, "steps": steps, "median": median, "layers": layers, "tensors": tensors}
        writer = self.writer
        if writer is not None:
            with writer:
                for prefix, items in (("update_ratio", record["layers"]), ("update_ratio_tensor", record["tensors"])):
                    for name, ratio in items.items():
                        if ratio > 0 and math.isfinite(ratio):
                            writer.scalar(f"{prefix}/{name}", math.log10(ratio), epoch + 1,
                                          "log10 ||dw||/||w|| per step (recipe E18; healthy about -3)")
        self._add_record(record)

    def _remove_hooks(self) -> None:
        if self.model is not None and getattr(self, "_key", None):
            epoch_end(self.model).remove(self._key)
        if not self._hooks:
            return
        for variable, hook in self._hooks:
            remove_hook(variable, hook)
        self._hooks = []
        if self.model is not None:
            retrace(self.model)

    def on_train_end(self, logs=None):
        self._remove_hooks()
        super().on_train_end(logs)
