"""search.md and search.png: what a search found, read from its search.json.

The plot shows the score of every trial against each hyperparameter, one
panel per key, on a log axis where the key was searched on a log scale,
with the last searched range drawn and its borders (the outer
`border_fraction` at each end, recipe H28) shaded: a best point in a shaded
band means better values may lie beyond the range. The figure is a
matplotlib `Figure` made without pyplot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from kerasguide.config import load_config
from kerasguide.io import atomic_write_text, save_figure
from kerasguide.rundir import read_json
from kerasguide.search.space import ParamRange

__all__ = ["write_search_report", "plot_search", "pruned_summary"]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _last_ranges(state: dict[str, Any]) -> dict[str, ParamRange]:
    ranges: dict[str, ParamRange] = {}
    for stage in state.get("stages", []):
        for r in stage.get("ranges", []):
            ranges[r["key"]] = ParamRange.from_dict(r)
    return ranges


def plot_search(state: dict[str, Any], path: str | os.PathLike[str], border_fraction: float = 0.1) -> Path | None:
    """Score vs each hyperparameter, log axes where log, borders of the last range shaded."""
    trials = [t for s in state.get("stages", []) for t in s.get("trials", []) if t.get("score") is not None]
    ranges = _last_ranges(state)
    if not trials or not ranges:
        return None
    keys = list(ranges)
    fig = Figure(figsize=(4.2 * len(keys), 3.6))
    axes = fig.subplots(1, len(keys), squeeze=False)
    best = state.get("best") or {}
    cmap = matplotlib.colormaps["viridis"]
    stage_ids = sorted({t["stage"] for t in trials})
    for ax, key in zip(axes[0], keys, strict=True):
        rng = ranges[key]
        for n, stage_id in enumerate(stage_ids):
            pts = [t for t in trials if t["stage"] == stage_id and key in t["values"]]
            if not pts:
                continue
            xs = [t["values"][key] for t in pts]
            if rng.kind == "choice":
                xs = [list(rng.choices).index(x) if x in rng.choices else -1 for x in xs]
            epochs = pts[0].get("epochs")
            ax.scatter(xs, [t["score"] for t in pts], s=22, alpha=0.8,
                       color=cmap(n / max(1, len(stage_ids) - 1)),
                       label=f"stage {stage_id} ({epochs} ep)")
        if best.get("values") and key in best["values"]:
            x = best["values"][key]
            if rng.kind == "choice":
                x = list(rng.choices).index(x) if x in rng.choices else -1
            ax.scatter([x], [best["score"]], marker="*", s=180, color="crimson", zorder=5, label="best")
        if rng.kind == "choice":
            ax.set_xticks(range(len(rng.choices)), [str(c) for c in rng.choices])
        else:
            if rng.log:
                ax.set_xscale("log")
            lo_u, hi_u = rng.to_u(rng.low), rng.to_u(rng.high)
            width = hi_u - lo_u
            ax.axvline(rng.low, color="grey", ls="--", lw=1)
            ax.axvline(rng.high, color="grey", ls="--", lw=1)
            ax.axvspan(rng.low, rng.from_u(lo_u + border_fraction * width), color="orange", alpha=0.15,
                       label="border")
            ax.axvspan(rng.from_u(hi_u - border_fraction * width), rng.high, color="orange", alpha=0.15)
        ax.set_xlabel(key + (" (log)" if rng.log else ""))
        ax.set_ylabel(best.get("metric") or "score")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle("score vs hyperparameter (shaded: border of the last range searched)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def _status(trial: dict[str, Any]) -> str:
    pruned = trial.get("pruned")
    if not pruned:
        return str(trial.get("status"))
    return f"{trial.get('status')}: {pruned.get('code')} after epoch {pruned.get('epoch')}"


def pruned_summary(state: dict[str, Any]) -> str | None:
    """One line on the trials the diagnosis stopped early (issue 14): how many, their codes, the epochs saved."""
    trials = [t for stage in state.get("stages", []) for t in stage.get("trials", []) if t.get("pruned")]
    if not trials:
        return None
    codes: dict[str, int] = {}
    for t in trials:
        codes[t["pruned"]["code"]] = codes.get(t["pruned"]["code"], 0) + 1
    saved = sum(int(t.get("epochs_saved") or 0) for t in trials)
    total = sum(int(t.get("epochs") or 0) for stage in state.get("stages", []) for t in stage.get("trials", []))
    what = ", ".join(f"{code} {n}" for code, n in sorted(codes.items(), key=lambda kv: -kv[1]))
    return (f"{len(trials)} trial{'s' if len(trials) != 1 else ''} stopped early for a cause the diagnosis names "
            f"({what}), each a failed trial for the oracle: {saved} of {total} planned epochs saved.")


def work_summary(state: dict[str, Any]) -> str | None:
    """One line on the epochs a search trained, and those its promoted trials did not train again (ASHA, Hyperband)."""
    trials = [t for stage in state.get("stages", []) for t in stage.get("trials", []) if t.get("status") != "running"]
    if not trials:
        return None
    trained = sum(int(t.get("epochs_trained", t.get("epochs_done") or 0) or 0) for t in trials)
    continued = [t for t in trials if (t.get("continued_from") or {}).get("checkpoint")]
    kept = sum(int(t["continued_from"].get("epoch") or 0) for t in continued)
    text = f"{len(trials)} trials, {trained} epochs trained."
    if continued:
        text += (f" {len(continued)} promoted trials continued from their parent's checkpoint: "
                 f"{kept} epochs not trained again.")
    return text


def write_search_report(search_dir: str | os.PathLike[str]) -> Path:
    """Write `search.md` (and `search.png`) from a search directory's search.json."""
    search_dir = Path(search_dir)
    state = read_json(search_dir / "search.json", default={}) or {}
    metric = (state.get("objective") or {}).get("metric", "score")
    fraction = 0.1
    try:
        fraction = load_config(search_dir / "config.toml").search.border_fraction
    except Exception:  # the report still works without the config
        pass
    lines = [f"# Search: {state.get('name', search_dir.name)}", ""]
    lines.append(f"Status **{state.get('status', 'unknown')}**; algorithm {state.get('algorithm')}; "
                 f"objective {metric} ({(state.get('objective') or {}).get('direction', 'max')}).")
    if state.get("error"):
        lines += ["", f"Error: {state['error']}"]
    best = state.get("best")
    if best:
        values = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in best["values"].items())
        lines += ["", "## Best", "",
                  f"{metric} **{best['score']:.4f}** after {best['epochs']} epochs (stage {best['stage']}, "
                  f"trial {best['trial_id']}{', the baseline' if best.get('baseline') else ''}): {values}.",
                  "", f"Run directory `{best.get('run_dir')}`, checkpoint `{best.get('checkpoint')}`; "
                  f"the config with these values: `best.toml`."]
        model = state.get("best_model") or {}
        if model.get("dir"):
            lines += ["", f"The best trial's model (stage {model.get('stage')}, trial {model.get('trial_id')}, "
                      f"checkpoint `{model.get('checkpoint')}`) is copied to `{model['dir']}/`: `kerasguide predict "
                      f"{search_dir.name} INPUT` and `kerasguide export {search_dir.name}` use it."]
    work = work_summary(state)
    if work:
        lines += ["", work]
    pruned = pruned_summary(state)
    if pruned:
        lines += ["", "## Pruned", "", pruned]
    if state.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in state["warnings"]]
    if state.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in state["notes"]]
    png = None
    try:
        png = plot_search(state, search_dir / "search.png", fraction)
    except Exception as error:  # pragma: no cover - a plot failure must not lose the table
        lines += ["", f"(plot failed: {type(error).__name__}: {error})"]
    if png is not None:
        lines += ["", "![score vs hyperparameters](search.png)"]
    for stage in state.get("stages", []):
        ranges = ", ".join(f"`{r['key']}` {ParamRange.from_dict(r).describe()}" for r in stage["ranges"])
        lines += ["", f"## Stage {stage['index']} ({stage['label']}): {stage['epochs']} epochs, {stage['status']}",
                  "", f"Ranges: {ranges}.", ""]
        keys = [r["key"] for r in stage["ranges"]]
        lines.append("| trial | " + " | ".join(keys) + f" | {metric} | epochs | status | run |")
        lines.append("|---" * (len(keys) + 5) + "|")
        for t in stage.get("trials", []):
            tag = " (baseline)" if t.get("baseline") else ""
            cells = [_fmt(t["values"].get(k)) for k in keys]
            score = "" if t.get("score") is None else f"{t['score']:.4f}"
            run = f"[run]({t['run_dir']})" if t.get("run_dir") else ""
            parent = (t.get("continued_from") or {})
            epochs = f"{t.get('epochs')} (from {parent['parent']})" if parent.get("checkpoint") else t.get("epochs")
            lines.append(f"| {t['trial_id']}{tag} | " + " | ".join(cells)
                         + f" | {score} | {epochs} | {_status(t)} | {run} |")
    atomic_write_text(search_dir / "search.md", "\n".join(lines) + "\n")
    return search_dir / "search.md"

