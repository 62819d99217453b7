"""Predict: whether a run can predict, where its predictions go, and reading them back.

`kerasguide predict RUN_DIR INPUT --out CSV` applies a run's preprocessing
and best checkpoint to new inputs (an .npz, a .csv, a folder of images) in a
child process; the app decides where the CSV goes (in the run directory,
named as the CLI names it by default) so that it can show it afterwards.
Plain functions over the run directory's files: no Qt, no TensorFlow.
"""

from __future__ import annotations

import csv
from pathlib import Path

from kerasguide.rundir import RunInfo

__all__ = ["PREDICTION_FILES", "checkpoint_of", "predict_unavailable", "predictions_path", "prediction_files",
           "snapshot_files", "read_csv_head", "input_help"]

# What `kerasguide predict` writes by default, and so what the runs browser lists.
PREDICTION_FILES = "predictions*.csv"
# A run's checkpoints, best first (a model Keras cannot save whole keeps its weights only).
_CHECKPOINTS = ("best-*.keras", "best-*.weights.h5", "last.keras", "last.weights.h5")
_INPUTS = ("an .npz file (array x), a .csv file with the training columns, or a folder of images")


def checkpoint_of(run_dir: str | Path) -> Path | None:
    """The checkpoint `predict` would load from a run directory (best, else last), or None."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    for pattern in _CHECKPOINTS:
        found = sorted(folder.glob(pattern))
        if found:
            return found[-1]
    return None


def snapshot_files(run_dir: str | Path) -> list[Path]:
    """A run's snapshot checkpoints (`[ensemble] snapshots = K`): what `ensemble --snapshots` averages."""
    folder = Path(run_dir) / "checkpoints"
    return sorted(folder.glob("snapshot-epoch=*.keras")) if folder.is_dir() else []


def predict_unavailable(info: RunInfo | None) -> str | None:
    """Why Predict is disabled for a row of the runs browser (a tooltip), or None when it can predict.

    A run needs a checkpoint; a search directory stands for its best trial
    (as the CLI takes it); an ensemble directory is not what `predict` reads.
    """
    if info is None:
        return "select one run to predict with its best checkpoint"
    if info.kind == "ensemble":
        return "kerasguide predict takes a run or a search directory, not an ensemble's"
    if info.status == "running" and not info.is_stale():
        return "the run is still running: predict once it has finished"
    if info.kind == "search":
        best = info.best.get("run_dir") if isinstance(info.best, dict) else None
        if not best:
            return "this search has no finished trial yet"
        if checkpoint_of(best) is None:
            return f"the search's best trial has no checkpoint ({Path(best).name})"
        return None
    if checkpoint_of(info.path) is None:
        what = {"check": "a sanity-checks run", "lr_find": "an LR range test"}.get(info.kind)
        return (f"no checkpoint to predict with: {what} trains no model" if what else
                "no checkpoint to predict with (the run saved none: it stopped before its first epoch?)")
    return None


def predictions_path(run_dir: str | Path, input_path: str | Path) -> Path:
    """Where the app asks `predict` to write: `predictions-<input>.csv` in the run directory."""
    name = Path(str(input_path).rstrip("/\\")).stem or "input"
    return Path(run_dir) / f"predictions-{name}.csv"


def prediction_files(run_dir: str | Path) -> list[Path]:
    """The predictions CSVs in a run directory, newest first."""
    folder = Path(run_dir)
    try:
        found = [p for p in folder.glob(PREDICTION_FILES) if p.is_file()]
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    except OSError:
        return []


def read_csv_head(path: str | Path, limit: int = 200) -> tuple[list[str], list[list[str]], int]:
    """A CSV's header, its first `limit` rows and how many rows it has (never raises: ([], [], 0)).

    Example:

    ```python
    header, rows, total = read_csv_head("runs/x/predictions-new.csv", limit=5)
    ```
    """
    header: list[str] = []
    rows: list[list[str]] = []
    total = 0
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            for row in reader:
                if not row:
                    continue
                total += 1
                if len(rows) < limit:
                    rows.append(row)
    except (OSError, csv.Error):
        return header, rows, total
    return header, rows, total


def input_help() -> str:
    """What `predict` reads, for the file dialog's title and the button's tooltip."""
    return _INPUTS
