"""Older name of the run's spine (`kerasguide.spine`) and of the shared training pieces (`kerasguide.training`).

Kept so that code written against `kerasguide.pipeline` goes on working; new
code imports from `kerasguide.spine`, `kerasguide.training`,
`kerasguide.progress` and `kerasguide.interrupts`.
"""

from kerasguide.interrupts import StopRun, is_interrupt, unwrapped_interrupts
from kerasguide.progress import Progress, StepEvents
from kerasguide.spine import RunContext, RunResult, run, run_header
from kerasguide.training import (
    build_for_fit,
    compile_model,
    initial_learning_rate,
    make_strategy,
    make_tf_dataset,
    prepare,
    split_seed,
    steps_per_execution,
)

__all__ = [
    "run",
    "RunContext",
    "RunResult",
    "Progress",
    "StepEvents",
    "StopRun",
    "is_interrupt",
    "unwrapped_interrupts",
    "run_header",
    "prepare",
    "compile_model",
    "build_for_fit",
    "make_tf_dataset",
    "make_strategy",
    "split_seed",
    "steps_per_execution",
    "initial_learning_rate",
]
