"""The "resume" stage (before "fit"): every run's backup (Keras' `BackupAndRestore`), restored when it resumes.

`kerasguide run --resume` (`spine/reopen.py`): the backup's weights and
optimizer state go into the compiled model, and the records of the epochs
after it (metrics.csv, the monitors' records) are dropped: those epochs run
again.
"""

from __future__ import annotations

from kerasguide._logging import get_logger
from kerasguide.callbacks import RunBackup
from kerasguide.monitors.base import MonitorCallback
from kerasguide.rundir import utc_now
from kerasguide.spine.context import RunContext
from kerasguide.spine.reopen import BACKUP_DIR, Resume

logger = get_logger()


def stage_resume(ctx: RunContext) -> None:
    """Restore the backup into the compiled model and cut the records back to its epoch (before "fit")."""
    resume: Resume | None = ctx.resume
    monitors = [c for c in ctx.callbacks if isinstance(c, MonitorCallback)]
    # The fit stage adds the best checkpoint to what a backup waits for (it is made there).
    ctx.backup = RunBackup(ctx.run_dir.path / BACKUP_DIR, after=monitors, min_seconds=ctx.config.train.backup_after)
    if resume is None:
        return
    model = ctx.model
    if model.optimizer is not None and not model.optimizer.built:
        with ctx.strategy.scope():  # its slots must exist to receive the saved ones (fit builds it later)
            model.optimizer.build(model.trainable_variables)
    epoch = ctx.backup.restore(model)
    source = "backup"
    if epoch is None:  # killed before its first backup: the epochs start again
        epoch, source = ctx.config.train.initial_epoch, "start"
    resume.epoch = epoch
    kept = [row for row in resume.history if isinstance(row.get("epoch"), int) and row["epoch"] <= epoch]
    ctx.history[:] = kept
    ctx.run_dir.write_metrics(kept)
    for monitor in monitors:
        monitor.resume_records(epoch)
    resumed = [r for r in (resume.record.get("resumed") or []) if isinstance(r, dict)]
    resumed.append({"at": utc_now(), "epoch": epoch, "from": source,
                    "status_before": resume.status,
                    "epochs_done_before": resume.record.get("epochs_done")})
    ctx.update_run(resumed=resumed, epochs_done=epoch)
    ctx.progress.emit("resumed", epoch=epoch, source=source)
    logger.info("resuming after epoch %d (%s)", epoch,
                "weights and optimizer state from backup/" if source == "backup" else "no backup: from the start")
