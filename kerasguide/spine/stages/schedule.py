"""The "schedule" stage: the learning rate (a float or a schedule, recipes G22-G24) and its callbacks."""

from __future__ import annotations

from kerasguide._logging import get_logger
from kerasguide.schedules import CycleMomentum, ScheduleLogger, schedule_from_config
from kerasguide.spine.context import RunContext
from kerasguide.training import initial_learning_rate

logger = get_logger()


def stage_schedule(ctx: RunContext) -> None:
    if ctx.own_compile:
        logger.info("the model came compiled: its own optimizer, learning rate and loss are kept "
                    "(the config's [optimizer] and [schedule] do not apply)")
        ctx.callbacks.append(ScheduleLogger(str(ctx.run_dir.tb_dir / "schedule")))
        return
    # The range test's choice (lr_find stage), else the config's rate.
    base = ctx.learning_rate if isinstance(ctx.learning_rate, float) else initial_learning_rate(ctx.config)
    lr, callbacks = schedule_from_config(ctx.config, ctx.steps_per_epoch, base)
    ctx.learning_rate = lr
    ctx.callbacks.extend(callbacks)
    # The rate (and a cycled momentum) of every step, to TensorBoard.
    momentum = next((c for c in callbacks if isinstance(c, CycleMomentum)), None)
    ctx.callbacks.append(ScheduleLogger(str(ctx.run_dir.tb_dir / "schedule"), momentum=momentum))
