"""The "fit" stage: `model.fit` with the stages' callbacks, the run's records, the best checkpoint.

With `[monitor] prune` (a search's trials) a `DiagnosisPruner` reads the
diagnosis after each epoch and stops the run with status `pruned` and
run.json's `pruned` (code, epoch, advice).
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras

from kerasguide._logging import get_logger
from kerasguide.callbacks import BestCheckpoint, EpochScalars, JsonProgress, RunRecorder
from kerasguide.pruning import DiagnosisPruner
from kerasguide.spine.context import RunContext
from kerasguide.tasks import task_settings
from kerasguide.training import split_batches

logger = get_logger()


def stage_fit(ctx: RunContext) -> None:
    cfg = ctx.config
    ds = ctx.dataset
    # Augmentation (if any) on the training split only; validation sees the data as it is.
    train = split_batches(ds, "train", cfg.train.batch_size, True, cfg.train.seed, augment=ctx.augmenter)
    val = split_batches(ds, "validation", cfg.train.batch_size)
    # Stage callbacks (schedules, monitors) come first, so that what they add
    # to `logs` reaches metrics.csv, the checkpoints and TensorBoard.
    monitor = task_settings(cfg).monitor_metric  # a regression's val_loss for the classification default
    resume = ctx.resume
    prior = _prior_best(ctx, monitor) if resume is not None else None
    recorder = RunRecorder(ctx.run_dir, monitor, history=ctx.history, update_run=ctx.update_run,
                           prior_best=prior[0] if prior and prior[0]["epoch"] > (resume.epoch or 0) else None,
                           seconds_before=sum(r.get("seconds") or 0.0 for r in ctx.history))
    callbacks: list[keras.callbacks.Callback] = [*ctx.callbacks, recorder]
    ctx.best_checkpoint = BestCheckpoint(ctx.run_dir.checkpoints_dir, monitor=monitor)
    if prior is not None:
        ctx.best_checkpoint.resume_from(prior[0]["value"], prior[0]["epoch"], prior[1])
    callbacks.append(ctx.best_checkpoint)
    callbacks.append(EpochScalars(ctx.run_dir.tb_dir))  # what Keras' TensorBoard callback writes, faster
    if cfg.train.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.train.early_stopping_patience, restore_best_weights=False,
        ))
    if cfg.monitor.prune:
        callbacks.append(_pruner(ctx))  # after the recorder and the checkpoint: the epoch is kept first
    if ctx.progress.json_lines:
        callbacks.append(JsonProgress(ctx.progress, cfg.train.epochs, ctx.steps_per_epoch))
    if ctx.backup is not None:
        ctx.backup.after.append(ctx.best_checkpoint)
        callbacks.append(ctx.backup)  # last: its epoch's records and best checkpoint are queued before it
    verbose = 0 if ctx.progress.json_lines or not ctx.verbose else (1 if sys.stdout.isatty() else 2)
    first = resume.epoch if resume is not None and resume.epoch is not None else cfg.train.initial_epoch
    logger.info("training %s, batch %d, %d steps/epoch",
                f"epochs {first + 1}-{cfg.train.epochs}" if first else f"{cfg.train.epochs} epochs",
                cfg.train.batch_size, ctx.steps_per_epoch)
    ctx.model.fit(
        train, validation_data=val, epochs=cfg.train.epochs, initial_epoch=first,
        callbacks=callbacks, verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles, with the seed
    )


def _prior_best(ctx: RunContext, monitor: str) -> tuple[dict, Path] | None:
    """A resumed run's best (run.json's `best`) and its checkpoint, if that file is on disk."""
    best = ctx.resume.record.get("best")
    if not isinstance(best, dict) or best.get("metric") != monitor or not isinstance(best.get("epoch"), int):
        return None
    found = sorted(ctx.run_dir.checkpoints_dir.glob(f"best-epoch={best['epoch']:03d}-*"))
    return (best, found[0]) if found and isinstance(best.get("value"), (int, float)) else None


def _pruner(ctx: RunContext) -> DiagnosisPruner:
    data = ctx.record.get("data") or {}

    def on_prune(pruned: dict) -> None:
        ctx.status = "pruned"
        ctx.stop_reason = f"pruned after epoch {pruned['epoch']}: {pruned['code']}"
        ctx.update_run(pruned={k: pruned[k] for k in ("code", "epoch", "advice", "codes")})

    return DiagnosisPruner(ctx.config.monitor.prune, after=ctx.config.monitor.prune_after, monitors=ctx.callbacks,
                           num_classes=data.get("num_classes"), target_variance=data.get("target_variance"),
                           on_prune=on_prune)
