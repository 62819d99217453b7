"""`DivergenceGuard`: stop training cleanly on a non-finite or runaway loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from kerasguide._logging import get_logger
from kerasguide.io import atomic_write_json
from kerasguide.monitors.base import MonitorCallback

__all__ = ["DivergenceGuard"]

logger = get_logger()


class DivergenceGuard(MonitorCallback):
    """Stop training cleanly when the loss diverges: non-finite, or smoothed above `factor` x its start.

    Checked after every execution (every batch with
    `steps_per_execution=1`) on that execution's mean loss, smoothed by a
    bias-corrected exponential moving average; the start is the first
    finite value. On divergence it sets `model.stop_training`, keeps the
    evidence in `self.reason` and `self.evidence` (and `divergence.json`),
    and calls `on_diverge(reason)`.

    Args:
        factor: Smoothed loss above `factor` x the starting loss diverges.
            Defaults to `4.0`.
        smoothing: EMA factor of the smoothed loss. Defaults to `0.9`.
        on_diverge: Called with the reason when it stops. Defaults to `None`.
        record_dir: Folder for `divergence.json`. Defaults to `None`.

    Example:

    ```python
    guard = DivergenceGuard()
    model.fit(x, y, epochs=10, callbacks=[guard])
    guard.diverged, guard.reason
    ```
    """

    record_name = "divergence"

    def __init__(self, factor: float = 4.0, smoothing: float = 0.9, on_diverge: Callable[[str], None] | None = None,
                 record_dir=None):
        super().__init__(None, record_dir)
        if not factor > 1.0:
            raise ValueError(f"Argument `factor` must be > 1. Received: factor={factor}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"Argument `smoothing` must be in [0, 1). Received: smoothing={smoothing}")
        self.factor = float(factor)
        self.smoothing = float(smoothing)
        self.on_diverge = on_diverge

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.diverged = False
        self.reason: str | None = None
        self.evidence: dict[str, float] = {}
        self._start = math.nan
        self._avg = 0.0
        self._n = 0
        self._step = 0
        self._epoch = 0
        self._running = (0, 0.0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._running = (0, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.diverged:
            return
        loss = float(np.asarray(loss))
        steps_before, mean_before = self._running
        steps = batch + 1
        value = (loss * steps - mean_before * steps_before) / max(steps - steps_before, 1)
        self._running = (steps, loss)
        self._step += steps - steps_before
        self.check(value)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not self.diverged and not math.isfinite(float(np.asarray(loss))):
            self._stop(f"the training loss became {float(np.asarray(loss))} in epoch {epoch + 1}", float(np.asarray(loss)))

    def check(self, value: float) -> bool:
        """Feed one loss value; returns True (and stops training) when it diverges."""
        if self.diverged:
            return True
        if not math.isfinite(value):
            self._stop(f"the training loss became {value} at step {self._step} (epoch {self._epoch + 1})", value)
            return True
        self._n += 1
        self._avg = self.smoothing * self._avg + (1.0 - self.smoothing) * value
        smoothed = self._avg / (1.0 - self.smoothing ** self._n) if self.smoothing > 0 else value
        if not math.isfinite(self._start):
            self._start = value
            return False
        if self._start > 0 and smoothed > self.factor * self._start:
            self._stop(f"the smoothed training loss {smoothed:.4g} rose above {self.factor:g}x its start "
                       f"{self._start:.4g} at step {self._step} (epoch {self._epoch + 1})", value, smoothed)
            return True
        return False

    def _stop(self, reason: str, value: float, smoothed: float = math.nan) -> None:
        self.diverged = True
        self.reason = reason
        self.evidence = {"start_loss": self._start, "loss": value, "smoothed_loss": smoothed,
                         "step": float(self._step), "epoch": float(self._epoch + 1), "factor": self.factor}
        if self.model is not None:
            self.model.stop_training = True
        logger.warning("divergence guard: %s; training stopped", reason)
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.record_dir / "divergence.json", {"reason": reason, "evidence": self.evidence})
        if self.on_diverge is not None:
            self.on_diverge(reason)
