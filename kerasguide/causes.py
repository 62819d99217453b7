"""Why a model could not overfit a tiny subset: the likely cause from what the overfit check recorded (D14).

Plain Python over the check's details (no TensorFlow), shared by the check's advice line and the diagnosis
of a run the check stopped, so that both name the same cause. The thresholds sit between the healthy and
the planted fits measured in `benchmarks/diagnosis_calibration.py` (table in `benchmarks/README.md`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["FitCause", "overfit_cause", "EXPLODED", "VANISHING", "RATIO_LOW", "RATIO_HIGH"]

# The loss rose above this x its start, or became NaN/Inf: the steps overshoot.
EXPLODED = 2.0
# First-layer / last-layer gradient RMS at the first step below this: the signal vanishes on the way down
# (a healthy digits MLP gives 6e-3 with its fresh output layer; a 6-deep sigmoid net with tiny weights 1e-7).
VANISHING = 1e-4
# Median update:weight ratio over the steps below this (healthy full-batch fits: 4e-3 to 1e-2; Adam at 3e-6
# gives 3e-5, SGD at 3e-5 3e-6): the rate is too low to move the weights.
RATIO_LOW = 3e-4
# ... above this without the loss exploding: the weights jump around.
RATIO_HIGH = 0.3


@dataclass(frozen=True)
class FitCause:
    """The likely cause: a diagnosis code, a sentence naming it and what to do, and the numbers behind it."""

    code: str
    sentence: str
    evidence: dict[str, float]


def _number(details: dict[str, Any], key: str) -> float:
    value = details.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _trace(details: dict[str, Any]) -> list[float]:
    out = []
    for point in details.get("loss_trace") or []:
        value = point[1] if isinstance(point, (list, tuple)) and len(point) == 2 else None
        out.append(float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan)
    return out


def overfit_cause(details: dict[str, Any], outputs: int | None = None) -> FitCause | None:
    """The likely cause of a failed overfit check, or None when its records do not tell.

    Args:
        details: The check's `details` (`initial_loss`, `final_loss`, `loss_max`, `loss_trace`,
            `update_ratio`, `grad_ratio`, `narrowest`, `output_width`, `learning_rate`, `no_gradient`).
        outputs: The output's width (classes), if the details do not hold it. Defaults to `None`.

    Returns:
        `lr_too_high` (the loss exploded, or updates far above 1e-3), `vanishing_gradients` (the first
        layer's gradients vanish), `lr_too_low` (the loss barely moves, with tiny updates), `underfitting`
        (the loss fell and flattened, through a layer narrower than the output), or None.

    Example:

    >>> overfit_cause({"initial_loss": 2.3, "final_loss": float("nan"), "loss_max": 1e21}).code
    'lr_too_high'
    """
    if details.get("no_gradient") or not details.get("steps"):
        return None  # the check's own advice names the tensors without a gradient
    initial, final = _number(details, "initial_loss"), _number(details, "final_loss")
    top, ratio = _number(details, "loss_max"), _number(details, "update_ratio")
    grad_ratio, lr = _number(details, "grad_ratio"), _number(details, "learning_rate")
    trace = _trace(details)
    rate = f" at learning rate {lr:.3g}" if math.isfinite(lr) else ""
    exploded = not math.isfinite(final) or any(not math.isfinite(v) for v in trace) or (
        math.isfinite(top) and initial > 0 and top > EXPLODED * initial)
    if exploded:
        peak = "NaN/Inf" if not math.isfinite(top) or not math.isfinite(final) else f"{top:.3g}"
        return FitCause("lr_too_high", f"the loss exploded ({initial:.3g} -> {peak}){rate}: divide the learning "
                        "rate by 10, or pick it with the LR range test",
                        {"initial_loss": initial, "loss_max": top, "learning_rate": lr, "update_ratio": ratio})
    if math.isfinite(grad_ratio) and grad_ratio < VANISHING:
        return FitCause("vanishing_gradients", f"the first layer's gradients are {grad_ratio:.1e} of the last "
                        "layer's: they vanish on the way down; use ReLU with He initialization, larger initial "
                        "weights, or batch normalization",
                        {"grad_ratio": grad_ratio, "initial_loss": initial, "final_loss": final})
    progress = 1.0 - final / initial if initial > 0 and math.isfinite(final) else math.nan
    if math.isfinite(ratio) and ratio < RATIO_LOW and not progress >= 0.5:
        return FitCause("lr_too_low", f"the loss barely moved ({initial:.3g} -> {final:.3g}) and each step "
                        f"moved the weights by {ratio:.1e} of their size (about 1e-3 is healthy){rate}: raise "
                        "the learning rate, e.g. 10x",
                        {"update_ratio": ratio, "initial_loss": initial, "final_loss": final, "learning_rate": lr})
    if math.isfinite(ratio) and ratio > RATIO_HIGH:
        return FitCause("lr_too_high", f"each step moved the weights by {ratio:.2g} of their size (about 1e-3 "
                        f"is healthy){rate}: divide the learning rate by 10",
                        {"update_ratio": ratio, "initial_loss": initial, "final_loss": final, "learning_rate": lr})
    narrowest = _number(details, "narrowest")
    width = _number(details, "output_width")
    width = width if math.isfinite(width) else float(outputs) if outputs else math.nan
    if math.isfinite(narrowest) and math.isfinite(width) and narrowest < width and progress >= 0.2:
        return FitCause("underfitting", f"the loss fell ({initial:.3g} -> {final:.3g}) then flattened, through a "
                        f"layer of {int(narrowest)} units for {int(width)} outputs: the model is too small; "
                        "add units", {"narrowest": narrowest, "output_width": width, "initial_loss": initial,
                                      "final_loss": final, "parameters": _number(details, "parameters")})
    return None
