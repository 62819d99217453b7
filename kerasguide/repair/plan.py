"""`plan_repair`: from a run's findings to concrete config changes (pure, no TensorFlow).

Each diagnosis code maps to a change of the run config that the recipes name
for it. The mapping reads only the config, the findings and run.json's record
(the LR range test's rate, whether the model came compiled), so it is a pure
function, tested code by code.

Order. Primary findings (`caused_by` None) come before the ones they explain,
errors before warnings. A finding explained by another one in the list gets
no change of its own: fixing the cause is the change. One cause at a time
where two would blur each other: a change of the initialization (He/Glorot,
the biases, the weights' scale) defers this round's learning-rate changes,
because the update:weight ratio the rate findings read is measured against
weights a bad initialization distorts (tiny weights make any rate look too
high); the next round re-reads the rate on the repaired weights.

The learning rate. A fixed rate that is too high or too low is replaced by
the LR range test's (`optimizer.learning_rate = "auto"`, recipe G24): one
sweep finds the right decade, where ÷10 or ×10 might need several rounds. A
rate the range test already chose (run.json's `lr_find.chosen`) is divided by
10 after a divergence (an error), by 3 after a warning, and multiplied by 10
when too low, as a fixed rate.

Your own model. With `model.kind = "python:..."` or `"keras:..."` the model is
built (or loaded) by your code, so kerasguide's `model.*` keys do not reach
it: a `[model.hp]` value the builder declares is changed where its name says
what it is (`units`, `dropout`, ...), otherwise `Repair.cannot` says what
should change and where. A model that comes compiled keeps its own optimizer:
no `optimizer.*` or `schedule.*` key reaches it either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kerasguide.config import RunConfig, config_from_dict

__all__ = ["Repair", "plan_repair", "apply_repair", "REPAIRS", "flat_config", "config_diff"]

# What each code's repair is, in words (README, `kerasguide fix --help`).
REPAIRS = {
    "diverged": "the LR range test's rate for a fixed one; a range-tested rate ÷ 10",
    "lr_too_high": "the LR range test's rate for a fixed one; a range-tested rate ÷ 10 (error) or ÷ 3 (warning)",
    "update_ratio_high": "as lr_too_high; a strong L1/L2 penalty (which shrinks the weights) lightened first",
    "lr_too_low": "the LR range test's rate for a fixed one; a range-tested rate × 10",
    "update_ratio_low": "as lr_too_low",
    "dead_units": "biases 0 and He initialization; with both already, a lower rate",
    "saturated_units": "Glorot initialization; with it already, batch normalization",
    "vanishing_gradients": "He (ReLU) or Glorot (tanh/sigmoid) initialization; ReLUs for a deep tanh/sigmoid net; "
                           "batch normalization for a well-initialized one",
    "exploding_gradients": "gradient clipping (global_clipnorm 1) and He/Glorot initialization",
    "initial_loss_off": "biases 0 and He/Glorot initialization",
    "not_learning": "what its evidence supports: a higher rate for tiny updates, else the initialization",
    "underfitting": "less regularization (dropout, L1/L2), then wider layers (at least 64 units, or 2x)",
    "overfitting": "more regularization (dropout 0.3-0.5, L2 × 10); more data is no config change",
    "noisy_loss": "a batch twice as large",
    "plateau": "reduce the rate on a plateau (a constant rate only)",
    "labels_not_learnable": "none: the labels look unrelated to the inputs, which no config change fixes",
}

_ORDER = {"error": 0, "warning": 1, "info": 2}
_RELU = ("relu", "leaky_relu", "elu", "gelu")
_RATE_DOWN = ("diverged", "lr_too_high", "update_ratio_high")
_RATE_UP = ("lr_too_low", "update_ratio_low")
_INIT_KEYS = ("model.kernel_initializer", "model.init_stddev", "model.bias_init", "model.activation")
_MAX_WIDTH = 1024
_NARROW = 16  # hidden units below which an underfitting model is widened first
_DEEP = 4  # hidden layers from which a sigmoid/tanh net's vanishing gradients call for ReLUs

# model.* key -> words in a [model.hp] name that say it is that key (a python: builder's own hyperparameters).
_HP_WORDS = {
    "model.hidden": ("units", "width", "hidden", "neurons", "filters"),
    "model.dropout": ("dropout",),
    "model.l2": ("l2", "weight_decay"),
    "model.l1": ("l1",),
}


@dataclass
class Repair:
    """What `plan_repair` would change.

    Args:
        changes: Dotted config key -> `(old, new)`. Defaults to `{}`.
        reasons: One line per finding acted on: the code and why the change follows. Defaults to `[]`.
        cannot: What should change but a config change cannot (more data, the labels, your builder's code).
            Defaults to `[]`.
        acted_on: The codes of the findings this repair answers. Defaults to `[]`.
    """

    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    cannot: list[str] = field(default_factory=list)
    acted_on: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `changes` as `{key: [old, new]}`."""
        return {"changes": {k: [old, new] for k, (old, new) in self.changes.items()}, "reasons": list(self.reasons),
                "cannot": list(self.cannot), "acted_on": list(self.acted_on)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Repair:
        changes = {k: (v[0], v[1]) for k, v in (data.get("changes") or {}).items()
                   if isinstance(v, (list, tuple)) and len(v) == 2}
        return cls(changes, list(data.get("reasons") or []), list(data.get("cannot") or []),
                   list(data.get("acted_on") or []))


@dataclass
class _F:
    code: str
    severity: str
    caused_by: str | None
    evidence: dict[str, Any]


def _normal(finding: Any) -> _F | None:
    # A `Finding` or its dict (diagnosis.json): codes newer than this module's vocabulary are kept too.
    get = finding.get if isinstance(finding, Mapping) else (lambda k, d=None: getattr(finding, k, d))
    code, severity = get("code"), get("severity", "warning")
    if not isinstance(code, str):
        return None
    caused_by = get("caused_by")
    evidence = get("evidence") or {}
    return _F(code, severity if severity in _ORDER else "warning", caused_by if isinstance(caused_by, str) else None,
              dict(evidence) if isinstance(evidence, Mapping) else {})


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return repr(value) if isinstance(value, str) else str(value)


class _Planner:
    def __init__(self, config: RunConfig, findings: list[_F], record: Mapping[str, Any]):
        self.config = config
        self.findings = findings
        self.codes = {f.code for f in findings}
        self.record = record
        self.repair = Repair()
        self.kind = config.model.kind
        self.own_model = self.kind not in ("mlp", "cnn")
        self.own_compile = bool(record.get("own_compile"))
        self.rate_requests: list[tuple[_F, str, str]] = []

    # ------------------------------------------------------------ helpers
    def current(self, key: str) -> Any:
        if key in self.repair.changes:
            return self.repair.changes[key][1]
        section, _, name = key.partition(".")
        value = getattr(self.config, section)
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else getattr(value, part)
        return value

    def set(self, key: str, new: Any, why: str) -> bool:
        """Plan `key = new`; False (and a `cannot` line) where the key does not reach the model."""
        old = self.current(key)
        if old == new or key in self.repair.changes:
            return key in self.repair.changes and self.repair.changes[key][1] == new
        if key.startswith("model.") and self.own_model and key != "model.freeze":
            return self._via_hp(key, new, why)
        if key.startswith(("optimizer.", "schedule.")) and self.own_compile:
            self.repair.cannot.append(f"{why}: {key} = {_fmt(new)} would, but your model comes compiled with its "
                                      "own optimizer, which the config's [optimizer] and [schedule] do not reach: "
                                      f"change it where {self.kind} compiles it")
            return False
        self.repair.changes[key] = (old, new)
        return True

    def _via_hp(self, key: str, new: Any, why: str) -> bool:
        words = _HP_WORDS.get(key, ())
        hp = dict(self.config.model.hp)
        names = [n for n, v in hp.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and any(w in n.lower() for w in words)]
        changed = False
        for name in names:
            old = hp[name]
            value = _hp_value(key, old, new)
            if value is not None and value != old:
                self.repair.changes[f"model.hp.{name}"] = (old, value)
                changed = True
        if not changed:
            where = (f"{self.config.model.builder[0]}:{self.config.model.builder[1]}" if self.config.model.builder
                     else self.kind)
            self.repair.cannot.append(f"{why}: {key} = {_fmt(new)} would, but model.kind = {self.kind!r} builds its "
                                      f"own model, which kerasguide's model.* keys do not reach: change it in {where} "
                                      "(or declare it as a hyperparameter and set it in [model.hp])")
        return changed

    def reason(self, f: _F, text: str) -> None:
        self.repair.reasons.append(f"{f.code} ({f.severity}): {text}")
        if f.code not in self.repair.acted_on:
            self.repair.acted_on.append(f.code)

    @property
    def activation(self) -> str:
        return self.config.model.activation

    def good_init(self) -> str:
        return "he_normal" if self.activation in _RELU else "glorot_normal"

    def init_is_good(self) -> bool:
        init = self.current("model.kernel_initializer")
        family = "he_" if self.activation in _RELU else "glorot_"
        return init.startswith(family)

    def fix_init(self, f: _F, why: str) -> list[str]:
        """He for ReLUs, Glorot for tanh/sigmoid, biases 0: the changes planned (keys)."""
        done = []
        bias = self.current("model.bias_init")
        if bias != 0.0 and not (self.activation in _RELU and 0 < bias <= 0.01):
            if self.set("model.bias_init", 0.0, f.code):
                done.append(f"model.bias_init {_fmt(bias)} -> 0 (B7)")
        if not self.init_is_good():
            init, new = self.current("model.kernel_initializer"), self.good_init()
            extra = f" (stddev {_fmt(self.config.model.init_stddev)})" if init == "normal" else ""
            if self.set("model.kernel_initializer", new, f.code):
                done.append(f"model.kernel_initializer {init}{extra} -> {new}: "
                            f"{'He for ReLUs' if new.startswith('he') else 'Glorot for ' + self.activation} (B4)")
        if done:
            self.reason(f, f"{why}: " + "; ".join(done))
        return done

    def rate(self, f: _F, direction: str, why: str) -> None:
        """Ask for a learning-rate change; `plan` applies the first asked (see the module docstring)."""
        self.rate_requests.append((f, direction, why))

    def _apply_rate(self, f: _F, direction: str, why: str) -> None:
        lr = self.current("optimizer.learning_rate")
        chosen = (self.record.get("lr_find") or {}).get("chosen")
        if lr == "auto":
            if not isinstance(chosen, (int, float)) or not math.isfinite(chosen) or chosen <= 0:
                self.repair.cannot.append(f"{f.code}: the LR range test chose the rate, but run.json records no "
                                          "rate to start from: set optimizer.learning_rate by hand")
                return
            factor = 10.0 if direction == "up" or f.severity == "error" else 3.0
            new = _round(chosen * factor if direction == "up" else chosen / factor)
            text = (f"{why}: the range test's rate {_fmt(chosen)} "
                    f"{'×' if direction == 'up' else '÷'} {factor:g} = {_fmt(new)}, fixed (E18, G24)")
        else:
            new = "auto"
            text = (f"{why}: the fixed rate {_fmt(lr)} makes way for the LR range test's "
                    "(optimizer.learning_rate = \"auto\", G24)")
        if self.set("optimizer.learning_rate", new, f.code):
            self.reason(f, text)

    # ------------------------------------------------------------ the codes
    def plan(self) -> Repair:
        explained = [f for f in self.findings if f.caused_by and f.caused_by in self.codes]
        primary = [f for f in self.findings if f not in explained]
        for f in sorted(primary, key=lambda f: _ORDER[f.severity]):
            handler = getattr(self, f"_{f.code}", None)
            if handler is not None:
                handler(f)
        if self.rate_requests:
            if any(k in self.repair.changes for k in _INIT_KEYS):
                # One cause at a time: the initialization first (the ratios are read against its weights).
                codes = ", ".join(dict.fromkeys(f.code for f, _, _ in self.rate_requests))
                self.repair.reasons.append(
                    f"{codes}: the learning rate waits for the next round: a bad initialization distorts the "
                    "update:weight ratios these findings read")
            else:
                first = min(self.rate_requests, key=lambda r: _ORDER[r[0].severity])
                self._apply_rate(*first)
                for f, _, _ in self.rate_requests:
                    if f is not first[0] and f.code not in self.repair.acted_on:
                        self.reason(f, "answered by the learning-rate change above")
        for f in explained:
            self.reason(f, f"explained by {f.caused_by}: repaired with it")
        return self.repair

    def _diverged(self, f: _F) -> None:
        self.rate(f, "down", "the loss exploded")

    def _lr_too_high(self, f: _F) -> None:
        if f.severity == "error" or not self._strong_penalty(f):
            self.rate(f, "down", "the rate is too high")

    def _update_ratio_high(self, f: _F) -> None:
        if not self._strong_penalty(f):
            self.rate(f, "down", "updates far above 1e-3 of the weights")

    def _strong_penalty(self, f: _F) -> bool:
        """A strong L1/L2 penalty shrinks the weights the update:weight ratio divides by: lighten it first."""
        m = self.config.model
        done = [key for key, value in (("model.l2", m.l2), ("model.l1", m.l1))
                if value > 1e-3 and self.set(key, 1e-4, f.code)]
        if done:
            self.reason(f, "a strong penalty keeps the weights small, so every update looks large against them: "
                        + "; ".join(f"{key} {_fmt(self.repair.changes[key][0])} -> 1e-4" for key in done)
                        + " (C9, E18)")
        return bool(done) or any(k in self.repair.changes for k in ("model.l2", "model.l1"))

    def _lr_too_low(self, f: _F) -> None:
        self.rate(f, "up", "the rate is too low")

    def _update_ratio_low(self, f: _F) -> None:
        self.rate(f, "up", "updates far below 1e-3 of the weights")

    def _dead_units(self, f: _F) -> None:
        if self.fix_init(f, "dead ReLUs"):
            return
        self.rate(f, "down", "dead ReLUs with He init and zero biases: a too-high rate kills them")

    def _saturated_units(self, f: _F) -> None:
        if self.activation in _RELU:
            return
        if self.fix_init(f, "saturated units"):
            return
        if self.set("model.batch_norm", True, f.code):
            self.reason(f, "saturated units with Glorot init: batch normalization keeps them in range (B8)")

    def _vanishing_gradients(self, f: _F) -> None:
        if "dead_units" in self.codes:
            self.reason(f, "dead ReLUs pass no gradient: repaired with dead_units")
            return
        if len(self.config.model.hidden) >= _DEEP and self.activation not in _RELU:
            # Each sigmoid/tanh layer scales the gradient by its slope (at most 1/4 for a sigmoid): deep, no
            # initialization keeps it alive, and the range test finds no rate on such a net (measured:
            # Glorot and batch norm on 6 sigmoid layers, 0.60 on digits; ReLU and He, 0.97).
            bias = self.current("model.bias_init")
            if self.set("model.activation", "relu", f.code):
                self.set("model.kernel_initializer", "he_normal", f.code)
                if bias < 0:
                    self.set("model.bias_init", 0.0, f.code)
                self.reason(f, f"{len(self.config.model.hidden)} {self.activation} layers: model.activation "
                            f"{self.activation} -> relu with He initialization, whose gradients do not shrink "
                            "layer by layer (B4, E19)")
                return
        done = self.fix_init(f, "vanishing gradients")
        if not done and self.set("model.batch_norm", True, f.code):
            self.reason(f, "well-initialized already: batch normalization keeps the gradients' scale layer to "
                        "layer (B8)")

    def _exploding_gradients(self, f: _F) -> None:
        self.fix_init(f, "exploding gradients")
        if self.current("optimizer.global_clipnorm") is None and self.set("optimizer.global_clipnorm", 1.0, f.code):
            self.reason(f, "clip the gradients' global norm at 1 (E19)")

    def _initial_loss_off(self, f: _F) -> None:
        if not self.fix_init(f, "the initial loss is far from chance"):
            self.repair.cannot.append("initial_loss_off: the initial loss is off with He/Glorot initialization and "
                                      "zero biases: check the preprocessing and the labels (D12)")

    def _not_learning(self, f: _F) -> None:
        others = self.codes & {"diverged", "lr_too_high", "update_ratio_high", "dead_units", "vanishing_gradients",
                               "saturated_units", "exploding_gradients", "initial_loss_off", "lr_too_low",
                               "update_ratio_low", "labels_not_learnable"}
        if others:
            self.reason(f, f"explained by {', '.join(sorted(others))}: repaired with them")
            return
        ratio = f.evidence.get("update_ratio")
        if isinstance(ratio, (int, float)) and math.isfinite(ratio) and ratio < 3e-5:
            self.rate(f, "up", "tiny updates")
            return
        if self.fix_init(f, "not learning"):
            return
        if self.current("optimizer.learning_rate") != "auto":
            self.rate(f, "up", "not learning with a sound initialization")
            return
        self.repair.cannot.append("not_learning: a sound initialization and a range-tested rate, and still no "
                                  "learning: check that the labels match the inputs (D14)")

    def _underfitting(self, f: _F) -> None:
        done = []
        m = self.config.model
        gap = f.evidence.get("gap")
        narrow = min(m.hidden, default=_NARROW) < _NARROW  # a bottleneck: widen it whatever the regularization
        # The training accuracy (measured under dropout) below the validation's: dropout holds the fit back.
        held_back = isinstance(gap, (int, float)) and gap < 0 and m.dropout > 0 and not narrow
        if (m.dropout > 0.3 or held_back) and self.set("model.dropout", 0.2 if m.dropout > 0.5 else 0.0, f.code):
            done.append(f"model.dropout {_fmt(m.dropout)} -> {_fmt(self.current('model.dropout'))}"
                        + (" (the training accuracy, measured under dropout, is below the validation's)"
                           if held_back and m.dropout <= 0.3 else ""))
        for key, value in (("model.l2", m.l2), ("model.l1", m.l1)):
            if value > 1e-3 and self.set(key, 1e-4, f.code):
                done.append(f"{key} {_fmt(value)} -> 1e-4")
        if self.current("model.dropout") == m.dropout and m.dropconnect > 0.3 and self.set(
                "model.dropconnect", 0.0, f.code):
            done.append(f"model.dropconnect {_fmt(m.dropconnect)} -> 0")
        if done:
            self.reason(f, "regularization too strong for this model: " + "; ".join(done) + " (C9, C11)")
            if not narrow:
                return
        wider = [min(_MAX_WIDTH, max(64, 2 * w)) for w in m.hidden]
        if wider != list(m.hidden) and self.set("model.hidden", wider, f.code):
            self.reason(f, f"the model is too small: model.hidden {list(m.hidden)} -> {wider} (E17)")
        elif not self.own_model:
            self.repair.cannot.append("underfitting: the layers are already wide and lightly regularized: "
                                      "add layers or train longer (train.epochs)")

    def _overfitting(self, f: _F) -> None:
        m = self.config.model
        done = []
        dropout = min(0.5, max(0.3, round(m.dropout + 0.2, 2)))
        if dropout > m.dropout and self.set("model.dropout", dropout, f.code):
            done.append(f"model.dropout {_fmt(m.dropout)} -> {_fmt(dropout)}")
        l2 = min(1e-2, max(1e-4, m.l2 * 10))
        if l2 > m.l2 and self.set("model.l2", _round(l2), f.code):
            done.append(f"model.l2 {_fmt(m.l2)} -> {_fmt(_round(l2))}")
        if not done and self.config.train.early_stopping_patience is None:
            if self.set("train.early_stopping_patience", 5, f.code):
                done.append("train.early_stopping_patience -> 5")
        if done:
            self.reason(f, "regularize more: " + "; ".join(done) + " (C9, C11, E17)")
        subset = self.config.data.subset
        self.repair.cannot.append(
            "overfitting: more data is the surest cure, and no config change makes data"
            + (f" (data.subset = {subset} keeps only {subset} training examples: raising it is yours to decide)"
               if subset else ""))

    def _noisy_loss(self, f: _F) -> None:
        batch = self.config.train.batch_size
        streamed = bool((self.record.get("data") or {}).get("streamed")) and self.config.data.source.startswith(
            "python:")
        if streamed:
            self.repair.cannot.append("noisy_loss: a larger batch would help, but your tf.data datasets are batched "
                                      "by your own function: batch them larger there")
            return
        if self.set("train.batch_size", batch * 2, f.code):
            self.reason(f, f"a batch twice as large smooths the loss: train.batch_size {batch} -> {batch * 2} (E16)")

    def _plateau(self, f: _F) -> None:
        s = self.config.schedule
        if s.kind != "constant" or s.warmup_epochs > 0 or s.reduce_on_plateau:
            return  # a schedule already decays the rate
        if self.set("schedule.reduce_on_plateau", True, f.code):
            self.reason(f, "decay the rate on a plateau: schedule.reduce_on_plateau = true (x0.5, G22)")

    def _cannot_overfit(self, f: _F) -> None:
        if not self.repair.acted_on:  # a cause the check's records name is a finding of its own, acted on above
            self.repair.cannot.append("cannot_overfit: the model could not fit a tiny subset and the check's "
                                      "records name no cause: check the loss against the labels and the data "
                                      "pipeline (D14)")

    def _check_failed(self, f: _F) -> None:
        self.repair.cannot.append("check_failed: a sanity check failed before training: its advice is in checks.json "
                                  "(no config change is known for it)")

    def _run_stopped(self, f: _F) -> None:
        if f.severity == "error":
            self.repair.cannot.append("run_stopped: the run ended on an error before its last epoch: fix the "
                                      "error (error.txt) and run it again")

    def _killed(self, f: _F) -> None:
        self.repair.cannot.append("killed: the run's process was killed before it ended: no config change "
                                  "explains that; run it again")

    def _labels_not_learnable(self, f: _F) -> None:
        self.repair.cannot.append("labels_not_learnable: cannot be fixed by a config change: check the labels "
                                  "(they look shuffled or unrelated to the inputs, D14)")
        self.repair.acted_on.append(f.code)


def _round(value: float) -> float:
    return float(f"{value:.3g}")


def _hp_value(key: str, old: float, new: Any) -> float | None:
    # The builder's own hyperparameter moved as the model.* key would be.
    if key == "model.hidden":
        return min(_MAX_WIDTH, max(64, 2 * int(old))) if isinstance(old, int) else None
    return type(old)(new) if isinstance(new, (int, float)) else None


def plan_repair(config: RunConfig, findings: Iterable[Any], record: Mapping[str, Any] | None = None) -> Repair:
    """The config changes that answer a run's findings (see the module docstring for the rules).

    Args:
        config: The run's config (its config.toml).
        findings: `Finding`s, or their dicts from diagnosis.json.
        record: run.json (the LR range test's `lr_find.chosen`, `own_compile`, the data summary). Defaults to
            `None` (nothing recorded).

    Returns:
        A `Repair`; empty `changes` when nothing can be changed (`cannot` then says why).

    Example:

    >>> from kerasguide.config import RunConfig
    >>> cfg = RunConfig()
    >>> cfg.model.bias_init = -5.0
    >>> plan_repair(cfg, [{"code": "dead_units", "severity": "warning"}]).changes
    {'model.bias_init': (-5.0, 0.0)}
    """
    normal = [f for f in (_normal(x) for x in findings) if f is not None]
    return _Planner(config, normal, dict(record or {})).plan()


def apply_repair(config: RunConfig, repair: Repair) -> RunConfig:
    """A new config with the repair's changes (validated: a bad value raises `ConfigError`)."""
    data = config.to_dict()
    for key, (_, new) in repair.changes.items():
        target = data
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = new
    return config_from_dict(data, "the repaired config")


def flat_config(config: RunConfig) -> dict[str, Any]:
    """Every key of a config, dotted (`model.hidden`), for diffs."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = value

    walk("", config.to_dict())
    return out


def config_diff(before: RunConfig, after: RunConfig) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> `(before, after)` for every key that differs (None: absent)."""
    a, b = flat_config(before), flat_config(after)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
