"""The run directory: a documented, versioned format, written atomically.

The run directory is the contract between the core, the desktop app and the
user's own scripts. Everything that *shows* something reads one. This module
must not import TensorFlow (the desktop app uses it).

Layout (format version 1)::

    <out>/<YYYYmmdd-HHMMSS>-<name>-<hash6>/
        config.toml        the resolved config, every default filled in
        run.json           status, times, metrics, versions, fingerprints
        metrics.csv        one row per epoch: epoch, loss, val_loss, ..., lr, seconds
        preprocess.npz     the fitted preprocessing (mean, scale, components)
        checks.json        sanity check results (if checks ran)
        lr_find.json/.png  LR range test (if it ran)
        monitor/           monitor signals (kerasguide.monitors), one JSON object per line and epoch:
          update_ratio.jsonl   {epoch, steps, median, layers: {layer: ratio}, tensors: {path: ratio}}
          loss.jsonl           {epoch, losses: [every batch], mean, noise, loss, val_loss,
                                accuracy, val_accuracy, accuracy_gap}
          probe.jsonl          {epoch, loss, order, layers: {layer: {kind, dead_fraction,
                                saturated_fraction, act_std, act_hist} | {grad_norm, grad_rms,
                                weight_norm, weight_rms, grad_hist, weight_hist}}}; *_hist = {edges, counts}
          images.jsonl         {epoch, layer, tiles, roughness, file}, files first_layer_epoch=NNN.png
          divergence.json      {reason, evidence} when the divergence guard stopped training
          monitors.png         update ratios and dead/saturated units per layer (report)
        diagnosis.json     {"format_version": 1, "findings": [{code, severity, evidence, advice, recipe}]}
        report.md          the outcome table and plots (loss.png)
        checkpoints/       best-epoch=E-<metric>=V.keras and last.keras
        tb/                TensorBoard event files (train/, validation/, ...)

`run.json` status is one of `running`, `completed`, `completed_with_errors`
(trained, but a checkpoint, the report or the diagnosis could not be
written: its `errors` say what), `failed`, `interrupted`, `diverged`,
`pruned`, `checks_failed`. A run killed hard stays `running` in run.json;
`read_run` reports it as `killed` when its process (`pid`, `pid_start`,
`host`) is gone from this host, and `is_stale()` is also true for a run of
another host whose `heartbeat` stopped.

Folders of runs sit beside them: a search directory (`kerasguide tune`,
search.json, its trials' run directories in `trials/`) and an ensemble
directory (`kerasguide ensemble`, ensemble.json, its members' run
directories in `members/`). `list_runs(root, nested=True)` lists those too,
each summarized as a `RunInfo` and followed by the runs inside it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerasguide.config import RunConfig, load_config
from kerasguide.io import (  # re-exported: older callers
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from kerasguide.procs import hostname, process_start, same_process

__all__ = [
    "FORMAT_VERSION",
    "STATUSES",
    "RunDir",
    "RunInfo",
    "new_run_dir",
    "list_runs",
    "read_run",
    "status_as_read",
    "owner_alive",
    "owner_fields",
    "read_search",
    "read_ensemble",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
    "read_metrics",
]

FORMAT_VERSION = 1
STATUSES = ("running", "completed", "completed_with_errors", "failed", "interrupted", "diverged", "pruned",
            "checks_failed", "killed")

CONFIG = "config.toml"
RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
REPORT_MD = "report.md"
CHECKS_JSON = "checks.json"
LR_FIND_JSON = "lr_find.json"
DIAGNOSIS_JSON = "diagnosis.json"
SEARCH_JSON = "search.json"
ENSEMBLE_JSON = "ensemble.json"
PREPROCESS_NPZ = "preprocess.npz"


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    """Read a JSON file, or `default` when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Rows of a metrics.csv as dicts of floats (empty cells become NaN)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        parsed = {}
        for key, value in row.items():
            if key is None:
                continue
            try:
                parsed[key] = float(value) if value not in (None, "") else math.nan
            except ValueError:
                parsed[key] = math.nan
        rows.append(parsed)
    return rows


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass
class RunDir:
    """A run directory: paths to its files and atomic writers for them."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def metrics_csv(self) -> Path:
        return self.path / METRICS_CSV

    @property
    def report_md(self) -> Path:
        return self.path / REPORT_MD

    @property
    def tb_dir(self) -> Path:
        return self.path / "tb"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def monitor_dir(self) -> Path:
        return self.path / "monitor"

    def file(self, name: str) -> Path:
        return self.path / name

    # writers
    def write_json(self, name: str, data: Any) -> Path:
        target = self.path / name
        atomic_write_json(target, data)
        return target

    def write_text(self, name: str, text: str) -> Path:
        target = self.path / name
        atomic_write_text(target, text)
        return target

    def update_run(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into run.json (atomic), stamping the heartbeat."""
        record = read_json(self.run_json, default={}) or {}
        record.update(fields)
        record["heartbeat"] = utc_now()
        atomic_write_json(self.run_json, record)
        return record

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite metrics.csv whole (atomic): no half-written row ever."""
        columns: list[str] = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in columns})
        atomic_write_text(self.metrics_csv, buffer.getvalue())

    # readers
    def read_run(self) -> dict[str, Any]:
        return read_json(self.run_json, default={}) or {}

    def read_config(self) -> RunConfig:
        return load_config(self.config_path)

    def read_metrics(self) -> list[dict[str, float]]:
        return read_metrics(self.metrics_csv)

    def read(self, name: str, default: Any = None) -> Any:
        return read_json(self.path / name, default=default)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def config_hash(config: RunConfig) -> str:
    """A short, stable hash of the resolved config."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:6]


def new_run_dir(out: str | os.PathLike[str], config: RunConfig) -> RunDir:
    """Create a new, never reused directory `<out>/<timestamp>-<name>-<hash>/`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{config.name}-{config_hash(config)}"
    for attempt in range(1000):
        name = base if attempt == 0 else f"{base}-{attempt}"
        try:
            (out / name).mkdir()
        except FileExistsError:
            continue
        return RunDir(out / name)
    raise OSError(f"{out}: could not create a new run directory")  # pragma: no cover


@dataclass
class RunInfo:
    """What the runs browser shows of a run: read from its files, never failing.

    Also a search directory (`kind` "search", from search.json) or an
    ensemble directory (`kind` "ensemble", from ensemble.json and its
    members), as `list_runs(root, nested=True)` lists them; the runs inside
    one (its trials or members) have `parent` set to its path.
    """

    path: Path
    name: str
    status: str
    started: str | None
    ended: str | None
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    parent: Path | None = None

    @property
    def kind(self) -> str:
        """`run`, `check`, `lr_find`, `fit` (a `Babysitter`), or for a folder of runs `search` or `ensemble`."""
        return str(self.record.get("kind") or "run")

    @property
    def is_group(self) -> bool:
        """True for a search or ensemble directory (a folder of runs with a summary)."""
        return self.kind in ("search", "ensemble")

    def is_stale(self, seconds: float = 120.0) -> bool:
        """True for a killed run: its process gone from this host, or (another host's) its heartbeat stopped."""
        if self.status == "killed":
            return True
        if self.status != "running":
            return False
        beat = self.record.get("heartbeat") or self.started
        if not beat:
            return True
        try:
            then = _dt.datetime.fromisoformat(beat)
        except ValueError:
            return True
        now = _dt.datetime.now(_dt.UTC)
        return (now - then).total_seconds() > seconds


def read_run(path: str | os.PathLike[str]) -> RunInfo:
    """Summarize one run directory, whatever state it was left in."""
    path = Path(path)
    status, record = status_as_read(read_json(path / RUN_JSON, default={}) or {})
    return RunInfo(
        path=path,
        name=record.get("name", path.name),
        status=status if status in STATUSES else "unknown",
        started=record.get("started"),
        ended=record.get("ended"),
        final=record.get("final_metrics") or {},
        best=record.get("best") or {},
        record=record,
    )


def status_as_read(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """run.json's status as readers show it, and the record: `killed` for a `running` run whose process
    is gone from this host, `completed_with_errors` (with a line in `errors`) for one killed in its final stages."""
    status = record.get("status", "unknown")
    if status != "running" and not record.get("finishing"):
        return status, record
    if owner_alive(record) is not False:
        return status, record
    if status == "running":
        return "killed", record
    errors = [*(record.get("errors") or []), "killed during the final stages: the diagnosis or report may be missing"]
    return ("completed_with_errors" if status == "completed" else status), {**record, "errors": errors}


def owner_fields() -> dict[str, Any]:
    """What names this process for good, for a record that others check it by (`owner_alive`)."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start(pid), "host": hostname()}


def owner_alive(record: dict[str, Any]) -> bool | None:
    """Whether the process a record names (`pid`, `pid_start`, `host`) still runs; None when this host cannot tell.

    None for another host's process and for a record without a pid.
    """
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    host = record.get("host")
    if host and host != hostname():
        return None
    return same_process(pid, record.get("pid_start"))


def _mtime_iso(path: Path) -> str | None:
    try:
        return _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.UTC).isoformat(timespec="seconds")
    except OSError:
        return None


def _children(folder: Path, parent: Path) -> list[RunInfo]:
    # The runs inside a search (trials/) or an ensemble (members/), in the order they ran.
    runs = list_runs(folder)
    runs.reverse()
    for info in runs:
        info.parent = parent
    return runs


def _latest_beat(record_beat: str | None, children: list[RunInfo]) -> str | None:
    # A folder is alive while its newest run is: a trial can outlast search.json's last write.
    beats = [b for b in [record_beat, *(c.record.get("heartbeat") for c in children)] if isinstance(b, str)]
    return max(beats, key=lambda b: _parse_iso(b) or _dt.datetime.min.replace(tzinfo=_dt.UTC), default=None)


def _parse_iso(text: str) -> _dt.datetime | None:
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=_dt.UTC)


def read_search(path: str | os.PathLike[str]) -> tuple[RunInfo, list[RunInfo]]:
    """Summarize a search directory (`kerasguide tune`): its `RunInfo` and its trials' runs.

    `best` is the best trial so far (`metric`, `value` = its score, `trial`,
    `stage`, `values`, `run_dir` as an absolute path), also while the search
    runs; `record` holds search.json's fields with `kind = "search"`.
    """
    path = Path(path)
    state = read_json(path / SEARCH_JSON, default={}) or {}
    if not isinstance(state, dict):
        state = {}
    children = _children(path / "trials", path)
    objective = state.get("objective") or {}
    direction = objective.get("direction", "max")
    best = state.get("best")
    if not isinstance(best, dict) or best.get("score") is None:
        # Still running: the best of the stages so far.
        stage_bests = [s.get("best") for s in state.get("stages") or [] if isinstance(s, dict)]
        scored = [b for b in stage_bests if isinstance(b, dict) and isinstance(b.get("score"), (int, float))]
        best = (min if direction == "min" else max)(scored, key=lambda b: b["score"]) if scored else None
    summary: dict[str, Any] = {}
    if isinstance(best, dict) and isinstance(best.get("score"), (int, float)):
        summary = {"metric": best.get("metric") or objective.get("metric"), "value": best["score"],
                   "trial": best.get("trial_id"), "stage": best.get("stage"), "values": best.get("values") or {},
                   "run_dir": str((path / best["run_dir"]).resolve()) if best.get("run_dir") else None}
    trials = [t for s in state.get("stages") or [] if isinstance(s, dict) for t in s.get("trials") or []
              if isinstance(t, dict)]
    status = state.get("status", "unknown")
    record = dict(state, kind="search", trials_done=sum(1 for t in trials if t.get("status") not in (None, "running")),
                  heartbeat=_latest_beat(state.get("updated"), children))
    return RunInfo(
        path=path,
        name=state.get("name", path.name),
        status=status if status in STATUSES else "unknown",
        started=state.get("started") or _mtime_iso(path),
        ended=state.get("ended"),
        best=summary,
        record=record,
    ), children


def read_ensemble(path: str | os.PathLike[str]) -> tuple[RunInfo, list[RunInfo]]:
    """Summarize an ensemble directory (`kerasguide ensemble`): its `RunInfo` and its members' runs.

    Completed once ensemble.json is written; before that (members training)
    `running`, or the status of the member that stopped it. `final` holds
    the ensemble's `val_accuracy` (and `test_accuracy`), `best` its
    validation accuracy; `record` ensemble.json's fields with `kind = "ensemble"`.
    """
    path = Path(path)
    data = read_json(path / ENSEMBLE_JSON, default=None)
    children = _children(path / "members", path)
    final: dict[str, float] = {}
    best: dict[str, Any] = {}
    if isinstance(data, dict):
        status = "completed"
        for split, key in (("validation", "val_accuracy"), ("test", "test_accuracy")):
            value = ((data.get(split) or {}).get("ensemble") or {}).get("accuracy")
            if isinstance(value, (int, float)):
                final[key] = float(value)
        if "val_accuracy" in final:
            best = {"metric": "val_accuracy", "value": final["val_accuracy"], "label": "ensemble"}
        started = min((c.started for c in children if c.started), default=None) or _mtime_iso(path / ENSEMBLE_JSON)
        ended = _mtime_iso(path / ENSEMBLE_JSON)
    else:
        data = {}
        stopped = [c.status for c in children if c.status not in ("running", "completed", "unknown")]
        live = [c for c in children if c.status == "running" and not c.is_stale()]
        # Members training (or the ensemble being measured), else the member that stopped it.
        status = "running" if live or not stopped else stopped[-1]
        started = min((c.started for c in children if c.started), default=None) or _mtime_iso(path)
        ended = None
    record = dict(data, kind="ensemble", ensemble_kind=data.get("kind"), members_done=sum(
        1 for c in children if c.status == "completed"), heartbeat=_latest_beat(ended or _mtime_iso(path), children))
    return RunInfo(
        path=path,
        name=data.get("name", path.name),
        status=status if status in STATUSES else "unknown",
        started=started,
        ended=ended,
        final=final,
        best=best,
        record=record,
    ), children


def list_runs(root: str | os.PathLike[str], nested: bool = False) -> list[RunInfo]:
    """Every run directory directly under `root`, newest first.

    Args:
        root: The folder of runs (a workspace, `--out`).
        nested: Also list the search directories (`kerasguide tune`) and
            ensemble directories (`kerasguide ensemble`) under `root`, with
            their summary (`read_search`, `read_ensemble`), each followed by
            the runs inside it (trials, members; oldest first, `parent` set).
            Defaults to `False`: run directories only.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    runs: list[RunInfo] = []
    groups: dict[Path, list[RunInfo]] = {}
    for p in root.iterdir():
        if not p.is_dir():
            continue
        if (p / RUN_JSON).exists():
            runs.append(read_run(p))
        elif nested and (p / SEARCH_JSON).is_file():
            info, children = read_search(p)
            runs.append(info)
            groups[p] = children
        elif nested and ((p / ENSEMBLE_JSON).is_file() or (p / "members").is_dir()):
            info, children = read_ensemble(p)
            runs.append(info)
            groups[p] = children
    runs.sort(key=lambda r: (r.started or "", r.path.name), reverse=True)
    if not groups:
        return runs
    return [entry for info in runs for entry in [info, *groups.get(info.path, [])]]
