"""`DiagnosisPruner`: stop a run the diagnosis already condemns, after each epoch (issue 14).

No search tool prunes on a diagnosis: Optuna's and keras-tuner's pruners
compare a trial's score with the other trials'. Here a trial is stopped
for a reason that holds whatever the others do: after each epoch (from
`after` on) the diagnosis (`kerasguide.diagnosis.diagnose`) reads the
epochs so far and the monitors' records in memory, and when it finds one
of `codes` at error severity (`diverged`, `not_learning`, `lr_too_high`)
training stops at once, with the finding kept in `self.pruned`.

It is cheap: the rules are plain Python over a few dozen numbers, and the
records are the monitors' own lists (no file is read).

A run the divergence guard stopped is not pruned again: the guard has
recorded it (status `diverged`, divergence.json).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import numpy as np

from kerasguide._logging import get_logger
from kerasguide.diagnosis import CODES, Signals, Thresholds, diagnose

__all__ = ["DiagnosisPruner", "PRUNE_CODES"]

logger = get_logger()

PRUNE_CODES = ("diverged", "not_learning", "lr_too_high")

# A monitor's `record_name` -> the `Signals` field its records fill.
_RECORDS = {"update_ratio": "update_ratio", "loss": "loss", "probe": "probe", "images": "images"}


class DiagnosisPruner(keras.callbacks.Callback):
    """Stop training when the diagnosis finds one of `codes` at error severity.

    Args:
        codes: The finding codes that stop a run (each one of the
            diagnosis' `CODES`). Defaults to `("diverged", "not_learning",
            "lr_too_high")`.
        after: The first epoch (1-based) read; earlier epochs never prune,
            so a slow first epoch is not mistaken for a dead run. Defaults
            to `3`.
        monitors: The callbacks whose records the diagnosis reads (the
            `kerasguide.monitors` callbacks; others are ignored). Defaults
            to `()`.
        num_classes: Classes of the data (the chance accuracy). Defaults to
            `None`.
        target_variance: The training targets' variance (regression).
            Defaults to `None`.
        on_prune: Called with `self.pruned` when it stops. Defaults to
            `None`.
        thresholds: The diagnosis' thresholds. Defaults to `None` (its own).

    Example:

    ```python
    pruner = DiagnosisPruner(num_classes=10)
    model.fit(x, y, epochs=10, callbacks=[pruner])
    pruner.pruned  # None, or {"code": "not_learning", "epoch": 3, "advice": ...}
    ```
    """

    def __init__(
        self,
        codes: Iterable[str] = PRUNE_CODES,
        after: int = 3,
        monitors: Sequence[keras.callbacks.Callback] = (),
        num_classes: int | None = None,
        target_variance: float | None = None,
        on_prune: Callable[[dict[str, Any]], None] | None = None,
        thresholds: Thresholds | None = None,
    ):
        super().__init__()
        codes = tuple(codes)
        unknown = [c for c in codes if c not in CODES]
        if unknown:
            raise ValueError(f"Argument `codes` must hold diagnosis codes ({', '.join(sorted(CODES))}). "
                             f"Received: codes={list(codes)}")
        if not isinstance(after, int) or after < 1:
            raise ValueError(f"Argument `after` must be an integer >= 1. Received: after={after}")
        self.codes = codes
        self.after = after
        self.monitors = list(monitors)
        self.num_classes = num_classes
        self.target_variance = target_variance
        self.on_prune = on_prune
        self.thresholds = thresholds
        self.pruned: dict[str, Any] | None = None

    def on_train_begin(self, logs=None):
        self.pruned = None
        self.rows: list[dict[str, float]] = []

    def signals(self) -> Signals:
        """The diagnosis' signals now: the epochs so far and the monitors' records in memory."""
        fields: dict[str, Any] = {}
        for monitor in self.monitors:
            name = _RECORDS.get(getattr(monitor, "record_name", None))
            if name is not None:
                fields[name] = list(getattr(monitor, "records", None) or [])
        return Signals(epochs=list(self.rows), status="running", num_classes=self.num_classes,
                       target_variance=self.target_variance, **fields)

    def _guard_stopped(self) -> bool:
        return any(getattr(m, "diverged", False) for m in self.monitors)

    def on_epoch_end(self, epoch, logs=None):
        row: dict[str, float] = {"epoch": epoch + 1}
        for key, value in (logs or {}).items():
            try:
                row[key] = float(np.asarray(value))
            except (TypeError, ValueError):
                continue
        self.rows.append(row)
        if not self.codes or self.pruned is not None or epoch + 1 < self.after:
            return
        if getattr(self.model, "stop_training", False) or self._guard_stopped():
            return  # the divergence guard (or another callback) stopped it and says why
        hits = [f for f in diagnose(self.signals(), self.thresholds)
                if f.severity == "error" and f.code in self.codes]
        if not hits:
            return
        # The primary cause first (a diverged loss caused by a too-high rate is pruned as lr_too_high).
        finding = next((f for f in hits if f.caused_by is None), hits[0])
        self.pruned = {
            "code": finding.code,
            "epoch": epoch + 1,
            "advice": finding.advice,
            "evidence": {k: v for k, v in finding.evidence.items() if isinstance(v, float) and math.isfinite(v)},
            "codes": [f.code for f in hits],
        }
        if self.model is not None:
            self.model.stop_training = True
        logger.warning("pruned after epoch %d: %s: %s", epoch + 1, finding.code, finding.advice)
        if self.on_prune is not None:
            self.on_prune(self.pruned)
