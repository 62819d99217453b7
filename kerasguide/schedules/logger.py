"""`ScheduleLogger`: the learning rate (and a cycled momentum) of every step, in TensorBoard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasguide.schedules.momentum import CycleMomentum
from kerasguide.tb_events import release_writer, shared_writer

__all__ = ["ScheduleLogger"]


class ScheduleLogger(keras.callbacks.Callback):
    """Write the learning rate (and a cycled momentum) of every step to TensorBoard.

    Keras' TensorBoard callback logs the rate once per epoch; a schedule
    moves at every step, and with `steps_per_execution > 1` callbacks run
    once per execution. The rate is a pure function of the step (or, for a
    constant or plateau-reduced rate, constant within the execution), so
    each execution's steps are written at their own step numbers.

    Args:
        log_dir: The event files' folder.
        momentum: A `CycleMomentum` whose values are logged too. Defaults to `None`.
    """

    def __init__(self, log_dir: str, momentum: CycleMomentum | None = None):
        super().__init__()
        self.log_dir = str(log_dir)
        self.momentum = momentum

    def on_train_begin(self, logs=None):
        # TensorBoard's event writer in plain Python: eager `tf.summary` ops are slow (benchmarks/README.md).
        self._writer = shared_writer(self.log_dir)
        self._done = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        # The rate (and momentum) of every step of this fit, computed once: the schedules are
        # pure functions of the step, and a vector of them costs one eager evaluation.
        params = self.params or {}
        total = int(params.get("epochs") or 0) * int(params.get("steps") or 0)
        self._first = self._done
        steps = np.arange(self._done, self._done + total, dtype=np.int64)
        self._tables = {name: (self._values(fn, steps) if total else np.zeros(0))
                        for name, fn in self._schedules().items()}

    def _schedules(self) -> dict[str, Callable[[Any], Any]]:
        inner = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        schedules = {}
        schedule = getattr(inner, "_learning_rate", None)
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            schedules["lr"] = schedule
        if self.momentum is not None and self.momentum.active:
            schedules["momentum"] = self.momentum.schedule
        return schedules

    def _of(self, name: str, fn: Callable[[Any], Any], steps: np.ndarray) -> np.ndarray:
        table = self._tables.get(name)
        offset = int(steps[0]) - self._first
        if table is not None and offset >= 0 and offset + len(steps) <= len(table):
            return table[offset: offset + len(steps)]
        return self._values(fn, steps)

    def _values(self, fn: Callable[[Any], Any], steps: np.ndarray) -> np.ndarray:
        try:  # our schedules and most of Keras' take a vector of steps
            values = np.asarray(ops.convert_to_numpy(fn(steps)), dtype=np.float64).reshape(-1)
            if values.shape == steps.shape:
                return values
        except Exception:  # noqa: BLE001 - e.g. CosineDecay's ops.cond needs a scalar
            pass
        return np.array([float(ops.convert_to_numpy(fn(int(s)))) for s in steps])

    def on_train_batch_end(self, batch, logs=None):
        optimizer = self.model.optimizer
        now = int(ops.convert_to_numpy(optimizer.iterations))
        if now <= self._done:
            return
        steps = np.arange(self._done, now, dtype=np.int64)
        # The rate behind `optimizer.learning_rate`: a schedule of the step, or one value.
        schedules = self._schedules()
        if "lr" in schedules:
            lrs = self._of("lr", schedules["lr"], steps)
        else:
            lrs = np.full(len(steps), float(ops.convert_to_numpy(optimizer.learning_rate)))
        moms = self._of("momentum", schedules["momentum"], steps) if "momentum" in schedules else None
        for i, step in enumerate(steps.tolist()):
            self._writer.scalar("schedule/learning_rate", lrs[i], step, "the learning rate of each step (G22-G23)")
            if moms is not None:
                self._writer.scalar("schedule/momentum", moms[i], step, "the cycled momentum of each step (G23)")
        self._done = now

    def on_train_end(self, logs=None):
        self._writer.flush()
        release_writer(self.log_dir, force=True)
