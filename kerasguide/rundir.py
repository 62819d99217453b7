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

`run.json` status is one of `running`, `completed`, `failed`, `interrupted`,
`diverged`, `checks_failed`. A run killed hard stays `running` with a stale
`heartbeat`; `read_run` reports such a run as `running` and readers may call
`is_stale()`.
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

from kerasguide.config import RunConfig, atomic_write_bytes, load_config

__all__ = [
    "FORMAT_VERSION",
    "STATUSES",
    "RunDir",
    "RunInfo",
    "new_run_dir",
    "list_runs",
    "read_run",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
    "read_metrics",
]

FORMAT_VERSION = 1
STATUSES = ("running", "completed", "failed", "interrupted", "diverged", "checks_failed")

CONFIG = "config.toml"
RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
REPORT_MD = "report.md"
CHECKS_JSON = "checks.json"
LR_FIND_JSON = "lr_find.json"
DIAGNOSIS_JSON = "diagnosis.json"
PREPROCESS_NPZ = "preprocess.npz"


def _json_default(value: Any) -> Any:
    # NumPy scalars and arrays, paths: write them as plain JSON.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    # JSON has no NaN/Inf; write them as null so every reader can parse the file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically; NaN and Inf become null."""
    text = json.dumps(_finite(json.loads(json.dumps(data, default=_json_default))), indent=2)
    atomic_write_text(path, text + "\n")


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
    """What the runs browser shows of a run: read from its files, never failing."""

    path: Path
    name: str
    status: str
    started: str | None
    ended: str | None
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    def is_stale(self, seconds: float = 120.0) -> bool:
        """True for a `running` run whose heartbeat stopped (killed hard)."""
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
    record = read_json(path / RUN_JSON, default={}) or {}
    status = record.get("status", "unknown")
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


def list_runs(root: str | os.PathLike[str]) -> list[RunInfo]:
    """Every run directory directly under `root`, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [read_run(p) for p in root.iterdir() if p.is_dir() and (p / RUN_JSON).exists()]
    runs.sort(key=lambda r: (r.started or "", r.path.name), reverse=True)
    return runs
