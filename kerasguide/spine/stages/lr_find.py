"""The "lr_find" stage: the LR range test (recipe G24), only with `optimizer.learning_rate = "auto"`.

Runs the test on the fresh model (restored afterwards), writes lr_find.json
and the curve to TensorBoard (`tb/lr_find`; lr_find.png is drawn by the
report stage), records it in run.json and sets `ctx.learning_rate` for the
"schedule" stage (the peak of one-cycle, the upper bound of a cyclical
schedule).
"""

from __future__ import annotations

from kerasguide._logging import get_logger
from kerasguide.lr_finder import find_on_config, result_record
from kerasguide.spine.context import RunContext

logger = get_logger()


def stage_lr_find(ctx: RunContext) -> None:
    config = ctx.config
    if config.optimizer.learning_rate != "auto":
        return
    done = ctx.resume.done("lr_find") if ctx.resume is not None else None
    if done is not None:
        ctx.learning_rate = done.get("chosen")  # the schedule is rebuilt around the rate the run chose
        logger.info("LR range test: done before the run was interrupted (chosen %s)", done.get("chosen"))
        return
    if config.train.init_from:
        logger.info("continuing from a checkpoint: its learning rate is kept (no range test)")
        return
    if ctx.own_compile:
        logger.info("the model came compiled with its own learning rate: no range test in the run "
                    "(`kerasguide lr-find` sweeps it)")
        return

    def on_step(i, lr, loss):
        ctx.progress.emit("step", stage="lr_find", step=i + 1, steps=config.lr_find.steps, lr=lr, loss=loss)

    result = find_on_config(config, ctx.dataset, ctx.model, ctx.strategy, on_step, own=False)
    # The PNG waits for the report (after training): matplotlib's figure costs as much as a small sweep.
    result.save(ctx.run_dir.path, plot=False)
    try:
        result.write_tensorboard(ctx.run_dir.tb_dir / "lr_find")
    except Exception as error:  # noqa: BLE001 - TensorBoard is a view, never a reason to fail
        logger.warning("could not write the LR range test to TensorBoard: %s", error)
    ctx.learning_rate = result.chosen
    ctx.update_run(lr_find=result_record(result, config))
    logger.info("LR range test: %d steps in %.1fs, chosen %.3g (%s)", result.steps, result.seconds, result.chosen,
                result.reason)
