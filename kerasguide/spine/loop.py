"""`run(config)`: what `kerasguide run` does, the stages in order inside one command lifecycle.

Each stage writes to the run directory as it goes, so a run stopped at any
point (Ctrl-C, SIGTERM, a crash, SIGKILL) leaves files every kerasguide tool
can read.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import keras

from kerasguide._logging import get_logger
from kerasguide.config import RunConfig, load_config
from kerasguide.progress import Progress
from kerasguide.provenance import git_commit
from kerasguide.rundir import RunDir, new_run_dir
from kerasguide.spine.context import RunContext, RunResult
from kerasguide.spine.lifecycle import CommandRun, command_run
from kerasguide.spine.multi_worker import cluster_role
from kerasguide.spine.reopen import Resume, open_for_resume, reopen_fields
from kerasguide.spine.stages import FINAL_STAGES, STAGES
from kerasguide.training import save_model_atomic

__all__ = ["run", "resume"]

logger = get_logger()


def _save_last(ctx: RunContext) -> None:
    """checkpoints/last.keras, and the best checkpoint an interrupted fit kept only in memory."""
    if ctx.model is None or not ctx.model.built or getattr(ctx.model, "optimizer", None) is None:
        return
    problems = []
    if ctx.backup is not None:
        ctx.backup.stop()  # a fit that was interrupted leaves no backup write waiting
    try:
        if ctx.best_checkpoint is not None:
            ctx.best_checkpoint.flush()  # interrupted: on_train_end never ran (no-op when all is on disk)
    except Exception as error:  # noqa: BLE001 - the last checkpoint is still worth a try
        problems.append(f"best checkpoint not written: {type(error).__name__}: {error}")
    try:
        save_model_atomic(ctx.model, ctx.run_dir.checkpoints_dir / "last.keras")
    except Exception as error:  # noqa: BLE001 - said in the record (completed_with_errors), not hidden
        problems.append(f"last checkpoint not written: {type(error).__name__}: {error}")
    if problems:
        raise OSError("; ".join(problems)[:300])


def run(
    config: RunConfig | str | os.PathLike[str],
    out: str | os.PathLike[str] = "runs",
    json_progress: bool = False,
    verbose: int = 1,
    config_path: str | None = None,
) -> RunResult:
    """Run a config end to end and record everything in a new run directory.

    Args:
        config: A `RunConfig` or the path of a TOML run config.
        out: The folder that receives the run directory. Defaults to `"runs"`.
        json_progress: Emit one JSON object per line on stdout (for the
            desktop app) instead of Keras' progress bar. Defaults to `False`.
        verbose: 0 for no progress bar. Defaults to `1`.
        config_path: Recorded in run.json. Defaults to `None`.

    Returns:
        A `RunResult`; `status` is `completed`, `failed`, `interrupted`,
        `diverged` or `checks_failed`. Bad input raises `ConfigError`.

    Example:

    ```python
    result = kerasguide.run("resources/configs/digits.toml", out="runs")
    print(result.status, result.final_metrics["val_accuracy"])
    ```
    """
    if not isinstance(config, RunConfig):
        config_path = config_path or str(config)
        config = load_config(config)
    role = cluster_role(config)
    if role is None or role["chief"]:
        return _execute(config, new_run_dir(out, config), config_path, json_progress, verbose, cluster=role)
    # Another worker of a multi-worker run: it computes alike (its collective ops pair with the chief's) but
    # keeps its files in a folder of its own that goes at the end; the chief writes the run (Keras' pattern).
    scratch = Path(tempfile.mkdtemp(prefix="kerasguide-worker-"))
    try:
        return _execute(config, new_run_dir(scratch, config), config_path, json_progress, verbose, cluster=role)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def resume(
    run_dir: str | os.PathLike[str],
    json_progress: bool = False,
    verbose: int = 1,
) -> RunResult:
    """Continue a killed, interrupted or failed run in its own directory, from its last backup.

    Every run keeps Keras' `BackupAndRestore` state in `backup/` (weights,
    optimizer state, epoch); this reopens the run on the config it recorded,
    skips what its record says was done (sanity checks, the LR range test),
    restores the backup and trains the remaining epochs. run.json's
    `resumed` says from which epoch.

    Args:
        run_dir: The run directory (`kerasguide runs` lists them).
        json_progress: Emit one JSON object per line on stdout. Defaults to `False`.
        verbose: 0 for no progress bar. Defaults to `1`.

    Returns:
        A `RunResult`, as `run` returns. A run that cannot resume (completed,
        still running, not a run) raises `ConfigError`.

    Example:

    ```python
    result = kerasguide.resume("runs/20261203-081500-digits-3f2a")
    ```
    """
    directory, config, state = open_for_resume(run_dir)
    return _execute(config, directory, state.record.get("config_path"), json_progress, verbose, resume_state=state)


def _execute(config: RunConfig, run_dir: RunDir, config_path: str | None, json_progress: bool, verbose: int,
             resume_state: Resume | None = None, cluster: dict[str, Any] | None = None) -> RunResult:
    progress = Progress(json_progress)
    ctx = RunContext(config=config, run_dir=run_dir, progress=progress, verbose=verbose, resume=resume_state)
    if resume_state is not None:
        ctx.record.update(resume_state.record)  # what the stages read of the record (its data, its choices)
    # A global setting: a mixed-precision run must not leave later runs (search
    # and ensemble members in this process, the caller's own Keras code) mixed.
    policy_before = keras.mixed_precision.global_policy()

    def before_record(command: CommandRun) -> None:
        keras.mixed_precision.set_global_policy(policy_before)
        ctx.status, ctx.stop_reason = command.status, command.stop_reason
        _save_last(ctx)
        if command.status not in ("interrupted", "failed") and ctx.backup is not None:
            shutil.rmtree(ctx.backup.backup_dir, ignore_errors=True)  # nothing will resume it

    # A worker that is not the chief writes no report, diagnosis or MLflow run: its files are thrown away.
    final_stages = ([(name, lambda stage=stage: stage(ctx)) for name, stage in FINAL_STAGES]
                    if cluster is None or cluster["chief"] else [])
    header = (reopen_fields() if resume_state is not None
              else {"platform": platform.platform(), "git": git_commit(Path.cwd())})
    if cluster is not None:
        header["multi_worker"] = cluster
    with command_run(run_dir, config, config_path, progress, header=header,
                     start={"epochs": config.train.epochs, **({"resumed": True} if resume_state else {})},
                     before_record=before_record, final_stages=final_stages, reraise=False,
                     reopen=resume_state is not None) as command:
        logger.info("run directory %s%s", run_dir.path, " (resumed)" if resume_state else "")
        for name, stage in STAGES:
            progress.emit("stage", stage=name)
            stage(ctx)
        # A stage may have set its own outcome (the divergence guard: `diverged`).
        command.finish("completed" if ctx.status == "running" else ctx.status, None, ctx.stop_reason)
    record = run_dir.read_run()
    return RunResult(
        run_dir=run_dir,
        status=str(record.get("status") or ctx.status),  # completed_with_errors is set after the final stages
        final_metrics=record.get("final_metrics") or {},
        best=record.get("best") or {},
        error=record.get("error") or ("; ".join(record["errors"]) if record.get("errors") else None),
    )
