"""Coarse to fine, and the border: pure functions over ranges and trial scores.

Recipe H29: search broad ranges with short trials first, then narrow each
range around where the best results turned up and train longer. Recipe H28:
when the best value of a parameter sits at the edge of its range, better
values may lie beyond it: say so, and search again with the range widened.

All of it works on the scale the parameter is searched on: log10 for log
ranges (a learning rate at 0.09 in [1e-5, 1e-1] is at the border; at 0.01
it is at 75 % of the range).

Example:

```python
from kerasguide.search.space import ParamRange
from kerasguide.search.ranges import border_side, narrow_range, widen_range

lr = ParamRange("optimizer.learning_rate", "float", 1e-5, 1e-1, log=True)
border_side(0.09, lr)                  # "high"
narrow_range(lr, [1e-3, 3e-3, 2e-3])   # about [6e-4, 5e-3]
widen_range(lr, "high")                # [1e-5, 10]
```
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kerasguide.search.space import Limits, ParamRange, field_limits

__all__ = [
    "border_side",
    "narrow_range",
    "narrow_choices",
    "widen_range",
    "rank_trials",
    "BorderFinding",
    "border_findings",
    "next_ranges",
]

Side = Literal["low", "high"]


def border_side(value: float, rng: ParamRange, fraction: float = 0.1) -> Side | None:
    """Whether `value` sits in the outer `fraction` of `rng` (or beyond it).

    Args:
        value: The best trial's value of the parameter.
        rng: The range that was searched.
        fraction: The outer share of the range, at each end, that counts as
            the border (in log space for log ranges). Defaults to `0.1`.

    Returns:
        `"low"`, `"high"`, or `None` when the value is well inside.
    """
    if not 0 < fraction < 0.5:
        raise ValueError(f"Argument `fraction` must be in (0, 0.5). Received: fraction={fraction}")
    if not rng.numeric:
        return None
    position = rng.position(value)
    if position <= fraction:
        return "low"
    if position >= 1 - fraction:
        return "high"
    return None


def narrow_range(
    rng: ParamRange, top_values: list[float], pad: float = 0.25, min_fraction: float = 0.1
) -> ParamRange:
    """A narrower range around the values of the best trials (recipe H29).

    The new range spans the best trials' values, padded on each side by
    `pad` times their spread but at least `min_fraction` of the old width,
    and never leaves the old range. Computed in log space for log ranges.

    Args:
        rng: The range searched in the previous stage.
        top_values: The parameter's values in the best trials.
        pad: Padding as a fraction of the best values' spread. Defaults to `0.25`.
        min_fraction: Least padding, as a fraction of the old width. Defaults to `0.1`.

    Returns:
        A `ParamRange` inside `rng` (`rng` itself for a choice or no values).
    """
    if pad < 0 or min_fraction <= 0:
        raise ValueError(
            f"Arguments `pad` must be >= 0 and `min_fraction` > 0. Received: pad={pad}, min_fraction={min_fraction}"
        )
    lo_u, hi_u = rng.to_u(rng.low) if rng.numeric else 0, rng.to_u(rng.high) if rng.numeric else 0
    us = [min(max(rng.to_u(v), lo_u), hi_u) for v in top_values if _finite_number(v)] if rng.numeric else []
    if not us:
        return rng
    spread = max(us) - min(us)
    margin = max(pad * spread, min_fraction * rng.width_u)
    new_lo = max(lo_u, min(us) - margin)
    new_hi = min(hi_u, max(us) + margin)
    narrowed = rng.with_bounds(rng.from_u(new_lo), rng.from_u(new_hi))
    if narrowed.kind == "int":  # rounding outward may step past the old range
        narrowed = narrowed.with_bounds(max(narrowed.low, rng.low), min(narrowed.high, rng.high))
    return narrowed


def narrow_choices(rng: ParamRange, top_values: list[Any]) -> ParamRange:
    """Keep only the choices the best trials used (in their original order)."""
    if rng.numeric:
        raise ValueError(f"Argument `rng` must be a choice. Received: kind={rng.kind!r}")
    kept = tuple(c for c in rng.choices if c in top_values)
    return rng if not kept else ParamRange(rng.key, "choice", choices=kept)


def widen_range(
    rng: ParamRange,
    side: Side,
    amount: float = 0.5,
    limits: Limits | None = None,
    include: float | None = None,
) -> ParamRange | None:
    """The range extended beyond its `side` by `amount` of its width (recipe H28).

    Args:
        rng: The range whose best value sat on the border.
        side: `"low"` or `"high"`.
        amount: How far to extend, as a fraction of the width (log space for
            log ranges). Defaults to `0.5`.
        limits: What the config key allows; the new bound stays inside.
            Defaults to `None` (no limits).
        include: A value the new range must reach (a best value that lay
            beyond the old range). Defaults to `None`.

    Returns:
        The widened `ParamRange`, or `None` when the key's own limits leave
        no room beyond that side.
    """
    if side not in ("low", "high"):
        raise ValueError(f"Argument `side` must be 'low' or 'high'. Received: side={side!r}")
    if amount <= 0:
        raise ValueError(f"Argument `amount` must be > 0. Received: amount={amount}")
    if not rng.numeric:
        return None
    limits = limits or Limits()
    shift = amount * rng.width_u
    if side == "high":
        new = rng.from_u(rng.to_u(rng.high) + shift)
        if include is not None and _finite_number(include):
            new = max(new, include)
        new = limits.clip(new, rng.low)
        widened = rng.with_bounds(rng.low, new)
        if widened.kind == "int" and limits.upper is not None and widened.high > limits.upper:
            widened = widened.with_bounds(widened.low, math.floor(limits.upper))
        return widened if widened.high > rng.high else None
    new = rng.from_u(rng.to_u(rng.low) - shift)
    if include is not None and _finite_number(include) and not (rng.log and include <= 0):
        new = min(new, include)
    new = limits.clip(new, rng.high)
    widened = rng.with_bounds(new, rng.high)
    if widened.kind == "int" and limits.lower is not None and widened.low < limits.lower:
        widened = widened.with_bounds(math.ceil(limits.lower), widened.high)
    return widened if widened.low < rng.low else None


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def rank_trials(trials: list[dict[str, Any]], direction: str = "max") -> list[dict[str, Any]]:
    """Scored trials, best first; only those trained longest are compared.

    A trial of 1 epoch and one of 20 epochs are not comparable, so when
    trials of different lengths are mixed (hyperband, or several stages)
    only the longest are ranked.

    Args:
        trials: Dicts with `score` (a number or None) and `epochs`.
        direction: `"max"` or `"min"`. Defaults to `"max"`.
    """
    if direction not in ("max", "min"):
        raise ValueError(f"Argument `direction` must be 'max' or 'min'. Received: direction={direction!r}")
    scored = [t for t in trials if _finite_number(t.get("score"))]
    if not scored:
        return []
    longest = max(t.get("epochs") or 0 for t in scored)
    scored = [t for t in scored if (t.get("epochs") or 0) == longest]
    return sorted(scored, key=lambda t: t["score"], reverse=direction == "max")


@dataclass(frozen=True)
class BorderFinding:
    """A best value on the border of its range, in plain words (recipe H28)."""

    key: str
    side: Side
    value: float
    searched: ParamRange
    widened: ParamRange | None
    baseline: bool = False

    @property
    def is_warning(self) -> bool:
        """False when the key's own limits leave nothing beyond the border (e.g. dropout 0)."""
        return self.widened is not None

    @property
    def message(self) -> str:
        where = "upper" if self.side == "high" else "lower"
        position = self.searched.position(self.value)
        if position < 0 or position > 1:
            place = f"lies {'above' if self.side == 'high' else 'below'} the searched range {self.searched.describe()}"
        else:
            place = f"lies at the {where} edge of the searched range {self.searched.describe()}"
        own = ", the config's own value" if self.baseline else ""
        text = f"the best `{self.key}` ({self.value:.3g}{own}) {place}"
        if self.widened is None:
            return (f"{text}, which is also the {'highest' if self.side == 'high' else 'lowest'} value "
                    f"`{self.key}` allows: there is nothing beyond it to search")
        w = self.widened
        log = ", log = true" if w.log else ""
        return (f"{text}: better values may lie beyond it. Search again with the range widened to "
                f"{w.describe()}: [search.space.\"{self.key}\"] low = {w.low:.3g}, high = {w.high:.3g}{log}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "side": self.side, "value": self.value,
            "searched": self.searched.to_dict(),
            "widened": self.widened.to_dict() if self.widened else None,
            "baseline": self.baseline, "warning": self.is_warning, "message": self.message,
        }


def border_findings(
    ranges: list[ParamRange],
    best_values: dict[str, Any],
    fraction: float = 0.1,
    limits_of: Callable[[str], Limits] = field_limits,
    amount: float = 0.5,
    baseline: bool = False,
) -> list[BorderFinding]:
    """Every numeric parameter whose best value sits on the border of its range.

    Args:
        ranges: The ranges that were searched.
        best_values: The best trial's values.
        fraction: The border's share of the range at each end. Defaults to `0.1`.
        limits_of: Key -> `Limits` the config allows. Defaults to the schema's.
        amount: How far a widened range extends. Defaults to `0.5`.
        baseline: The best trial is the baseline (the config's own values,
            which may lie outside a narrowed range). Defaults to `False`.
    """
    findings = []
    for rng in ranges:
        value = best_values.get(rng.key)
        if not rng.numeric or not _finite_number(value):
            continue
        side = border_side(value, rng, fraction)
        if side is None:
            continue
        widened = widen_range(rng, side, amount, limits_of(rng.key), include=value)
        findings.append(BorderFinding(rng.key, side, float(value), rng, widened, baseline))
    return findings


def next_ranges(
    ranges: list[ParamRange],
    trials: list[dict[str, Any]],
    direction: str = "max",
    top_k: int = 3,
    fraction: float = 0.1,
    limits_of: Callable[[str], Limits] = field_limits,
) -> tuple[list[ParamRange], list[BorderFinding]]:
    """The ranges of the next stage: narrowed around the top trials, widened at a border.

    Args:
        ranges: This stage's ranges.
        trials: This stage's trials (`values`, `score`, `epochs`).
        direction: `"max"` or `"min"`. Defaults to `"max"`.
        top_k: How many best trials the new ranges are fitted around.
            Defaults to `3`.
        fraction: The border's share of a range. Defaults to `0.1`.
        limits_of: Key -> `Limits`. Defaults to the schema's.

    Returns:
        `(ranges, findings)`: the new ranges (unchanged when no trial
        scored) and the border findings of this stage's best trial.
    """
    if top_k < 1:
        raise ValueError(f"Argument `top_k` must be >= 1. Received: top_k={top_k}")
    ranked = rank_trials(trials, direction)
    if not ranked:
        return list(ranges), []
    top = ranked[:top_k]
    findings = {f.key: f for f in border_findings(ranges, ranked[0]["values"], fraction, limits_of,
                                                  baseline=bool(ranked[0].get("baseline")))}
    new = []
    for rng in ranges:
        values = [t["values"][rng.key] for t in top if rng.key in t["values"]]
        if not rng.numeric:
            new.append(narrow_choices(rng, values))
            continue
        narrowed = narrow_range(rng, values)
        finding = findings.get(rng.key)
        if finding is not None and finding.widened is not None:
            w = finding.widened
            narrowed = (narrowed.with_bounds(narrowed.low, w.high) if finding.side == "high"
                        else narrowed.with_bounds(w.low, narrowed.high))
        new.append(narrowed)
    return new, list(findings.values())
