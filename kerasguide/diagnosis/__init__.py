"""Diagnosis: what is wrong with a run, in plain words with numbers (recipes E16-E20).

A rules engine in plain Python (no TensorFlow, no NumPy) over what a run directory records: `metrics.csv` (per
epoch), `run.json` (status, stop reason), the monitors' files in `monitor/` (see `kerasguide.monitors`) and
`checks.json`. `measure(signals)` turns the signals into a few named numbers; each rule reads those numbers
and `Thresholds` and returns findings, each with a `code` from a fixed vocabulary, a `severity` (`info`,
`warning`, `error`), the `evidence` (numbers) that triggered it and `advice` citing the recipe. A healthy run
produces no warning and no error. Without accuracies (regression), errors are read against the targets' variance.

The thresholds come from the recipes (update ratio about 1e-3, the train/validation gap) and from measurement
on many small runs, healthy and planted (`benchmarks/diagnosis_calibration.py`, table in
`benchmarks/README.md`).

`diagnosis.json` (the desktop app reads it)::

    {"format_version": 1, "findings": [{"code", "severity", "evidence": {name: number},
                                        "advice", "recipe"}, ...]}

Example:

```python
from kerasguide.diagnosis import diagnose_run
for finding in diagnose_run("runs/20260101-120000-digits-mlp-abc123"):
    print(finding.severity, finding.code, finding.advice)
```

Modules: `findings` (the vocabulary, `Thresholds`, `Signals`), `measures`, `rules`; here, reading a run
directory (`load_signals`) and `diagnosis.json`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from kerasguide.diagnosis.findings import (
    CODES,
    SEVERITIES,
    Finding,
    Signals,
    Thresholds,
    findings_markdown,
    format_findings,
)
from kerasguide.diagnosis.measures import measure
from kerasguide.diagnosis.rules import RULES, diagnose
from kerasguide.rundir import RunDir, read_json, status_as_read

__all__ = [
    "CODES", "SEVERITIES", "Finding", "Signals", "Thresholds", "RULES", "measure", "diagnose",
    "load_signals", "diagnose_run", "write_diagnosis", "read_diagnosis", "findings_markdown",
    "format_findings", "MONITOR_RECORDS",
]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed process
        if isinstance(value, dict):
            records.append(_nulls_to_nan(value))
    return records


def _nulls_to_nan(value: Any) -> Any:
    # JSON writes NaN as null; the rules read numbers.
    if isinstance(value, dict):
        return {k: (math.nan if v is None else _nulls_to_nan(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [math.nan if v is None else _nulls_to_nan(v) for v in value]
    return value


MONITOR_RECORDS = ("update_ratio.jsonl", "loss.jsonl", "probe.jsonl", "images.jsonl", "divergence.json")


def _has_records(folder: Path) -> bool:
    return any((folder / name).is_file() for name in MONITOR_RECORDS)


def load_signals(run_dir: str | Path | RunDir) -> Signals:
    """Read the signals of a run directory, or of a folder that holds only the monitors' records.

    A folder of records (the `record_dir` given to `default_monitors`, or one with such a `monitor/` inside)
    gives what those records support: the rules that need metrics.csv or run.json find nothing to say. Raises
    `FileNotFoundError` for a folder with neither.
    """
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    if not rd.path.is_dir():
        raise FileNotFoundError(f"{rd.path}: no such folder")
    monitor = rd.monitor_dir
    if not (rd.run_json.exists() or rd.metrics_csv.exists()):
        if not _has_records(monitor):
            if not _has_records(rd.path):
                raise FileNotFoundError(f"{rd.path}: not a run directory (no run.json or metrics.csv) and no "
                                        f"monitors' records ({', '.join(MONITOR_RECORDS[:3])}, ...)")
            monitor = rd.path
    record = rd.read_run()
    checks = read_json(rd.file("checks.json"), default=None)
    return Signals(
        epochs=rd.read_metrics(),
        status="killed" if status_as_read(record)[0] == "killed" else str(record.get("status") or "completed"),
        stop_reason=record.get("stop_reason") or record.get("error"),
        num_classes=(record.get("data") or {}).get("num_classes"),
        target_variance=(record.get("data") or {}).get("target_variance"),
        update_ratio=_jsonl(monitor / "update_ratio.jsonl"),
        loss=_jsonl(monitor / "loss.jsonl"),
        probe=_jsonl(monitor / "probe.jsonl"),
        images=_jsonl(monitor / "images.jsonl"),
        divergence=read_json(monitor / "divergence.json", default=None),
        checks=checks if isinstance(checks, list) else None,
    )


def diagnose_run(run_dir: str | Path | RunDir, thresholds: Thresholds | None = None) -> list[Finding]:
    """The findings for a run directory (see `diagnose`)."""
    return diagnose(load_signals(run_dir), thresholds)


def write_diagnosis(run_dir: str | Path | RunDir, thresholds: Thresholds | None = None) -> list[Finding]:
    """Diagnose a run directory and write its diagnosis.json (atomically); returns the findings."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    findings = diagnose_run(rd, thresholds)
    rd.write_json("diagnosis.json", {"format_version": 1, "findings": [f.to_dict() for f in findings]})
    return findings


def read_diagnosis(run_dir: str | Path | RunDir) -> list[Finding]:
    """The findings in a run directory's diagnosis.json ([] if there is none)."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    data = rd.read("diagnosis.json", default={}) or {}
    out = []
    for item in data.get("findings") or []:
        try:
            out.append(Finding.from_dict(item))
        except (KeyError, TypeError, ValueError):
            continue
    return out
