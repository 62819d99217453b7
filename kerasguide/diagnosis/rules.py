"""The rules: each reads the measures and the thresholds and says what it finds (recipes E16-E20, D12)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from kerasguide.causes import overfit_cause
from kerasguide.diagnosis.findings import Finding, Signals, Thresholds
from kerasguide.diagnosis.measures import is_finite, measure

__all__ = ["RULES", "Rule", "diagnose", "one_story", "EXPLAINED_BY"]


Rule = Callable[[Signals, dict[str, float], Thresholds], list[Finding]]


def _ev(m: dict[str, float], *keys: str) -> dict[str, float]:
    return {k: m[k] for k in keys if k in m and is_finite(m[k])}


def _rule_diverged(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    if s.status != "diverged" and not m["nonfinite_loss"]:
        return []
    evidence = _ev(m, "loss_start", "loss_min", "epochs", "update_ratio_first")
    for key, value in ((s.divergence or {}).get("evidence") or {}).items():
        if is_finite(value) or value is None:
            evidence[f"guard_{key}"] = value
    reason = (s.divergence or {}).get("reason") or s.stop_reason or "a non-finite loss"
    return [Finding("diverged", "error", evidence,
                    f"Training diverged ({reason}). Lower the learning rate 3-10x (an LR range test finds where the "
                    "loss falls fastest), and check inputs and initialization (recipes E16, G24).", "E16")]


def _diverged(s: Signals, m: dict[str, float]) -> bool:
    return s.status == "diverged" or bool(m["nonfinite_loss"])


def _ratio_high(m: dict[str, float], t: Thresholds) -> bool:
    return m["update_ratio"] > t.ratio_high or m["update_ratio_first"] > t.ratio_first_high


def _killed_units(s: Signals, m: dict[str, float], t: Thresholds) -> bool:
    """ReLUs dead on the probe after large first steps: the rate killed them (at initialization they were
    alive, or the initialization check would have said so)."""
    return (bool(s.probe) and m["dead_fraction"] > t.dead and m["update_ratio_first"] > t.ratio_first_dead
            and not _dead_at_init(s, t))


def _dead_at_init(s: Signals, t: Thresholds) -> bool:
    layers = _init_layers(s.checks)
    return any(float(v.get("dead_fraction") or 0.0) > t.dead for v in layers.values())


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
    elif _killed_units(s, m, t) and _ended_high(m, t):
        out.append(Finding("lr_too_high", "warning",
                           _ev(m, "update_ratio_first", "dead_fraction", "loss_start", "loss_final", "accuracy"),
                           f"The first epoch's steps moved the weights by {m['update_ratio_first']:.1e} of their size "
                           f"(about 1e-3 is healthy) and {m['dead_fraction']:.0%} of a layer's ReLUs died during "
                           "training, leaving the loss high: lower the learning rate 3-10x (recipes E16, E18, E19).",
                           "E16"))
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
            and gap <= t.underfit_gap and m["late_progress"] < t.stall and not _ratio_high(m, t)):
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
        if is_finite(item.get("tolerance")):
            evidence["tolerance"] = item["tolerance"]
        advice = item.get("advice") or "The initial loss is far from chance (recipe D12)."
        return [Finding("initial_loss_off", "error", {k: v for k, v in evidence.items() if v is not None},
                        advice, item.get("recipe") or "D12")]
    return []


def _failed_checks(s: Signals) -> list[dict[str, Any]]:
    return [c for c in s.checks or [] if isinstance(c, dict) and c.get("passed", True) is False]


def _rule_stopped_by_checks(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    """A run the checks stopped before training: what each failed check recorded (recipes D12-D15)."""
    if m["epochs"] > 0:
        return []  # the run trained: its epochs speak
    out = []
    for item in _failed_checks(s):
        name, details = item.get("name"), item.get("details") or {}
        if name == "initial_loss":
            continue  # `initial_loss_off`
        if name == "initialization" and _init_units(s, t):
            continue  # `dead_units` / `saturated_units` at initialization say it with numbers
        evidence = {k: item[k] for k in ("measured", "expected") if is_finite(item.get(k))}
        if name == "overfit":
            cause = overfit_cause(details, s.num_classes)
            examples = details.get("examples", "a few")
            if cause is not None:
                out.append(Finding(cause.code, "error", {k: v for k, v in cause.evidence.items() if is_finite(v)},
                                   f"The overfit check could not fit {examples} training examples: "
                                   f"{cause.sentence} (recipes D14, {_RECIPE[cause.code]}).",
                                   f"D14, {_RECIPE[cause.code]}"))
            else:
                out.append(Finding("cannot_overfit", "error", evidence, item.get("advice") or
                                   f"The model could not fit {examples} training examples (recipe D14).", "D14"))
            continue
        out.append(Finding("check_failed", "error", evidence, item.get("advice") or f"The {name} check failed.",
                           item.get("recipe") or ""))
    return out


_RECIPE = {"lr_too_high": "E16", "lr_too_low": "E18", "vanishing_gradients": "E19", "underfitting": "E17"}


def _init_units(s: Signals, t: Thresholds) -> bool:
    """True when the initialization check's layers show dead or saturated units (`_rule_units` says so)."""
    return not s.probe and bool(_rule_units(s, {"dead_fraction": math.nan, "saturated_fraction": math.nan}, t))


def _rule_stopped(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    """An interrupted, killed or failed run: when and why it ended, so that no stopped run goes without a finding."""
    if s.status not in ("interrupted", "failed", "killed"):
        return []
    epochs = int(m["epochs"])
    when = f"after {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "before its first epoch ended"
    evidence = {"epochs": float(epochs)}
    if s.status == "killed":
        return [Finding("killed", "error", evidence,
                        f"The run's process is gone {when} (killed: SIGKILL, out of memory, a reboot) and it "
                        "never recorded an end: what it finished is kept (metrics.csv, monitor/, the best "
                        "checkpoint so far); run its config.toml again for the rest.", "")]
    if s.status == "interrupted":
        return [Finding("run_stopped", "info", evidence,
                        f"The run was interrupted {when}: the findings above (if any) read what it recorded until "
                        "then; run it again for the whole picture.", "")]
    reason = (s.stop_reason or "an error").splitlines()[0][:300]
    return [Finding("run_stopped", "error", evidence,
                    f"The run failed {when}: {reason}. Its error.txt holds the traceback; fix that and run it "
                    "again.", "")]


def _rule_labels(s: Signals, m: dict[str, float], t: Thresholds) -> list[Finding]:
    """Memorizing: train accuracy climbs while validation stays at chance (shuffled labels; recipes A2, D14)."""
    chance = m["chance_accuracy"]
    if _diverged(s, m) or not math.isfinite(chance) or m["epochs"] < 3:
        return []
    acc, val = m["accuracy"], m["val_accuracy"]
    if math.isfinite(val) and val < 1.5 * chance and acc > max(2 * chance, val + t.gap):
        return [Finding("labels_not_learnable", "error", _ev(m, "accuracy", "val_accuracy", "chance_accuracy"),
                        f"Train accuracy reaches {acc:.3f} while validation stays at chance ({val:.3f}, chance "
                        f"{chance:.3f}): the model memorizes labels that do not follow from the inputs. Check "
                        "that labels and inputs are paired (shuffled or misaligned rows, a wrong label column) "
                        "(recipes A2, D14).", "A2, D14")]
    return []


RULES: list[Rule] = [
    _rule_stopped_by_checks,
    _rule_stopped,
    _rule_labels,
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
    """Every rule's findings as one story (`one_story`): primary causes first, errors first.

    Example:

    >>> rows = [{"epoch": 1, "loss": 2.30}, {"epoch": 2, "loss": float("nan")}]
    >>> [(f.code, f.caused_by) for f in diagnose(Signals(epochs=rows, status="diverged"))]
    [('lr_too_high', None), ('diverged', 'lr_too_high')]
    """
    thresholds = thresholds or Thresholds()
    m = measure(signals)
    findings: list[Finding] = []
    for rule in RULES:
        for finding in rule(signals, m, thresholds):
            if all(f.code != finding.code for f in findings):  # one finding per code: the first rule's
                findings.append(finding)
    return one_story(findings, signals, m, thresholds)


# Causes that point opposite ways: never both as warnings or errors in one diagnosis.
_HIGH = ("lr_too_high", "update_ratio_high")
_LOW = ("lr_too_low", "update_ratio_low")
# consequence -> the findings that explain it, the likeliest first (a too-high rate kills ReLUs, saturates
# tanh units, blows up the loss; dead or saturated units stop the gradients and the learning).
EXPLAINED_BY: dict[str, tuple[str, ...]] = {
    "diverged": ("lr_too_high", "exploding_gradients"),
    "update_ratio_high": ("lr_too_high",),
    "update_ratio_low": ("lr_too_low", "vanishing_gradients", "dead_units", "saturated_units"),
    "exploding_gradients": ("lr_too_high",),
    "dead_units": ("lr_too_high",),
    "saturated_units": ("lr_too_high",),
    "vanishing_gradients": ("dead_units", "saturated_units"),
    "lr_too_low": ("vanishing_gradients", "dead_units", "saturated_units"),
    "not_learning": ("lr_too_high", "lr_too_low", "labels_not_learnable", "dead_units", "saturated_units",
                     "vanishing_gradients", "initial_loss_off"),
    "underfitting": ("lr_too_high", "lr_too_low", "dead_units", "saturated_units", "vanishing_gradients"),
    "plateau": ("lr_too_high", "underfitting", "lr_too_low"),
    "noisy_loss": ("lr_too_high",),
    "overfitting": ("labels_not_learnable",),
    "initial_loss_off": ("saturated_units", "dead_units"),
}
# A net that does not carry the signal: its poor validation says nothing about the labels.
_BROKEN_NET = ("saturated_units", "dead_units", "vanishing_gradients", "initial_loss_off", "exploding_gradients")
# Process warnings a run that ends well only reports (info): its updates, units and gradients did no harm.
# (A noisy loss stays a warning: healthy runs are far below its threshold, and it costs time even when the
# run ends well.)
_PROCESS = ("update_ratio_high", "update_ratio_low", "saturated_units", "dead_units", "vanishing_gradients",
            "exploding_gradients")


def _learned_well(s: Signals, m: dict[str, float], t: Thresholds) -> bool:
    """Reached a good fit (or is still falling fast towards one) without a train/validation gap."""
    if _diverged(s, m) or s.status in ("checks_failed", "failed"):
        return False
    if math.isfinite(m["accuracy"]):
        if not m["progress"] >= t.slow_progress:
            return False
        good = m["val_accuracy"] >= t.underfit_accuracy or m["late_progress"] >= t.stall
        return good and math.isfinite(m["gap"]) and m["gap"] <= t.gap
    # Regression: a converged fit is flat, so the errors against the targets' variance decide.
    return m["unexplained"] <= t.good_unexplained and not m["loss_gap"] > t.loss_gap


def _from_init(f: Finding) -> bool:
    return bool(f.evidence.get("from_initialization"))


def one_story(findings: list[Finding], signals: Signals, m: dict[str, float] | None = None,
              thresholds: Thresholds | None = None) -> list[Finding]:
    """Make findings consistent: opposite causes resolved, consequences marked `caused_by`, primary causes first.

    - A too-high and a too-low rate (or update ratio) are never both reported: the measured update sizes
      decide (a diverged run, or updates above the thresholds, is too high), the other side is dropped.
    - A run that learned well (`_learned_well`) keeps its process findings (update ratios, units,
      gradients) and a too-high-rate warning as info only.
    - A finding another one explains (`EXPLAINED_BY`) gets `caused_by` that root cause and its advice says
      to fix that first; the root takes the most severe of the severities it explains.
    - Order: primary causes (errors, warnings, info), then their consequences.
    """
    thresholds = thresholds or Thresholds()
    m = m if m is not None else measure(signals)
    serious = {f.code for f in findings if f.severity != "info"}
    if serious & set(_HIGH) and serious & set(_LOW):
        high = _diverged(signals, m) or _ratio_high(m, thresholds) or _killed_units(signals, m, thresholds) or any(
            f.code in _HIGH and f.severity == "error" for f in findings)
        drop = _LOW if high else _HIGH
        findings = [f for f in findings if f.code not in drop]
    if _learned_well(signals, m, thresholds):
        for f in findings:
            if (f.code in _PROCESS or f.code == "lr_too_high") and f.severity == "warning":
                f.severity = "info"
                f.advice = f"The run still learned well, so for information only: {f.advice}"
    serious = {f.code for f in findings if f.severity != "info"}
    if "labels_not_learnable" in serious and serious & set(_BROKEN_NET):
        # A net that cannot carry the signal also fits its training set alone: not evidence against the labels.
        findings = [f for f in findings if f.code != "labels_not_learnable"]
    present = {f.code: f for f in findings if f.severity != "info"}
    explained_by = dict(EXPLAINED_BY)
    if "vanishing_gradients" in present and not _diverged(signals, m) and not present.keys() & {
            "dead_units", "saturated_units"}:
        # Tiny weights (a deep sigmoid net at stddev 0.01): Adam's steps are large next to them, and no lower
        # rate makes the gradients reach the first layers.
        explained_by["lr_too_high"] = ("vanishing_gradients",)
        explained_by["update_ratio_high"] = ("vanishing_gradients",)
    for f in findings:
        f.caused_by = None
    for f in findings:
        if f.severity == "info" or (f.code in ("dead_units", "saturated_units") and _from_init(f)):
            continue  # units dead or saturated from the first step are a cause of their own (init, biases)
        cause = next((c for c in explained_by.get(f.code, ()) if c in present and c != f.code), None)
        f.caused_by = cause
    for f in findings:  # to the root: vanishing <- dead units <- too-high rate
        seen = {f.code}
        while f.caused_by and present[f.caused_by].caused_by and present[f.caused_by].caused_by not in seen:
            seen.add(f.caused_by)
            f.caused_by = present[f.caused_by].caused_by
    for f in findings:
        if f.caused_by:
            root = present[f.caused_by]
            if _ORDER[f.severity] < _ORDER[root.severity]:
                root.severity = f.severity
    for f in findings:
        if f.caused_by:
            f.advice = f"A consequence of `{f.caused_by}` (fix that first): {f.advice}"
    return sorted(findings, key=lambda f: (f.caused_by is not None, _ORDER[f.severity]))
