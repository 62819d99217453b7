"""Plots in the app: matplotlib on its Qt canvas, imported only when first drawn.

The drawing functions take a matplotlib `Figure` and plain data (no Qt), so
they are tested without a window; `PlotWidget` holds the canvas.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

__all__ = ["PlotWidget", "draw_curves", "draw_lr_find", "metric_panels", "RUN_COLORS"]

RUN_COLORS = ["#1f77b4", "#e8710a", "#2ca02c", "#9334e6", "#d62728", "#8c564b"]
_SKIP = {"epoch", "lr", "seconds", "step"}
_TITLES = {"mae": "MAE", "rmse": "RMSE"}  # a regression's errors, in the targets' units


def _style(ax) -> None:
    ax.grid(True, color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#9e9e9e")
    ax.tick_params(colors="#555555", labelsize=8)
    ax.title.set_fontsize(10)
    ax.title.set_color("#333333")


def metric_panels(rows: list[dict[str, float]]) -> list[tuple[str, list[str]]]:
    """Which panels to draw for a metrics table: `[(title, [columns])]`.

    Loss first, then each other metric with its `val_` twin (accuracy; a
    regression's MAE and RMSE), then the learning rate when it changes during
    training.
    """
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    bases = []
    for key in columns:
        base = key[4:] if key.startswith("val_") else key
        if base in _SKIP or base in bases:
            continue
        bases.append(base)
    twins = {k[4:] for k in columns if k.startswith("val_")}
    # loss first, then the metrics with a validation twin, then the update ratio, then the rest
    bases.sort(key=lambda b: (b != "loss", b not in twins, b != "update_ratio"))
    panels = []
    for base in bases:
        cols = [c for c in (base, f"val_{base}") if c in columns]
        if any(_finite(r.get(c)) for r in rows for c in cols):
            panels.append((_TITLES.get(base, base.replace("_", " ")), cols))
    lrs = [r.get("lr") for r in rows if _finite(r.get("lr"))]
    if lrs and max(lrs) > min(lrs) * (1 + 1e-9):
        panels.append(("learning rate", ["lr"]))
    return panels[:3]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def draw_curves(fig, series: list[tuple[str, list[dict[str, float]]]]) -> list:
    """Metric curves of one or more runs, x axis in epochs.

    One run: train dashed, validation solid. Several runs: one colour per run,
    overlaid in the same panels so they compare at a glance.

    Args:
        fig: A matplotlib `Figure` (cleared first).
        series: `[(run label, metrics.csv rows)]`.

    Returns:
        The axes drawn.
    """
    fig.clear()
    panels: list[tuple[str, list[str]]] = []
    for _, rows in series:
        for title, cols in metric_panels(rows):
            existing = next((p for p in panels if p[0] == title), None)
            if existing is None:
                panels.append((title, list(cols)))
            else:
                existing[1].extend(c for c in cols if c not in existing[1])
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, "No metrics recorded yet", ha="center", va="center", color="#777777")
        return [ax]
    axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
    several = len(series) > 1
    for ax, (title, cols) in zip(axes, panels, strict=False):
        _style(ax)
        ax.set_title(title)
        ax.set_xlabel("epoch", fontsize=8, color="#555555")
        for index, (label, rows) in enumerate(series):
            color = RUN_COLORS[index % len(RUN_COLORS)]
            for col in cols:
                points = [(r.get("epoch", i + 1), r.get(col)) for i, r in enumerate(rows)]
                points = [(x, y) for x, y in points if _finite(x) and _finite(y)]
                if not points:
                    continue
                xs, ys = zip(*points, strict=False)
                val = col.startswith("val_")
                if several:
                    name = f"{label} · {'val' if val else 'train'}"
                    style = "-" if val else "--"
                    ax.plot(xs, ys, style, color=color, linewidth=1.6, label=name,
                            alpha=1.0 if val else 0.6)
                else:
                    name = "validation" if val else ("train" if col != "lr" else "lr")
                    ax.plot(xs, ys, "-", color=RUN_COLORS[1] if val else RUN_COLORS[0],
                            linewidth=1.8, label=name, marker="o" if len(xs) < 12 else None,
                            markersize=3)
        if title == "learning rate":
            ax.set_yscale("log")
        if title == "update ratio":
            # recipe E18: ||lr * update|| / ||w|| should be about 1e-3
            ax.set_yscale("log")
            ax.axhline(1e-3, color="#9e9e9e", linestyle=":", linewidth=1.2, label="1e-3 (E18)")
            if several:
                ax.legend(handles=ax.lines[-1:], fontsize=7, frameon=False)
        if ax.lines and not several:
            ax.legend(fontsize=7, frameon=False)
    if several:
        # One legend for the figure: a colour per run, dashed = train, solid = validation.
        from matplotlib.lines import (
            Line2D,  # matplotlib loads after the window shows (see app._warm_up_plotting)
        )

        handles = [Line2D([], [], color=RUN_COLORS[i % len(RUN_COLORS)], linewidth=2.5, label=label)
                   for i, (label, _) in enumerate(series)]
        handles += [Line2D([], [], color="#555555", linestyle="--", label="train"),
                    Line2D([], [], color="#555555", linestyle="-", label="validation")]
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False)
        fig.tight_layout(pad=1.2, rect=(0, 0, 1, 0.92))
    else:
        fig.tight_layout(pad=1.2)
    return axes


def draw_lr_find(fig, data: dict[str, Any], highlight: str | None = None):
    """The LR range test: loss vs learning rate (log x), suggestions marked.

    Args:
        fig: A matplotlib `Figure` (cleared first).
        data: The contents of `lr_find.json` (`lrs`, `losses`, `smoothed`,
            `suggestions` {rule: lr}, `chosen`, `chosen_rule`).
        highlight: A rule to draw emphasized. Defaults to the chosen one.

    Returns:
        The axes.
    """
    fig.clear()
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    lrs = data.get("lrs") or []
    losses = data.get("losses") or []
    smoothed = data.get("smoothed") or []
    pairs = [(x, y) for x, y in zip(lrs, losses, strict=False) if _finite(x) and _finite(y) and x > 0]
    if pairs:
        xs, ys = zip(*pairs, strict=False)
        ax.plot(xs, ys, color="#b0bec5", linewidth=1.0, label="loss (per batch)")
    spairs = [(x, y) for x, y in zip(lrs, smoothed, strict=False) if _finite(x) and _finite(y) and x > 0]
    if spairs:
        xs, ys = zip(*spairs, strict=False)
        ax.plot(xs, ys, color=RUN_COLORS[0], linewidth=2.0, label="smoothed loss")
        # Zoom on the useful part: the explosion at the end would flatten the rest.
        raw = [y for _, y in pairs]
        low, high, start = min(min(ys), min(raw) if raw else min(ys)), max(ys), ys[0]
        top = min(high, start + 0.25 * abs(start)) if start > low else high
        if top > low:
            ax.set_ylim(low - 0.05 * (top - low), top + 0.1 * (top - low))
    if pairs or spairs:
        ax.set_xscale("log")
    suggestions = data.get("suggestions") or {}
    chosen_rule = highlight or data.get("chosen_rule")
    palette = ["#e8710a", "#2ca02c", "#9334e6", "#d62728", "#8c564b"]
    for index, (rule, lr) in enumerate(sorted(suggestions.items())):
        if not _finite(lr) or lr <= 0:
            continue
        strong = rule == chosen_rule
        ax.axvline(lr, color=palette[index % len(palette)], linestyle="-" if strong else ":",
                   linewidth=2.0 if strong else 1.3,
                   label=f"{rule}: {lr:.2g}" + ("  (chosen)" if strong else ""))
    ax.set_xlabel("learning rate (log scale)", fontsize=8, color="#555555")
    ax.set_ylabel("loss", fontsize=8, color="#555555")
    ax.set_title("LR range test")
    if ax.lines:
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    else:
        ax.text(0.5, 0.5, "lr_find.json has no curve", ha="center", va="center",
                transform=ax.transAxes, color="#777777")
    fig.tight_layout(pad=1.2)
    return ax


class PlotWidget(QWidget):
    """A matplotlib canvas created on first use (keeps matplotlib out of start-up)."""

    def __init__(self, parent: QWidget | None = None, height: float = 3.0):
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._height = height
        self.canvas = None
        self._figure = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    @property
    def figure(self):
        if self._figure is None:
            # matplotlib loads after the window shows (see app._warm_up_plotting): seconds off the start-up.
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            from matplotlib.figure import Figure

            self._figure = Figure(figsize=(6, self._height), dpi=100, facecolor="white")
            self.canvas = FigureCanvasQTAgg(self._figure)
            self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            self._layout.addWidget(self.canvas)
        return self._figure

    def draw(self) -> None:
        if self.canvas is not None:
            self.canvas.draw_idle()
