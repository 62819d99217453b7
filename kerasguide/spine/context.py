"""What the stages of a run share: the `RunContext`, and the `RunResult` that `run` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from kerasguide.config import RunConfig
from kerasguide.data import Dataset
from kerasguide.progress import Progress
from kerasguide.rundir import RunDir

__all__ = ["RunContext", "RunResult"]


@dataclass
class RunContext:
    """What every stage of a run can read and add to."""

    config: RunConfig
    run_dir: RunDir
    progress: Progress
    dataset: Dataset | None = None
    model: keras.Model | None = None
    strategy: Any = None
    steps_per_epoch: int = 0
    augmenter: Any = None  # training.Augmenter: [data.augment], training split only
    learning_rate: Any = None  # float, or a LearningRateSchedule
    callbacks: list[keras.callbacks.Callback] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "running"
    stop_reason: str | None = None
    verbose: int = 1
    best_checkpoint: Any = None
    own_compile: bool = False  # the model came compiled (its optimizer, loss and metrics are kept)
    resume: Any = None  # spine.resume.Resume: `kerasguide run --resume` (what the interrupted run had done)
    backup: Any = None  # callbacks.RunBackup: Keras' BackupAndRestore of this run (`backup/`)

    def update_run(self, **fields: Any) -> None:
        """Merge `fields` into run.json (and the in-memory copy of the record)."""
        self.record.update(fields)
        self.run_dir.update_run(**fields)


@dataclass
class RunResult:
    """The outcome of `run`: its directory, status and metrics."""

    run_dir: RunDir
    status: str
    final_metrics: dict[str, float]
    best: dict[str, Any]
    error: str | None = None

    @property
    def path(self) -> Path:
        return self.run_dir.path
