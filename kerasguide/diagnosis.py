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
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kerasguide.rundir import RunDir, read_json

__all__ = [
    "CODES", "SEVERITIES", "Finding", "Signals", "Thresholds", "RULES", "measure", "diagnose",
    "load_signals", "diagnose_run", "write_diagnosis", "read_diagnosis", "findings_markdown",
    "format_findings",
]

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
    """

    code: str
    severity: str
    evidence: dict[str, float] = field(default_factory=dict)
    advice: str = ""
    recipe: str = ""

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
        return cls(data["code"], data["severity"], dict(data.get("evidence") or {}), data.get("advice", ""),
                   data.get("recipe", ""))


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
    gap: float = 0.08
    overfit_accuracy: float = 0.5
    val_rise: float = 0.2
    underfit_accuracy: float = 0.9
    underfit_gap: float = 0.08
    loss_gap: float = 0.2
    loss_ratio: float = 1.5
    underfit_unexplained: float = 0.7
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


# ------------------------------------------------------------- measures
def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _series(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) if _finite(r.get(key)) else math.nan for r in rows if key in r]


def _tail_mean(values: list[float], n: int = 3) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite[-n:]) if finite else math.nan


def _median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def measure(signals: Signals) -> dict[str, float]:
    """The numbers the rules read, from a run's signals. Missing signals give NaN.

    - `loss_start`: the loss at initialization (the first batch's loss if recorded, else epoch 1's loss);
      `loss_final` (mean of the last three epochs), `loss_min`; `progress`: `1 - loss_final / loss_start`;
      `late_progress`: relative decrease of the epoch loss over the last third of the epochs (at least 2);
      `nonfinite_loss`: 1 if any epoch loss is NaN/Inf.
    - `accuracy`, `val_accuracy` (means of the last three epochs), `gap`, `chance_accuracy` (1 / classes).
    - `val_loss_min`, `val_loss_final`, `val_rise` (`final / min - 1`).
    - `unexplained` (the better of train and validation) and `loss_gap` (validation - train): errors over what
      predicting the mean costs, `rmse²/target_variance` if known, else `loss/loss_start`.
    - `update_ratio`: median over epochs (the first skipped when there are more) of the per-epoch median over
      layers; `update_ratio_first`: epoch 1's (large while a tiny output layer grows, huge when the learning
      rate is too high).
    - `loss_noise`: median batch-loss noise over the epochs whose mean loss is above 0.3 x `loss_start` (else
      epoch 1's).
    - `dead_fraction`, `saturated_fraction`: the largest over layers in the last probe; `grad_ratio`: median
      over probes of the gradient RMS of the first layer with weights over the last's; `grad_nonfinite`.
    - `roughness`: the last first-layer image's.
    """
    m: dict[str, float] = {}
    rows = signals.epochs
    losses = _series(rows, "loss")
    m["epochs"] = float(len(rows))
    m["nonfinite_loss"] = float(any(not math.isfinite(v) for v in losses))
    finite = [v for v in losses if math.isfinite(v)]
    batch = [v for r in signals.loss[:1] for v in (r.get("losses") or []) if _finite(v)]
    if batch:
        # The first batch's loss is computed before any update: the loss at initialization.
        m["loss_start"] = batch[0]
    else:
        m["loss_start"] = finite[0] if finite else math.nan
    m["loss_final"] = _tail_mean(losses)
    m["loss_min"] = min(finite) if finite else math.nan
    m["progress"] = 1.0 - m["loss_final"] / m["loss_start"] if m["loss_start"] > 0 else math.nan
    k = max(2, len(finite) // 3)
    first, last = (finite[-k], finite[-1]) if len(finite) >= 3 else (math.nan, math.nan)
    m["late_progress"] = (first - last) / first if first > 0 else math.nan
    m["accuracy"] = _tail_mean(_series(rows, "accuracy"))
    m["val_accuracy"] = _tail_mean(_series(rows, "val_accuracy"))
    m["gap"] = m["accuracy"] - m["val_accuracy"]
    m["chance_accuracy"] = 1.0 / signals.num_classes if signals.num_classes else math.nan
    val = [v for v in _series(rows, "val_loss") if math.isfinite(v)]
    m["val_loss_min"] = min(val) if val else math.nan
    m["val_loss_final"] = _tail_mean(val)
    m["val_rise"] = m["val_loss_final"] / m["val_loss_min"] - 1.0 if val and m["val_loss_min"] > 0 else math.nan
    m["target_variance"] = float(signals.target_variance) if _finite(signals.target_variance) else math.nan
    errors = [_tail_mean(_series(rows, "rmse")) ** 2, _tail_mean(_series(rows, "val_rmse")) ** 2, m["target_variance"]]
    if not all(math.isfinite(v) for v in errors) or errors[2] <= 0:
        errors, m["target_variance"] = [m["loss_final"], m["val_loss_final"], m["loss_start"]], math.nan
    scale = errors[2] or math.nan
    m["unexplained"], m["loss_gap"] = min(errors[:2]) / scale, (errors[1] - errors[0]) / scale
    m["loss_ratio"] = errors[1] / errors[0] if errors[0] > 0 else math.nan
    ratios = [float(r["median"]) for r in signals.update_ratio if _finite(r.get("median"))]
    m["update_ratio_first"] = ratios[0] if ratios else math.nan
    m["update_ratio"] = _median(ratios[1:] if len(ratios) > 1 else ratios)
    # The wiggle while the loss is still high: late in training, when the loss is near zero, a single
    # misclassified example makes any batch jump.
    noisy = [(float(r.get("mean", math.nan)), float(r["noise"])) for r in signals.loss if _finite(r.get("noise"))]
    early = [n for mean, n in noisy if math.isfinite(mean) and mean > 0.3 * m["loss_start"]]
    m["loss_noise"] = _median(early) if early else (noisy[0][1] if noisy else math.nan)
    m.update(_probe_measures(signals.probe))
    rough = [float(r["roughness"]) for r in signals.images if _finite(r.get("roughness"))]
    m["roughness"] = rough[-1] if rough else math.nan
    return m


def _probe_measures(records: list[dict[str, Any]]) -> dict[str, float]:
    m = {"dead_fraction": math.nan, "saturated_fraction": math.nan, "grad_ratio": math.nan,
         "grad_nonfinite": 0.0, "dead_layer_index": math.nan, "saturated_layer_index": math.nan}
    if not records:
        return m
    last = records[-1].get("layers") or {}
    acts = [(name, v) for name, v in last.items() if isinstance(v, dict) and "kind" in v]
    for key in ("dead_fraction", "saturated_fraction"):
        values = [(float(v[key]), i) for i, (_, v) in enumerate(acts) if _finite(v.get(key))]
        if values:
            best = max(values)
            m[key] = best[0]
            m[key.replace("fraction", "layer_index")] = float(best[1])
    ratios = []
    for record in records:
        layers = record.get("layers") or {}
        order = [name for name in record.get("order") or [] if isinstance(layers.get(name), dict)]
        rms = [layers[name].get("grad_rms") for name in order]
        if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in rms):
            m["grad_nonfinite"] = 1.0
            continue
        if len(rms) >= 2 and _finite(rms[0]) and _finite(rms[-1]) and rms[-1] > 0:
            ratios.append(float(rms[0]) / float(rms[-1]))
    m["grad_ratio"] = _median(ratios)
    return m


# ----------------------------------------------------------------- rules
Rule = Callable[[Signals, dict[str, float], Thresholds], list[Finding]]


def _ev(m: dict[str, float], *keys: str) -> dict[str, float]:
    return {k: m[k] for k in keys if k in m and _finite(m[k])}


def _rule_diverged(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    if s.status != "diverged" and not m["nonfinite_loss"]:
        return []
    evidence = _ev(m, "loss_start", "loss_min", "epochs", "update_ratio_first")
    for key, value in ((s.divergence or {}).get("evidence") or {}).items():
        if _finite(value) or value is None:
            evidence[f"guard_{key}"] = value
    reason = (s.divergence or {}).get("reason") or s.stop_reason or "a non-finite loss"
    return [Finding("diverged", "error", evidence,
                    f"Training diverged ({reason}). Lower the learning rate 3-10x (an LR range test finds where the "
                    "loss falls fastest), and check inputs and initialization (recipes E16, G24).", "E16")]


def _diverged(s: Signals, m: dict[str, float]) -> bool:
    return s.status == "diverged" or bool(m["nonfinite_loss"])


def _ratio_high(m: dict[str, float], t: Thresholds) -> bool:
    return m["update_ratio"] > t.ratio_high or m["update_ratio_first"] > t.ratio_first_high


def _ended_high(m: dict[str, float], t: Thresholds) -> bool:
    """The loss stopped improving while the model is still poor."""
    poor = (m["accuracy"] < t.underfit_accuracy if math.isfinite(m["accuracy"])
            else m["progress"] < 1 - t.high_plateau)
    return poor and not m["late_progress"] >= t.stall


def _rule_learning_rate(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    out = []
    ratio = m["update_ratio"]
    ratio_known = math.isfinite(ratio) or math.isfinite(m["update_ratio_first"])
    if _diverged(s, m):
        if not ratio_known or _ratio_high(m, t):
            out.append(Finding("lr_too_high", "error", _ev(m, "update_ratio_first", "update_ratio", "loss_start"),
                               "The loss exploded: the learning rate is too high. Divide it by 10, or pick it "
                               "with the LR range test (recipes E16, E18, G24).", "E16"))
        return out
    if _ratio_high(m, t) and _ended_high(m, t):
        top = max(v for v in (ratio, m["update_ratio_first"]) if math.isfinite(v))
        out.append(Finding("lr_too_high", "warning",
                           _ev(m, "update_ratio_first", "update_ratio", "loss_start", "loss_final", "accuracy",
                               "dead_fraction"),
                           f"The loss dropped then stayed high ({m['loss_final']:.3g} from {m['loss_start']:.3g}) "
                           f"with updates up to {top:.1e} of the weights per step (about 1e-3 is healthy): lower "
                           "the learning rate 3-10x (recipes E16, E18).", "E16"))
    if ratio_known and ratio < t.ratio_low and m["progress"] < t.slow_progress and not m["late_progress"] < 0:
        out.append(Finding("lr_too_low", "warning",
                           _ev(m, "update_ratio", "loss_start", "loss_final", "progress", "late_progress"),
                           f"The loss falls slowly ({m['progress']:.0%} in {int(m['epochs'])} epochs) and each "
                           f"step moves the weights by {ratio:.1e} of their size (about 1e-3 is healthy): raise "
                           "the learning rate, e.g. 10x (recipes E16, E18).", "E18"))
    return out


def _rule_update_ratio(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    ratio = m["update_ratio"]
    if _diverged(s, m):
        return []
    if _ratio_high(m, t):
        top = max(v for v in (ratio, m["update_ratio_first"]) if math.isfinite(v))
        return [Finding("update_ratio_high", "warning", _ev(m, "update_ratio", "update_ratio_first"),
                        f"Weights change by up to {top:.1e} of their size per step, far above about 1e-3: the "
                        "learning rate is likely too high (recipe E18).", "E18")]
    if math.isfinite(ratio) and ratio < t.ratio_low:
        return [Finding("update_ratio_low", "warning", _ev(m, "update_ratio", "update_ratio_first"),
                        f"Weights change by {ratio:.1e} of their size per step, far below about 1e-3: the "
                        "learning rate is likely too low (recipe E18).", "E18")]
    return []


def _rule_fit(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    out = []
    if s.status == "diverged" or m["nonfinite_loss"]:
        return out
    gap = m["gap"]
    if math.isfinite(gap) and gap > t.gap and m["accuracy"] >= t.overfit_accuracy:
        out.append(Finding("overfitting", "warning",
                           _ev(m, "accuracy", "val_accuracy", "gap", "val_loss_min", "val_loss_final", "val_rise"),
                           f"Train accuracy {m['accuracy']:.3f} vs validation {m['val_accuracy']:.3f}: a gap of "
                           f"{gap:.3f}. Regularize more (L2, dropout), get more data, or stop earlier "
                           "(recipes E17, C9, C11).", "E17"))
    elif not math.isfinite(gap) and m["val_rise"] > t.val_rise and m["loss_final"] < m["val_loss_min"]:
        out.append(Finding("overfitting", "warning", _ev(m, "val_loss_min", "val_loss_final", "val_rise"),
                           f"The validation loss rose {m['val_rise']:.0%} above its minimum while the training "
                           "loss kept falling: regularize more or stop earlier (recipes E17, C9).", "E17"))
    scale = "the targets' variance" if math.isfinite(m["target_variance"]) else "the initial loss"
    evidence = _ev(m, "loss_final", "val_loss_final", "unexplained", "loss_gap", "loss_ratio", "target_variance")
    if not math.isfinite(gap) and not out and m["loss_gap"] > t.loss_gap and m["loss_ratio"] > t.loss_ratio:
        out.append(Finding("overfitting", "warning", evidence, f"The validation error exceeds the training error by "
                           f"{m['loss_gap']:.0%} of {scale}: regularize more (dropout, L2), get more data, or stop "
                           "earlier (recipes E17, C9).", "E17"))
    elif (not math.isfinite(gap) and not out and m["progress"] >= t.no_progress and m["late_progress"] < t.stall
          and m["unexplained"] > t.underfit_unexplained and not _ratio_high(m, t)):
        out.append(Finding("underfitting", "warning", evidence, f"Training and validation errors are "
                           f"{m['unexplained']:.0%} of {scale} and the loss has stopped improving: the model is too "
                           "small (or the targets mostly noise). Add units or layers, regularize less (E17).", "E17"))
    chance = m["chance_accuracy"] if math.isfinite(m["chance_accuracy"]) else 0.0
    learning = m["progress"] >= t.no_progress and m["accuracy"] > 2 * chance
    if (learning and math.isfinite(m["accuracy"]) and m["accuracy"] < t.underfit_accuracy
            and abs(gap) <= t.underfit_gap and m["late_progress"] < t.stall and not _ratio_high(m, t)):
        out.append(Finding("underfitting", "warning",
                           _ev(m, "accuracy", "val_accuracy", "gap", "late_progress"),
                           f"Train accuracy is only {m['accuracy']:.3f}, validation {m['val_accuracy']:.3f}, and "
                           "the loss has stopped improving: the model is too small. Add units or layers, "
                           "regularize less (recipe E17).", "E17"))
    return out


def _rule_not_learning(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    if s.status == "diverged" or m["nonfinite_loss"] or not math.isfinite(m["progress"]):
        return []
    chance = m["chance_accuracy"]
    near_chance = not math.isfinite(m["accuracy"]) or not math.isfinite(chance) or m["accuracy"] < 2 * chance
    if m["progress"] < t.no_progress and near_chance:
        return [Finding("not_learning", "error",
                        _ev(m, "loss_start", "loss_final", "progress", "accuracy", "chance_accuracy", "update_ratio"),
                        f"The loss went from {m['loss_start']:.4g} to {m['loss_final']:.4g} "
                        f"({m['progress']:.1%}): the model is not learning. Check the learning rate (E18), "
                        "dead units (E19), and that the labels match the inputs (recipes E16, D14).", "E16")]
    return []


def _rule_plateau(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    if s.status == "diverged" or m["nonfinite_loss"] or m["epochs"] < 6:
        return []
    if (m["progress"] >= t.no_progress and m["late_progress"] < t.stall / 15
            and m["loss_final"] > t.plateau_loss * m["loss_start"]):
        return [Finding("plateau", "info", _ev(m, "loss_start", "loss_final", "late_progress", "epochs"),
                        f"The training loss stopped improving at {m['loss_final']:.3g} over the last third of the "
                        "epochs: decay the learning rate (step decay, or reduce on plateau x0.5) (recipe G22).", "G22")]
    return []


def _rule_noise(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    if s.status == "diverged" or not math.isfinite(m["loss_noise"]) or m["loss_noise"] <= t.noise:
        return []
    return [Finding("noisy_loss", "warning", _ev(m, "loss_noise"),
                    f"The loss jumps by about {m['loss_noise']:.0%} from batch to batch: a larger batch "
                    "(or a lower learning rate) smooths it (recipe E16).", "E16")]


def _init_layers(checks: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    for item in checks or []:
        if isinstance(item, dict) and item.get("name") == "initialization":
            layers = (item.get("details") or {}).get("layers") or {}
            return {k: v for k, v in layers.items() if isinstance(v, dict)}
    return {}


def _rule_units(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    """Dead ReLUs and saturated units from the last probe, or from the initialization check."""
    out = []
    source = "probe"
    dead, saturated = m["dead_fraction"], m["saturated_fraction"]
    dead_layer = saturated_layer = None
    if not s.probe:
        layers = _init_layers(s.checks)
        # The output layer's saturation is the initial loss check's business.
        hidden = [(n, v) for n, v in layers.items() if v.get("activation") not in ("softmax", None)]
        if hidden and hidden[-1][1].get("activation") in ("sigmoid",):
            hidden = hidden[:-1]
        source = "initialization"
        dead = max((float(v.get("dead_fraction") or 0.0) for _, v in hidden), default=math.nan)
        saturated = max((float(v.get("saturated_fraction") or 0.0) for _, v in hidden), default=math.nan)
        dead_layer = next((n for n, v in hidden if float(v.get("dead_fraction") or 0.0) == dead), None)
        saturated_layer = next((n for n, v in hidden if float(v.get("saturated_fraction") or 0.0) == saturated), None)
    when = "at initialization" if source == "initialization" else "on the probe batch"
    if math.isfinite(dead) and dead > t.dead:
        where = f" (layer {dead_layer})" if dead_layer else ""
        out.append(Finding("dead_units", "warning", {"dead_fraction": dead, "from_initialization": float(source == "initialization")},
                           f"{dead:.0%} of a layer's ReLU units{where} output zero for every example {when}: they never "
                           "learn. Check the biases (0, or 0.01) and the initializer (He), or lower the learning rate "
                           "(recipes E19, B4, B7).", "E19"))
    limit = t.saturated_init if source == "initialization" else t.saturated
    if math.isfinite(saturated) and saturated > limit:
        where = f" (layer {saturated_layer})" if saturated_layer else ""
        out.append(Finding("saturated_units", "warning",
                           {"saturated_fraction": saturated, "from_initialization": float(source == "initialization")},
                           f"{saturated:.0%} of the tanh/sigmoid outputs{where} are saturated {when}: their gradients "
                           "vanish. Use smaller initial weights (Glorot/Xavier for tanh) or batch normalization "
                           "(recipes E19, B4, B8).", "E19"))
    return out


def _rule_gradients(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    ratio = m["grad_ratio"]
    if m["grad_nonfinite"] and s.status != "diverged":
        return [Finding("exploding_gradients", "error", {"grad_nonfinite": 1.0},
                        "Gradients on the probe batch are not finite: clip them (global_clipnorm), lower the "
                        "learning rate, check the initialization (recipes E19, B4).", "E19")]
    if not math.isfinite(ratio):
        return []
    if ratio < t.vanishing:
        return [Finding("vanishing_gradients", "warning", _ev(m, "grad_ratio"),
                        f"The first layer's gradients are {ratio:.1e} times the last layer's: they vanish on the way "
                        "down. Use ReLU with He initialization, larger initial weights, or batch normalization "
                        "(recipes E19, B4, B5, B8).", "E19")]
    if ratio > t.exploding:
        return [Finding("exploding_gradients", "warning", _ev(m, "grad_ratio"),
                        f"The first layer's gradients are {ratio:.1e} times the last layer's: they explode on "
                        "the way down. Use smaller initial weights (He/Glorot), batch normalization or "
                        "gradient clipping (recipes E19, B4, B8).", "E19")]
    return []


def _rule_initial_loss(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    for item in s.checks or []:
        if not isinstance(item, dict) or item.get("name") != "initial_loss" or item.get("passed", True):
            continue
        details = item.get("details") or {}
        evidence = {"loss": details.get("loss", item.get("measured")),
                    "expected_loss": details.get("expected_loss", item.get("expected"))}
        if _finite(item.get("tolerance")):
            evidence["tolerance"] = item["tolerance"]
        advice = item.get("advice") or "The initial loss is far from chance (recipe D12)."
        return [Finding("initial_loss_off", "error", {k: v for k, v in evidence.items() if v is not None},
                        advice, item.get("recipe") or "D12")]
    return []


RULES: list[Rule] = [
    _rule_diverged,
    _rule_initial_loss,
    _rule_learning_rate,
    _rule_update_ratio,
    _rule_not_learning,
    _rule_fit,
    _rule_plateau,
    _rule_noise,
    _rule_units,
    _rule_gradients,
]

_ORDER = {"error": 0, "warning": 1, "info": 2}


def diagnose(signals: Signals, thresholds: Thresholds | None = None) -> list[Finding]:
    """Every finding of every rule, errors first.

    Example:

    >>> rows = [{"epoch": 1, "loss": 2.30}, {"epoch": 2, "loss": float("nan")}]
    >>> [f.code for f in diagnose(Signals(epochs=rows, status="diverged"))]
    ['diverged', 'lr_too_high']
    """
    thresholds = thresholds or Thresholds()
    m = measure(signals)
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(signals, m, thresholds))
    return sorted(findings, key=lambda f: _ORDER[f.severity])


# ------------------------------------------------------------ run folders
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
        status=str(record.get("status") or "completed"),
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
