"""The stages of a run, in order: one small module each, all taking the `RunContext`.

`STAGES` run one after the other until one raises (a `StopRun`, an
interrupt, an error); `FINAL_STAGES` run after the run's outcome is
recorded, whatever it was, each best effort. A new stage is a module here
and a line in one of the two lists.
"""

from __future__ import annotations

from collections.abc import Callable

from kerasguide.spine.context import RunContext
from kerasguide.spine.stages.averaging import stage_averaging
from kerasguide.spine.stages.checks import stage_checks
from kerasguide.spine.stages.compile import stage_compile
from kerasguide.spine.stages.data import stage_data
from kerasguide.spine.stages.diagnosis import stage_diagnosis
from kerasguide.spine.stages.evaluate import stage_evaluate
from kerasguide.spine.stages.fit import stage_fit
from kerasguide.spine.stages.init_from import stage_init_from
from kerasguide.spine.stages.lr_find import stage_lr_find
from kerasguide.spine.stages.mlflow import stage_mlflow
from kerasguide.spine.stages.model import stage_model
from kerasguide.spine.stages.monitors import stage_monitors
from kerasguide.spine.stages.report import stage_report
from kerasguide.spine.stages.resume import stage_resume
from kerasguide.spine.stages.schedule import stage_schedule
from kerasguide.spine.stages.tensorboard import stage_tensorboard

__all__ = ["STAGES", "FINAL_STAGES", "Stage"]

Stage = Callable[[RunContext], None]

STAGES: list[tuple[str, Stage]] = [
    ("data", stage_data),
    ("model", stage_model),
    ("checks", stage_checks),
    ("lr_find", stage_lr_find),
    ("schedule", stage_schedule),
    ("compile", stage_compile),
    ("init_from", stage_init_from),
    ("tensorboard", stage_tensorboard),
    ("averaging", stage_averaging),
    ("monitors", stage_monitors),
    ("resume", stage_resume),
    ("fit", stage_fit),
    ("evaluate", stage_evaluate),
]
FINAL_STAGES: list[tuple[str, Stage]] = [
    ("diagnosis", stage_diagnosis),
    ("report", stage_report),
    ("mlflow", stage_mlflow),
]
