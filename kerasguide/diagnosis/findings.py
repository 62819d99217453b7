"""The diagnosis' vocabulary: `Finding`, the codes and severities, the `Thresholds`, the `Signals` it reads."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SEVERITIES", "CODES", "Finding", "Thresholds", "Signals", "format_findings", "findings_markdown"]

SEVERITIES = ("info", "warning", "error")

# The fixed vocabulary: code -> what it means. Readers (the desktop app) may rely on these names.
CODES = {
    "diverged": "the loss became non-finite or blew up; training was stopped",
    "lr_too_high": "the learning rate is too high (explodes, or drops fast then plateaus high)",
    "lr_too_low": "the learning rate is too low (slow, linear-looking progress; tiny updates)",
    "overfitting": "a large train/validation gap (validation loss rising)",
    "underfitting": "low accuracy (no accuracy: a loss high against the targets' variance) with no gap",
    "not_learning": "the loss does not go down at all",
    "dead_units": "many ReLU units output zero for every example",
    "saturated_units": "many tanh/sigmoid units saturated at their ends",
    "vanishing_gradients": "gradients of the first layers are tiny compared with the last",
    "exploding_gradients": "gradients of the first layers are huge compared with the last, or not finite",
    "initial_loss_off": "the loss at initialization is far from chance",
    "update_ratio_high": "update:weight ratios far above 1e-3",
    "update_ratio_low": "update:weight ratios far below 1e-3",
    "noisy_loss": "the loss wiggles a lot from batch to batch",
    "plateau": "the loss stopped improving while still high",
    "labels_not_learnable": "the training accuracy rises while validation stays at chance: labels that do not "
                            "follow from the inputs (shuffled, misaligned)",
    "cannot_overfit": "the model could not fit a tiny subset of its training data (the overfit check)",
    "check_failed": "a sanity check failed before training",
    "run_stopped": "the run ended before its last epoch (interrupted, failed)",
    "killed": "the run's process is gone (killed hard) and it never recorded an end",
}


@dataclass
class Finding:
    """One thing the diagnosis found.

    Args:
        code: One of `CODES`.
        severity: `"info"`, `"warning"` or `"error"`.
        evidence: The numbers that triggered it. Defaults to `{}`.
        advice: One or two sentences: what to change, citing the recipe. Defaults to `""`.
        recipe: The recipe(s), e.g. `"E18"`. Defaults to `""`.
        caused_by: The code of the finding that explains this one (a too-high rate killed the ReLUs:
            `dead_units` caused by `lr_too_high`); None for a primary cause. Defaults to `None`.
    """

    code: str
    severity: str
    evidence: dict[str, float] = field(default_factory=dict)
    advice: str = ""
    recipe: str = ""
    caused_by: str | None = None

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"Argument `code` must be one of {sorted(CODES)}. Received: code={self.code!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"Argument `severity` must be one of {SEVERITIES}. Received: severity={self.severity!r}")
        self.evidence = {k: _number(v) for k, v in self.evidence.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        caused_by = data.get("caused_by")
        return cls(data["code"], data["severity"], dict(data.get("evidence") or {}), data.get("advice", ""),
                   data.get("recipe", ""), caused_by if isinstance(caused_by, str) and caused_by in CODES else None)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    value = float(value)
    return round(value, 6) if math.isfinite(value) and abs(value) >= 1e-4 else value


@dataclass
class Thresholds:
    """Where each rule fires. Defaults from the recipes and from measurement (see the module docstring).

    Args:
        ratio_high: Median update:weight ratio (after epoch 1) above this is high (E18). Defaults to `1e-2`.
        ratio_first_high: Epoch 1's median ratio above this is high (E18). Defaults to `0.07`.
        ratio_low: Median ratio below this is low (E18). Defaults to `3e-5`.
        ratio_first_dead: Epoch 1's median ratio above this, with ReLUs dead on the probe that were alive at
            initialization and a poor fit, is a too-high rate that killed them (healthy classifiers: at most
            0.019; Adam at 0.05 on the mnist1d CNN: 0.063). Defaults to `0.03`.
        gap: Train minus validation accuracy above this is overfitting (E17). Defaults to `0.08`.
        overfit_accuracy: A gap counts only when the train accuracy is at least this: a broken model that
            barely fits its training data has other problems first. Defaults to `0.5`.
        val_rise: Validation loss this fraction above its minimum counts as rising (E17). Defaults to `0.2`.
        underfit_accuracy: Final train accuracy below this (with no gap and a stalled loss) is underfitting
            (E17). Defaults to `0.9`.
        underfit_gap: Largest gap that still counts as "no gap". Defaults to `0.08`.
        loss_gap: No accuracies (regression): `loss_gap` (R² train - R² validation) above this, with a
            validation error over `loss_ratio` x the train's, is overfitting (E17). Defaults to `0.2`.
        loss_ratio: See `loss_gap`; small validation sets of noisy targets vary that much. Defaults to `1.5`.
        underfit_unexplained: No accuracies: `unexplained` (1 - R²) above this with no gap and a stalled loss
            is underfitting (E17). Defaults to `0.7`.
        good_unexplained: No accuracies: `unexplained` at most this with no gap is a run that learned well (its
            process warnings become info); the diabetes preset ends at 0.47-0.49, a 1-unit net at 0.78-0.85.
            Defaults to `0.6`.
        stall: Relative loss decrease over the last third of the epochs below this counts as stalled. Defaults
            to `0.15`.
        no_progress: Relative decrease from the first loss below this is not learning. Defaults to `0.05`.
        slow_progress: Relative decrease below this (with a loss still falling) is slow, as with too low a
            learning rate. Defaults to `0.5`.
        high_plateau: Final loss above this fraction of the first loss is "still high". Defaults to `0.5`.
        dead: Dead ReLU fraction of a layer above this is a finding (E19). Defaults to `0.5`.
        saturated: Saturated fraction on the probe batch above this is a finding (E19); trained tanh nets
            saturate a good part of their units (0.38 measured on a healthy digits run). Defaults to `0.6`.
        saturated_init: The same at initialization (from the checks, as `kerasguide check` warns). Defaults to
            `0.2`.
        vanishing: First/last layer gradient RMS ratio below this is vanishing (E19). Defaults to `1e-3`.
        exploding: First/last layer gradient RMS ratio above this is exploding (E19). Defaults to `1e3`.
        noise: Median loss noise (relative batch-to-batch jitter) above this is noisy (E16). Defaults to
            `0.8`.
        plateau_loss: Final train loss above this fraction of the first loss makes a stalled loss a plateau.
            Defaults to `0.1`.
    """

    ratio_high: float = 1e-2
    ratio_first_high: float = 0.07
    ratio_low: float = 3e-5
    ratio_first_dead: float = 0.03
    gap: float = 0.08
    overfit_accuracy: float = 0.5
    val_rise: float = 0.2
    underfit_accuracy: float = 0.9
    underfit_gap: float = 0.08
    loss_gap: float = 0.2
    loss_ratio: float = 1.5
    underfit_unexplained: float = 0.7
    good_unexplained: float = 0.6
    stall: float = 0.15
    no_progress: float = 0.05
    slow_progress: float = 0.5
    high_plateau: float = 0.5
    dead: float = 0.5
    saturated: float = 0.6
    saturated_init: float = 0.2
    vanishing: float = 1e-3
    exploding: float = 1e3
    noise: float = 0.8
    plateau_loss: float = 0.1


@dataclass
class Signals:
    """Everything the rules read, as plain data (what a run directory holds).

    Args:
        epochs: metrics.csv rows (`loss`, `accuracy`, `rmse`, ..., their `val_` twins, `lr`). Defaults to `[]`.
        status: run.json's status. Defaults to `"completed"`.
        stop_reason: run.json's stop reason. Defaults to `None`.
        num_classes: Classes of the data, if known. Defaults to `None`.
        target_variance: The training targets' variance (regression). Defaults to `None`.
        update_ratio: Records of `UpdateRatioMonitor`. Defaults to `[]`.
        loss: Records of `LossMonitor`. Defaults to `[]`.
        probe: Records of `ProbeMonitor`. Defaults to `[]`.
        images: Records of `FirstLayerImages`. Defaults to `[]`.
        divergence: divergence.json, if any. Defaults to `None`.
        checks: checks.json (a list of check results), if any. Defaults to `None`.
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    status: str = "completed"
    stop_reason: str | None = None
    num_classes: int | None = None
    target_variance: float | None = None
    update_ratio: list[dict[str, Any]] = field(default_factory=list)
    loss: list[dict[str, Any]] = field(default_factory=list)
    probe: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    divergence: dict[str, Any] | None = None
    checks: list[dict[str, Any]] | None = None


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e4):
        return f"{value:.2e}"
    return f"{value:.4g}"


def format_findings(findings: list[Finding]) -> str:
    """Plain text, one finding per paragraph: `severity code: advice` then the evidence."""
    if not findings:
        return "No problems found: nothing in the recorded signals looks wrong."
    lines = []
    for f in findings:
        lines.append(f"{f.severity:7s} {f.code}: {f.advice}")
        if f.evidence:
            lines.append("        evidence: " + ", ".join(f"{k}={_fmt(v)}" for k, v in f.evidence.items()))
    return "\n".join(lines)


def findings_markdown(findings: list[Finding]) -> str:
    """A markdown table of the findings (report.md, TensorBoard's text tab)."""
    if not findings:
        return "No problems found: nothing in the recorded signals looks wrong."
    lines = ["| severity | code | advice | evidence |", "|---|---|---|---|"]
    for f in findings:
        evidence = ", ".join(f"{k}={_fmt(v)}" for k, v in f.evidence.items())
        advice = f.advice.replace("|", "\\|")
        lines.append(f"| {f.severity} | `{f.code}` | {advice} | {evidence} |")
    return "\n".join(lines)
