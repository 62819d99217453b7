"""`kerasguide run --resume RUN_DIR`: a killed, interrupted or failed run continues in its own directory.

Keras' `BackupAndRestore` (`callbacks.RunBackup`, in every run's fit) keeps the
weights, the optimizer's state (its slots and step counter, so a schedule
resumes at its position) and the epoch in `backup/`. A resumed run runs the
stages again on the config it recorded, except what its record says was done
(the sanity checks, the LR range test's choice), restores the backup before
fit, drops the records of epochs after it (metrics.csv, the monitors'
records: those epochs run again) and keeps the best checkpoint on disk.
run.json's `resumed` lists each resumption (when, from which epoch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerasguide.config import RunConfig, load_config
from kerasguide.errors import ConfigError
from kerasguide.rundir import RunDir, read_json, status_as_read

__all__ = ["Resume", "open_for_resume", "reopen_fields", "RESUMABLE", "BACKUP_DIR"]

RESUMABLE = ("killed", "interrupted", "failed")
BACKUP_DIR = "backup"


@dataclass
class Resume:
    """What the interrupted run had done, read from its directory before it reopens."""

    record: dict[str, Any]
    status: str = "killed"  # as readers saw it (a dead owner's `running` is `killed`)
    epoch: int | None = None  # the epochs the backup had done (the resume stage sets it)
    history: list[dict[str, Any]] = field(default_factory=list)

    def done(self, key: str) -> dict[str, Any] | None:
        """run.json's record of a stage the interrupted run finished (`checks`, `lr_find`), else None."""
        value = self.record.get(key)
        return value if isinstance(value, dict) else None


def open_for_resume(path: str | os.PathLike[str]) -> tuple[RunDir, RunConfig, Resume]:
    """The run directory, its recorded config and what it had done; `ConfigError` (one line) if it can't resume."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"--resume {str(path)[:200]!r}: no such run directory")
    run_dir = RunDir(folder)
    record = read_json(run_dir.run_json)
    if not isinstance(record, dict) or not run_dir.config_path.is_file():
        raise ConfigError(f"--resume {str(path)[:200]!r}: not a run directory (no run.json and config.toml)")
    if record.get("kind"):
        raise ConfigError(f"--resume {folder.name!r}: a {record['kind']} run has nothing to resume; run it again")
    status, record = status_as_read(record)
    if status == "running":
        where = f"pid {record.get('pid')} on {record.get('host')}" if record.get("pid") else "its owner"
        raise ConfigError(f"--resume {folder.name!r}: the run is still running ({where}); "
                          "resume a killed, interrupted or failed run")
    if status not in RESUMABLE:
        raise ConfigError(f"--resume {folder.name!r}: the run is {status}: nothing to resume "
                          f"(resume continues a killed, interrupted or failed run)")
    config = load_config(run_dir.config_path)
    if config.train.strategy == "multi_worker":
        raise ConfigError(f"--resume {folder.name!r}: a multi_worker run cannot be resumed by one process "
                          "(its workers would wait for each other); start it again on every worker")
    history = [{**row, "epoch": int(row["epoch"])} for row in run_dir.read_metrics()
               if isinstance(row.get("epoch"), float) and row["epoch"] == row["epoch"]]  # NaN: a cut row
    return run_dir, config, Resume(record, status, history=history)


def reopen_fields() -> dict[str, Any]:
    """run.json's fields as the run reopens: running again, the old outcome cleared (the lifecycle adds the
    new owner)."""
    return {"status": "running", "ended": None, "error": None, "stop_reason": None, "finishing": False,
            "errors": None}
