"""The final "mlflow" stage: log the finished run to MLflow when KERASGUIDE_MLFLOW asks for it (recipe I33)."""

from __future__ import annotations

from kerasguide.spine.context import RunContext
from kerasguide.tracking import mlflow_stage


def stage_mlflow(ctx: RunContext) -> None:
    mlflow_stage(ctx.run_dir)
