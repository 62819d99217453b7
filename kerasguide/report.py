"""report.md and its plots, written from a run directory alone.

The plots are matplotlib `Figure`s made without pyplot: no backend, no
display, nothing global.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from kerasguide.diagnosis import Signals, findings_markdown, load_signals, read_diagnosis
from kerasguide.io import save_figure
from kerasguide.lr_finder.result import LRFinderResult
from kerasguide.rundir import RunDir, read_json

__all__ = ["write_report", "plot_history", "SECTIONS"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.4g}"
    if value is None:
        return "—"
    if isinstance(value, list):  # one number per target column
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


_TITLES = {"accuracy": "Accuracy", "mae": "MAE", "rmse": "RMSE"}


def plot_history(rows: list[dict[str, float]], path: str | Path) -> Path | None:
    """Loss and accuracy (a regression: MAE, RMSE) against epochs (train and validation), saved as PNG."""
    if not rows:
        return None
    epochs = [r["epoch"] for r in rows]
    keys = rows[0].keys()
    panels = [("loss", "Loss")] + [(k, title) for k, title in _TITLES.items() if k in keys]
    fig = Figure(figsize=(5.5 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        ax.plot(epochs, [r.get(key, math.nan) for r in rows], label="train", color="#1f77b4")
        if f"val_{key}" in keys:
            ax.plot(epochs, [r.get(f"val_{key}", math.nan) for r in rows], label="validation", color="#d62728")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        if key == "loss":
            values = [r.get(key, math.nan) for r in rows]
            if all(v > 0 for v in values if math.isfinite(v)):
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _section_outcome(run_dir: RunDir, record: dict[str, Any]) -> str:
    lines = ["## Outcome", "", "| | |", "|---|---|"]
    lines.append(f"| status | **{record.get('status', 'unknown')}** |")
    if record.get("error"):
        lines.append(f"| error | {record['error']} |")
    data = record.get("data") or {}
    if data:
        lines.append(
            f"| data | {data.get('name')}: {data.get('train')} train / {data.get('validation')} validation"
            f"{' / ' + str(data['test']) + ' test' if data.get('test') else ''} |"
        )
    if data.get("streamed"):
        fitted = data.get("preprocess_fitted_on")
        lines.append(f"| streamed | read from disk batch by batch; the checks ran on {data.get('sample')} training "
                     f"examples{f', the preprocessing was fitted on {fitted}' if fitted else ''} |")
    augment = data.get("augment") or {}
    lines.append("| augmentation | " + (", ".join(f"{k} {v}" for k, v in augment.items()) + " (training split only; "
                 "not the checks, validation or test)" if augment else "none") + " |")
    if data.get("task") == "regression" and _finite(data.get("target_variance")):
        lines.append(f"| targets | regression: mean {_fmt(data.get('target_mean'))}, std {_fmt(data.get('target_std'))}"
                     f" on the training split; predicting the mean has an MSE of {_fmt(data['target_variance'])} |")
    if record.get("parameters"):
        lines.append(f"| parameters | {record['parameters']:,} |")
    lines.append(f"| epochs run | {record.get('epochs_done', 0)} |")
    lines.append(f"| seconds | {_fmt(record.get('seconds'))} |")
    best = record.get("best") or {}
    if best:
        lines.append(f"| best {best.get('metric')} | {_fmt(best.get('value'))} at epoch {best.get('epoch')} |")
    evaluated = record.get("evaluated") or {}
    if evaluated:
        lines.append(f"| final metrics from | the {evaluated.get('weights')} weights (epoch {evaluated.get('epoch')}) |")
    for key, value in sorted((record.get("final_metrics") or {}).items()):
        lines.append(f"| final {key} | {_fmt(value)} |")
    lines.append(f"| seed | {record.get('seed')} |")
    return "\n".join(lines)


def _section_curves(run_dir: RunDir, record: dict[str, Any], plots: bool = True) -> str:
    rows = run_dir.read_metrics()
    if not rows or not plots:
        return ""
    plot_history(rows, run_dir.file("loss.png"))
    what = "loss and accuracy" if "mae" not in rows[0] or "accuracy" in rows[0] else "loss, MAE and RMSE"
    return f"## Learning curves\n\n![{what} per epoch](loss.png)"


def _section_reproduce(run_dir: RunDir, record: dict[str, Any]) -> str:
    versions = record.get("versions") or {}
    git = record.get("git") or {}
    if record.get("kind") == "fit":  # a user's own model.fit, watched by kerasguide.Babysitter
        lines = ["## Reproduce", "", "A `model.fit` recorded by `kerasguide.Babysitter`, run as:", "", "```",
                 str(record.get("command") or "?"), "```", ""]
    else:
        lines = ["## Reproduce", "", "```", f"kerasguide run {run_dir.config_path}", "```", ""]
    lines.append(", ".join(f"{k} {v}" for k, v in versions.items()))
    if git:
        lines.append(f"\ngit commit {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}")
    prints = record.get("fingerprints") or {}
    if prints:
        lines.append("\ndata fingerprints: " + ", ".join(f"{k} `{v}`" for k, v in prints.items()))
    if record.get("user_code"):
        uc = record["user_code"]
        lines.append(f"\n**User code ran**: {uc.get('function')}() from `{uc.get('path')}`")
    return "\n".join(lines)


def _section_checks(run_dir: RunDir, record: dict[str, Any]) -> str:
    """The sanity checks of checks.json (recipes B5, D12-D15, A2), one row per check."""
    results = run_dir.read("checks.json", default=None)
    if not isinstance(results, list) or not results:
        return ""
    lines = ["## Sanity checks", "", "| check | result | measured | expected | advice |", "|---|---|---|---|---|"]
    for item in results:
        if not isinstance(item, dict):
            continue
        if not item.get("passed", True):
            status = "**FAIL**"
        elif (item.get("details") or {}).get("skipped"):
            status = "skipped"
        else:
            status = "warn" if item.get("severity") == "warning" else "pass"
        advice = str(item.get("advice", "")).replace("|", "\\|")
        lines.append(
            f"| {item.get('name')} | {status} | {_fmt(item.get('measured'))} | "
            f"{_fmt(item.get('expected'))} | {advice} |"
        )
    return "\n".join(lines)


def _section_lr_find(run_dir: RunDir, record: dict[str, Any], plots: bool = True) -> str:
    """The LR range test of lr_find.json (recipe G24): the curve, every rule, the chosen rate and why."""
    data = run_dir.read("lr_find.json", default=None)
    if not isinstance(data, dict):
        return ""
    if plots and not run_dir.file("lr_find.png").exists():
        try:
            LRFinderResult.from_dict(data).plot(run_dir.file("lr_find.png"))
        except Exception:  # noqa: BLE001 - a missing plot must not lose the table
            pass
    lines = ["## Learning-rate range test", ""]
    if run_dir.file("lr_find.png").exists():
        lines += ["![loss against learning rate](lr_find.png)", ""]
    lines += ["| rule | learning rate |", "|---|---|"]
    suggestions = data.get("suggestions") if isinstance(data.get("suggestions"), dict) else {}
    for rule, lr in suggestions.items():
        chosen = " **(chosen)**" if rule == data.get("chosen_rule") else ""
        lines.append(f"| {rule} | {_fmt(lr)}{chosen} |")
    lines += ["", f"Chosen: **{_fmt(data.get('chosen'))}**. {data.get('reason', '')}"]
    lines.append(
        f"{data.get('steps')} steps from {_fmt(data.get('start_lr'))} to {_fmt(data.get('end_lr'))} in "
        f"{_fmt(data.get('seconds'))} s ({data.get('stop_reason', 'completed')})."
    )
    sweep = data.get("sweep") if isinstance(data.get("sweep"), dict) else {}
    if sweep.get("extended"):  # small data, swept past lr_find.max_epochs
        lines.append(f"The sweep took {_fmt(sweep.get('epochs'))} epochs: {sweep['extended']}.")
    used = (record.get("lr_find") or {}).get("used") if isinstance(record.get("lr_find"), dict) else None
    if isinstance(used, dict) and used:
        lines.append("Used for training: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in used.items()) + ".")
    return "\n".join(lines)


# ------------------------------------------------------- the diagnosis section
def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plot_monitors(signals: Signals, path: str | Path) -> Path | None:
    """Update ratio and dead/saturated fraction per layer against epochs, saved as PNG."""
    if not signals.update_ratio and not signals.probe:
        return None
    fig = Figure(figsize=(11, 3.6))
    axes = fig.subplots(1, 2)
    ax = axes[0]
    layers = list(dict.fromkeys(name for r in signals.update_ratio for name in (r.get("layers") or {})))
    for name in layers:
        points = [(r["epoch"], r["layers"][name]) for r in signals.update_ratio
                  if _finite((r.get("layers") or {}).get(name)) and r["layers"][name] > 0]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", label=name)
    ax.axhline(1e-3, color="gray", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_title("update:weight ratio per step (E18; ~1e-3)")
    ax.set_xlabel("epoch")
    if ax.get_lines()[1:]:  # more than the 1e-3 guide line
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    names = [n for n, v in ((signals.probe[-1].get("layers") or {}).items() if signals.probe else [])
             if isinstance(v, dict) and "kind" in v]
    for name in names:
        kind = signals.probe[-1]["layers"][name]["kind"]
        key = "dead_fraction" if kind not in ("tanh", "sigmoid", "softsign", "hard_sigmoid") else "saturated_fraction"
        points = [(r["epoch"], r["layers"][name][key]) for r in signals.probe
                  if _finite(((r.get("layers") or {}).get(name) or {}).get(key))]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", label=f"{name} {key.split('_')[0]}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("dead ReLU / saturated units on the probe batch (E19)")
    ax.set_xlabel("epoch")
    if ax.get_lines():
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def diagnosis_section(run_dir: str | Path | RunDir, plots: bool = True) -> str:
    """The report's "Diagnosis" section: the findings, the monitors' plot and the last first-layer image."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    if not rd.file("diagnosis.json").exists():
        return ""
    parts = ["## Diagnosis", "", findings_markdown(read_diagnosis(rd))]
    try:
        signals = load_signals(rd)
    except FileNotFoundError:
        return "\n".join(parts)
    if plots and plot_monitors(signals, rd.monitor_dir / "monitors.png") is not None:
        parts += ["", "![update ratios and dead/saturated units per layer](monitor/monitors.png)"]
    files = [r.get("file") for r in signals.images if isinstance(r.get("file"), str)]
    if files and (rd.monitor_dir / files[-1]).exists():
        parts += ["", f"First-layer weights at epoch {signals.images[-1].get('epoch')} (recipe E20: smooth = "
                  f"healthy, noisy = unconverged or under-regularized): ![first layer](monitor/{files[-1]})"]
    return "\n".join(parts)


# Each section renders itself from the run directory, or returns "" to skip.
def _section_diagnosis(run_dir: RunDir, record: dict[str, Any], plots: bool = True) -> str:
    """The diagnosis and the monitors' summary (recipes E16-E20), from diagnosis.json and monitor/."""
    return diagnosis_section(run_dir, plots)


SECTIONS: list[Callable[[RunDir, dict[str, Any]], str]] = [
    _section_outcome,
    _section_diagnosis,
    _section_checks,
    _section_lr_find,
    _section_curves,
    _section_reproduce,
]
PLOTTING = (_section_diagnosis, _section_lr_find, _section_curves)  # without their PNGs with report.plots = false (TensorBoard has them)


def write_report(run_dir: RunDir | str | Path, plots: bool = True) -> Path:
    """Write report.md (and, with `plots`, its PNGs) from what the run directory holds."""
    if not isinstance(run_dir, RunDir):
        run_dir = RunDir(Path(run_dir))
    record = read_json(run_dir.run_json, default={}) or {}
    parts = [f"# Run {record.get('name', run_dir.path.name)}", "", f"`{run_dir.path}`"]
    for section in SECTIONS:
        text = section(run_dir, record, plots=False) if not plots and section in PLOTTING else section(run_dir, record)
        if text:
            parts += ["", text]
    return run_dir.write_text("report.md", "\n".join(parts) + "\n")
