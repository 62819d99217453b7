"""The "compile" stage: optimizer, loss, metrics, steps per execution; the step's state built before fit."""

from __future__ import annotations

from kerasguide.spine.context import RunContext
from kerasguide.training import build_for_fit, compile_model, steps_per_execution


def stage_compile(ctx: RunContext) -> None:
    spe = steps_per_execution(ctx.config, ctx.steps_per_epoch, ctx.strategy)  # its replicas decide
    with ctx.strategy.scope():
        compile_model(ctx.model, ctx.config, ctx.learning_rate, spe, own=ctx.own_compile)
    build_for_fit(ctx.model, ctx.dataset.x_train, ctx.dataset.y_train)
    ctx.update_run(steps_per_execution=spe, steps_per_epoch=ctx.steps_per_epoch)
