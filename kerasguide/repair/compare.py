"""The before and after of a repair chain, from its run directories alone: fix.json, fix.md and fix.png."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from kerasguide.io import save_figure
from kerasguide.rundir import RunDir

__all__ = ["write_comparison", "run_summary", "FIX_JSON", "FIX_MD", "FIX_PNG"]

FIX_JSON, FIX_MD, FIX_PNG = "fix.json", "fix.md", "fix.png"
_COLUMNS = ("val_accuracy", "val_loss", "accuracy", "loss", "val_mae", "val_rmse", "test_accuracy")


def run_summary(run_dir: RunDir, findings: list[dict[str, Any]]) -> dict[str, Any]:
    """One run of the chain: its folder, status, final metrics and the codes of its warnings and errors."""
    record = run_dir.read_run()
    return {
        "run_dir": str(run_dir.path),
        "status": record.get("status", "unknown"),
        "final_metrics": {k: v for k, v in (record.get("final_metrics") or {}).items() if isinstance(v, (int, float))},
        "findings": [f"{f['code']} ({f['severity']})" for f in findings if f.get("severity") in ("warning", "error")],
        "info": [f["code"] for f in findings if f.get("severity") == "info"],
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "—"
    if value is None:
        return "—"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


def _markdown(fix: dict[str, Any]) -> str:
    runs = fix["runs"]
    columns = [c for c in _COLUMNS if any(c in r["final_metrics"] for r in runs)]
    lines = ["# kerasguide fix", "", f"From `{fix['origin']}`: **{fix['outcome']}** after {len(runs) - 1} "
             f"round{'s' if len(runs) != 2 else ''} ({fix['message']}).", "",
             "## Before and after", "",
             "| run | status | " + " | ".join(columns) + " | warnings and errors |",
             "|---|---|" + "---|" * len(columns) + "---|"]
    for i, r in enumerate(runs):
        label = "original" if i == 0 else f"round {i}"
        cells = [_cell(r["final_metrics"].get(c)) for c in columns]
        lines.append(f"| {label}: `{Path(r['run_dir']).name}` | {r['status']} | " + " | ".join(cells)
                     + f" | {', '.join(r['findings']) or 'none'} |")
    lines += ["", f"![the runs' curves, overlaid]({FIX_PNG})", ""]
    for i, step in enumerate(fix["rounds"], start=1):
        lines += [f"## Round {i}: what changed", "", "| key | before | after |", "|---|---|---|"]
        for key, (old, new) in step["changes"].items():
            lines.append(f"| `{key}` | {_cell(old)} | {_cell(new)} |")
        lines.append("")
        lines += [f"- {reason}" for reason in step["reasons"]]
        if step["cannot"]:
            lines += ["", "Not changed (no config change does it):", ""] + [f"- {c}" for c in step["cannot"]]
        lines.append("")
    if fix.get("cannot"):
        lines += ["## What kerasguide cannot change", ""] + [f"- {c}" for c in fix["cannot"]] + [""]
    return "\n".join(lines)


def _plot(fix: dict[str, Any], path: Path) -> Path | None:
    histories = [RunDir(Path(r["run_dir"])).read_metrics() for r in fix["runs"]]
    if not any(histories):
        return None
    keys = set().union(*(h[0].keys() for h in histories if h))
    panels = [("loss", "training loss"), ("val_loss", "validation loss")]
    for key in ("val_accuracy", "val_mae", "val_rmse"):
        if key in keys:
            panels.append((key, key.replace("val_", "validation ")))
            break
    panels = [p for p in panels if p[0] in keys]
    fig = Figure(figsize=(5.0 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for i, rows in enumerate(histories):
            if not rows:
                continue
            values = [r.get(key, math.nan) for r in rows]
            ax.plot([r.get("epoch", n + 1) for n, r in enumerate(rows)], values,
                    label="original" if i == 0 else f"round {i}", linewidth=1.6 if i else 1.2,
                    linestyle="--" if i == 0 else "-")
        finite = [v for rows in histories for r in rows if math.isfinite(v := r.get(key, math.nan))]
        if key.endswith("loss") and finite and min(finite) > 0 and max(finite) / min(finite) > 20:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_comparison(run_dir: RunDir, fix: dict[str, Any]) -> Path:
    """fix.json, fix.md and fix.png (the chain's curves overlaid) in `run_dir`; returns fix.md's path."""
    run_dir.write_json(FIX_JSON, fix)
    try:
        _plot(fix, run_dir.file(FIX_PNG))
    except Exception:  # noqa: BLE001 - a plot is a view, never a reason to lose the record
        pass
    return run_dir.write_text(FIX_MD, _markdown(fix))
