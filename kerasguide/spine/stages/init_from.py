"""The "init_from" stage: continue from a checkpoint (`train.init_from`, `train.initial_epoch`).

A search promotes a trial to a longer budget by continuing it (recipe H29,
ASHA): the new run loads the parent run's `last.keras` (weights and the
optimizer's state: its slots and step counter, so a schedule resumes at
its position) into the model the config builds and compiles, and fits the
epochs after `initial_epoch`. The config must build the same model.
"""

from __future__ import annotations

from pathlib import Path

from kerasguide._logging import get_logger
from kerasguide.config import ConfigError
from kerasguide.spine.context import RunContext
from kerasguide.spine.reopen import BACKUP_DIR

logger = get_logger()


def stage_init_from(ctx: RunContext) -> None:
    train = ctx.config.train
    if not train.init_from:
        return
    if ctx.resume is not None and (ctx.run_dir.path / BACKUP_DIR).is_dir():
        return  # the backup holds a later state of the same weights ("resume" stage)
    path = Path(train.init_from)
    if not path.is_file():
        raise ConfigError(f"`train.init_from` = {train.init_from!r}: no such checkpoint file")
    model = ctx.model
    if model.optimizer is not None and not model.optimizer.built:
        with ctx.strategy.scope():  # its slots must exist to receive the saved ones
            model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(str(path))
    except Exception as error:  # noqa: BLE001 - Keras raises several kinds for a checkpoint of another model
        first = str(error).strip().splitlines()[0].rstrip(":. ") if str(error).strip() else type(error).__name__
        raise ConfigError(f"`train.init_from` = {train.init_from!r} does not fit this model ({first}); "
                          "the config must build the model that checkpoint was saved from") from None
    steps = int(model.optimizer.iterations) if model.optimizer is not None else None
    ctx.update_run(continued_from={"checkpoint": str(path), "epoch": train.initial_epoch, "optimizer_steps": steps})
    logger.info("continuing from %s after epoch %d (%s optimizer steps)", path, train.initial_epoch, steps)
