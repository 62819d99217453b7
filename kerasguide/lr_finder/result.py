"""What an LR range test found (`LRFinderResult`): lr_find.json, lr_find.png, the curve in TensorBoard."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from kerasguide.io import atomic_write_json, save_figure
from kerasguide.lr_finder.suggest import FALLBACK_LR
from kerasguide.rundir import read_json
from kerasguide.tb_events import EventWriter

__all__ = ["LRFinderResult"]


@dataclass
class LRFinderResult:
    """What a range test found: the curve, every rule's suggestion, the chosen rate and why."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestions: dict[str, float | None]
    chosen: float
    chosen_rule: str | None
    reason: str
    steps: int
    seconds: float
    start_lr: float
    end_lr: float
    stop_reason: str = "completed"
    extra: dict[str, Any] = field(default_factory=dict)

    def suggestion(self, rule: str | None = None) -> float | None:
        """The chosen rate, or one rule's (`"valley"`, `"steepest"`, `"minimum_div_10"`)."""
        if rule is None:
            return self.chosen
        if rule not in self.suggestions:
            raise ValueError(f"Argument `rule` must be one of {tuple(self.suggestions)}. Received: rule={rule!r}")
        return self.suggestions[rule]

    @property
    def found(self) -> bool:
        """Whether a rule found a rate (otherwise `chosen` is the fallback 1e-3 and `reason` says why:
        a sweep too short, or a loss that never fell clearly below its starting level)."""
        return self.chosen_rule is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra") or {})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LRFinderResult:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}

        def floats(values):
            return [math.nan if v is None else float(v) for v in values or []]

        kwargs = {k: data[k] for k in known if k in data}
        for key in ("lrs", "losses", "smoothed"):
            kwargs[key] = floats(data.get(key))
        kwargs.setdefault("suggestions", {})
        kwargs.setdefault("chosen_rule", None)
        kwargs.setdefault("reason", "")
        kwargs.setdefault("steps", len(kwargs["lrs"]))
        kwargs.setdefault("seconds", math.nan)
        kwargs.setdefault("start_lr", kwargs["lrs"][0] if kwargs["lrs"] else math.nan)
        kwargs.setdefault("end_lr", kwargs["lrs"][-1] if kwargs["lrs"] else math.nan)
        kwargs.setdefault("chosen", FALLBACK_LR)
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LRFinderResult:
        """Read an lr_find.json (or the one in a run directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / "lr_find.json"
        data = read_json(path, default=None)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not an lr_find.json")
        return cls.from_dict(data)

    def plot(self, path: str | os.PathLike[str] | None = None, ax=None):
        """Loss against learning rate (log axis), the suggestions marked. Returns the figure.

        A matplotlib `Figure` made without pyplot (no backend chosen, nothing
        to close); with `path`, the PNG is written atomically.
        """
        if ax is None:
            fig = Figure(figsize=(6.4, 4.0))
            ax = fig.subplots()
        else:
            fig = ax.figure
        lrs = np.asarray(self.lrs, dtype=float)
        ax.plot(lrs, self.losses, color="#9ecae1", lw=1, label="loss")
        ax.plot(lrs, self.smoothed, color="#1f77b4", lw=2, label="smoothed loss")
        colors = {"valley": "#2ca02c", "steepest": "#ff7f0e", "minimum_div_10": "#9467bd"}
        for rule, lr in self.suggestions.items():
            if lr is None or not math.isfinite(lr):
                continue
            strong = rule == self.chosen_rule
            ax.axvline(lr, color=colors.get(rule, "#7f7f7f"), ls="-" if strong else "--", lw=2 if strong else 1,
                       label=f"{rule}: {lr:.2g}" + (" (chosen)" if strong else ""))
        ax.set_xscale("log")
        finite = np.asarray([v for v in self.smoothed if v is not None and math.isfinite(v)])
        raw = [v for v in self.losses if v is not None and math.isfinite(v)]
        if len(finite):
            low, start = min(float(finite.min()), min(raw, default=math.inf)), float(finite[0])
            top = max(start, low) + 0.25 * max(abs(start - low), 1e-3)
            ax.set_ylim(low - 0.1 * max(abs(start - low), 1e-3), top)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss")
        ax.set_title(f"LR range test: {self.steps} steps, chosen {self.chosen:.2g}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        if path is not None:
            fig.tight_layout()
            save_figure(fig, path, dpi=110)
        return fig

    def save(self, directory: str | os.PathLike[str], plot: bool = True) -> Path:
        """Write lr_find.json (and lr_find.png) into `directory`, atomically. Returns the JSON path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "lr_find.json"
        atomic_write_json(target, self.to_dict())
        if plot:
            self.plot(directory / "lr_find.png")
        return target

    def write_tensorboard(self, log_dir: str | os.PathLike[str]) -> None:
        """The curve as TensorBoard scalars (step = sweep step): loss, smoothed loss, log10 lr."""
        # TensorBoard's event writer in plain Python: eager `tf.summary` ops are slow (benchmarks/README.md).
        writer = EventWriter(log_dir)
        for i, (lr, loss, sm) in enumerate(zip(self.lrs, self.losses, self.smoothed, strict=False)):
            with writer:
                writer.scalar("lr_find/learning_rate", lr, i)
                writer.scalar("lr_find/log10_learning_rate", math.log10(lr), i)
                if math.isfinite(loss):
                    writer.scalar("lr_find/loss", loss, i)
                if math.isfinite(sm):
                    writer.scalar("lr_find/smoothed_loss", sm, i)
        writer.text("lr_find/chosen", f"{self.chosen:.3g} ({self.chosen_rule}): {self.reason}", 0)
        writer.flush()
        writer.close()
