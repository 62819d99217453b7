"""The search space: which config keys a search varies, and over what ranges.

Any scalar key of the run config can be searched, named by its dotted path
(`"optimizer.learning_rate"`, `"model.dropout"`, `"train.batch_size"`,
`"optimizer.name"`). A range is `low`..`high`, on a log scale with
`log = true` (recipe H27: learning rate and regularization strength act
multiplicatively, so `10 ** uniform(log10 low, log10 high)`), or a list of
`choices`. An empty space searches what matters most (recipe H25): the
learning rate and the L2 strength on log scales, and the dropout rate.

Everything here is plain Python (no TensorFlow), so the desktop app can
validate a space while the user types it.

Example:

```python
from kerasguide.config import RunConfig
from kerasguide.search.space import resolve_space

ranges = resolve_space(RunConfig())
[r.key for r in ranges]   # ['optimizer.learning_rate', 'model.l2', 'model.dropout']
```
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

from kerasguide.config import ConfigError, RunConfig, SearchConfig
from kerasguide.tasks import metric_direction

__all__ = [
    "DEFAULT_SPACE",
    "ParamRange",
    "Limits",
    "StagePlan",
    "resolve_space",
    "resolve_stages",
    "field_limits",
    "apply_values",
    "baseline_values",
    "objective_of",
    "HP_PREFIX",
    "is_builder_key",
]

# What matters most (recipe H25): the initial learning rate and the
# regularization strength (L2, dropout). Rates on log scales (H27).
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "optimizer.learning_rate": {"low": 1e-5, "high": 1e-1, "log": True},
    "model.l2": {"low": 1e-6, "high": 1e-2, "log": True},
    "model.dropout": {"low": 0.0, "high": 0.6},
}

# Sections whose keys make no sense to search (the search itself, ensembles).
_NOT_SEARCHABLE = ("search", "ensemble")

# `model.hp.NAME`: a hyperparameter a `python:` builder declares (`hp.Int("NAME", ...)`), set in `[model.hp]`.
HP_PREFIX = "model.hp."


@dataclass(frozen=True)
class ParamRange:
    """One searched key and its range: numeric `low`..`high` (`log` scale) or `choices`.

    Args:
        key: The dotted config key, e.g. `"optimizer.learning_rate"`.
        kind: `"float"`, `"int"` or `"choice"`.
        low: Lower bound (numeric kinds). Defaults to `None`.
        high: Upper bound (numeric kinds). Defaults to `None`.
        log: Sample and compare on a log10 scale. Defaults to `False`.
        step: Grid spacing (a factor when `log`). Defaults to `None`.
        choices: The values of a `"choice"` key. Defaults to `()`.
        default: The declared default of a builder's hyperparameter. Defaults to `None`.

    Example:

    ```python
    lr = ParamRange("optimizer.learning_rate", "float", 1e-5, 1e-1, log=True)
    lr.position(1e-3)   # 0.5: halfway in log space
    ```
    """

    key: str
    kind: Literal["float", "int", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    default: Any = None  # a builder's own hyperparameter: its declared default (the baseline)

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int", "choice"):
            raise ValueError(f"Argument `kind` must be float, int or choice. Received: kind={self.kind!r}")
        if self.kind == "choice":
            if not self.choices:
                raise ValueError(f"Argument `choices` must not be empty. Received: choices={self.choices!r}")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(
                f"Argument `low` must be less than `high`. Received: low={self.low}, high={self.high}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"Argument `low` must be > 0 on a log scale. Received: low={self.low}")

    @property
    def numeric(self) -> bool:
        return self.kind != "choice"

    def to_u(self, value: float) -> float:
        """The value on the scale the search works in: log10 for log ranges."""
        if self.log:
            return math.log10(value) if value > 0 else -math.inf
        return float(value)

    def from_u(self, u: float) -> float:
        return 10.0**u if self.log else float(u)

    @property
    def width_u(self) -> float:
        return self.to_u(self.high) - self.to_u(self.low)

    def position(self, value: float) -> float:
        """Where `value` sits in the range: 0 at `low`, 1 at `high` (log space for log)."""
        return (self.to_u(value) - self.to_u(self.low)) / self.width_u

    def with_bounds(self, low: float, high: float) -> ParamRange:
        """The same key over another range (ints rounded outward)."""
        if self.kind == "int":
            low, high = math.floor(low + 1e-9), math.ceil(high - 1e-9)
            if high <= low:
                high = low + 1
        return replace(self, low=low, high=high)

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        scale = " (log)" if self.log else ""
        return f"[{_fmt(self.low)}, {_fmt(self.high)}]{scale}"

    def to_param(self) -> dict[str, Any]:
        """This range as a `[search.space."key"]` table."""
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {"key": self.key, "kind": self.kind, **self.to_param()}
        return out if self.default is None else {**out, "default": self.default}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParamRange:
        return cls(
            key=data["key"], kind=data["kind"], low=data.get("low"), high=data.get("high"),
            log=bool(data.get("log", False)), step=data.get("step"),
            choices=tuple(data.get("choices") or ()), default=data.get("default"),
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


@dataclass(frozen=True)
class Limits:
    """What a config key allows: bounds from its schema (`ge`, `gt`, `le`, `lt`)."""

    lower: float | None = None
    lower_inclusive: bool = True
    upper: float | None = None
    upper_inclusive: bool = True

    def clip(self, value: float, other_end: float) -> float:
        """`value` moved inside the limits; an open bound is approached to 2 % of the range."""
        if self.lower is not None and (value < self.lower or (value == self.lower and not self.lower_inclusive)):
            value = self.lower if self.lower_inclusive else self.lower + 0.02 * (other_end - self.lower)
        if self.upper is not None and (value > self.upper or (value == self.upper and not self.upper_inclusive)):
            value = self.upper if self.upper_inclusive else self.upper - 0.02 * (self.upper - other_end)
        return value


@dataclass(frozen=True)
class StagePlan:
    """One stage of a coarse-to-fine search: how long each trial trains, how many trials."""

    epochs: int
    trials: int
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def is_builder_key(key: str) -> bool:
    """True for `model.hp.NAME`, a builder's own hyperparameter."""
    return key.startswith(HP_PREFIX) and key[len(HP_PREFIX):].strip() != ""


def _split(key: str) -> tuple[str, str]:
    parts = key.split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(
            f"search.space: `{key}` is not a config key; write it as section.key, "
            'e.g. "optimizer.learning_rate"'
        )
    return parts[0], parts[1]


def _field(key: str):
    section, name = _split(key)
    sections = {k: f for k, f in RunConfig.model_fields.items() if isinstance(f.annotation, type) and hasattr(f.annotation, "model_fields")}
    if section not in sections or section in _NOT_SEARCHABLE:
        allowed = ", ".join(s for s in sections if s not in _NOT_SEARCHABLE)
        raise ConfigError(f"search.space: `{key}`: no config section `{section}` to search (sections: {allowed})")
    model = sections[section].annotation
    if name not in model.model_fields:
        raise ConfigError(
            f"search.space: `{key}`: `{section}` has no key `{name}` "
            "(`kerasguide config --schema` lists them)"
        )
    return section, name, model.model_fields[name]


def _scalar_kinds(annotation: Any) -> set[str]:
    """The scalar kinds a field annotation admits: float, int, bool, str (literals as str/...)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {"literal"}
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        for arg in typing.get_args(annotation):
            kinds |= _scalar_kinds(arg)
        return kinds
    if origin is typing.Annotated:
        return _scalar_kinds(typing.get_args(annotation)[0])
    if annotation is type(None):
        return set()
    if annotation is bool:
        return {"bool"}
    if annotation is int:
        return {"int"}
    if annotation is float:
        return {"float"}
    if annotation is str:
        return {"str"}
    return {"other"}


def field_limits(key: str) -> Limits:
    """The bounds a config key's schema puts on its value (`ge`, `gt`, `le`, `lt`).

    A builder's own hyperparameter (`model.hp.NAME`) has none: the builder decides what it takes.
    """
    if is_builder_key(key):
        return Limits()
    _, _, info = _field(key)
    limits = Limits()
    for item in info.metadata:
        for attr, lower, inclusive in (("ge", True, True), ("gt", True, False), ("le", False, True), ("lt", False, False)):
            bound = getattr(item, attr, None)
            if bound is None:
                continue
            if lower:
                limits = replace(limits, lower=float(bound), lower_inclusive=inclusive)
            else:
                limits = replace(limits, upper=float(bound), upper_inclusive=inclusive)
    return limits


def _check_value(config: RunConfig, key: str, value: Any, what: str) -> Any:
    """Validate `value` for `key` the way the config would; returns it coerced."""
    section, name = _split(key)
    probe = getattr(config, section).model_copy()
    try:
        setattr(probe, name, value)
    except ValidationError as error:
        msg = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"search.space.\"{key}\": {what} = {value!r} is not a valid `{key}`: {msg}") from None
    return getattr(probe, name)


def _builder_range(key: str, param: SearchConfig.Param) -> ParamRange:
    """A `[search.space."model.hp.NAME"]` range, as written (`tune` checks it against the declaration)."""
    if param.choices is not None:
        return ParamRange(key, "choice", choices=tuple(dict.fromkeys(param.choices)))
    whole = float(param.low).is_integer() and float(param.high).is_integer() and not param.log
    try:
        return ParamRange(key, "int" if whole and isinstance(param.low, int) else "float", low=param.low,
                          high=param.high, log=param.log, step=param.step)
    except ValueError as error:
        raise ConfigError(f"search.space.\"{key}\": {error}") from None


def resolve_space(config: RunConfig) -> list[ParamRange]:
    """The config's search space, checked against the run config's schema.

    Args:
        config: The run config; `config.search.space` (or, when empty,
            `DEFAULT_SPACE`).

    Returns:
        A list of `ParamRange`, in the config's order.

    Raises:
        ConfigError: one line naming the key, when a key does not exist, is
            not a scalar, or a bound is not a valid value for it.
    """
    default = DEFAULT_SPACE
    if config.model.builder is not None or config.model.saved_model is not None:
        # The user's own model ignores the config's model keys: the learning rate (and, added by
        # `tune`, what the builder declares).
        default = {k: v for k, v in DEFAULT_SPACE.items() if not k.startswith("model.")}
    space = config.search.space or {k: SearchConfig.Param(**v) for k, v in default.items()}
    ranges = []
    for key, param in space.items():
        if is_builder_key(key):
            ranges.append(_builder_range(key, param))
            continue
        _, _, info = _field(key)
        kinds = _scalar_kinds(info.annotation)
        if "other" in kinds or not kinds:
            raise ConfigError(f"search.space: `{key}` is not a single number or name and cannot be searched")
        if param.choices is not None:
            values = []
            for value in param.choices:
                coerced = _check_value(config, key, value, "a choice")
                if coerced not in values:
                    values.append(coerced)
            if len({type(v) for v in values}) > 1:
                raise ConfigError(
                    f"search.space.\"{key}\": choices must all be of one type (all numbers or all names). "
                    f"Received: choices={list(param.choices)!r}"
                )
            ranges.append(ParamRange(key, "choice", choices=tuple(values)))
            continue
        if not kinds & {"int", "float"}:
            raise ConfigError(
                f"search.space: `{key}` is not numeric; give it `choices = [...]` instead of low/high"
            )
        is_int = "float" not in kinds
        low, high = param.low, param.high
        if is_int:
            if low != int(low) or high != int(high):
                raise ConfigError(
                    f"search.space.\"{key}\": `{key}` is an integer; low and high must be whole numbers. "
                    f"Received: low={low}, high={high}"
                )
            low, high = int(low), int(high)
        _check_value(config, key, low, "low")
        _check_value(config, key, high, "high")
        step = param.step
        if is_int and step is not None and step != int(step):
            raise ConfigError(f"search.space.\"{key}\": an integer key needs a whole `step`. Received: step={step}")
        ranges.append(
            ParamRange(key, "int" if is_int else "float", low=low, high=high, log=param.log,
                       step=(int(step) if is_int and step is not None else step))
        )
    if not ranges:  # pragma: no cover - DEFAULT_SPACE is never empty
        raise ConfigError("search.space: nothing to search")
    return ranges


def resolve_stages(config: RunConfig) -> list[StagePlan]:
    """The stages of the search (recipe H29), from `search.stages` or derived.

    With no stages given: a coarse stage of `search.trials` trials of one
    epoch, a finer one of half as many with 5 epochs, and a final one of a
    quarter as many with `train.epochs` (stages longer than `train.epochs`
    are dropped). ASHA and Hyperband are themselves coarse to fine over
    epochs: each gets one stage of `train.epochs` (ASHA: `kerasguide.search.asha`).
    """
    search = config.search
    if search.stages:
        n = len(search.stages)
        return [
            StagePlan(s.epochs, s.trials, _label(i, n)) for i, s in enumerate(search.stages)
        ]
    epochs, trials = config.train.epochs, search.trials
    if search.algorithm in ("hyperband", "asha"):
        return [StagePlan(epochs, trials, search.algorithm)]
    if epochs == 1:
        return [StagePlan(1, trials, _label(0, 1))]
    # Coarse: 1 epoch; fine: 5 epochs; final: train.epochs (stages not shorter dropped).
    plan = [(e, t) for e, t in ((1, trials), (5, math.ceil(trials / 2))) if e < epochs]
    plan.append((epochs, max(2, math.ceil(trials / 4))))
    return [StagePlan(e, t, _label(i, len(plan))) for i, (e, t) in enumerate(plan)]


def _label(index: int, count: int) -> str:
    if count == 1:
        return "single"
    if index == 0:
        return "coarse"
    return "final" if index == count - 1 else "fine"


def objective_of(config: RunConfig) -> tuple[str, str]:
    """`(metric, direction)`: the search's objective; losses and errors (mae, rmse) are minimized."""
    metric = config.search.objective or config.train.monitor_metric
    return metric, metric_direction(metric)


def apply_values(config: RunConfig, values: dict[str, Any], epochs: int | None = None) -> RunConfig:
    """A copy of `config` with the dotted keys of `values` set (validated).

    Keys keras-tuner adds for its own bookkeeping (`tuner/...`) are ignored.

    Raises:
        ConfigError: when a value is not valid for its key.
    """
    new = config.model_copy(deep=True)
    for key, value in values.items():
        if key.startswith("tuner/"):
            continue
        if is_builder_key(key):
            new.model.hp = {**new.model.hp, key[len(HP_PREFIX):]: value}
            continue
        section, name = _split(key)
        part = getattr(new, section)
        if isinstance(value, float) and _scalar_kinds(type(part).model_fields[name].annotation) == {"int"}:
            value = int(round(value))
        try:
            setattr(part, name, value)
        except ValidationError as error:
            msg = error.errors()[0]["msg"].removeprefix("Value error, ")
            raise ConfigError(f"`{key}` = {value!r}: {msg}") from None
    if epochs is not None:
        new.train.epochs = int(epochs)
    return new


def baseline_values(config: RunConfig, ranges: list[ParamRange]) -> tuple[dict[str, Any], list[str]]:
    """The config's own values of the searched keys: the baseline trial (recipe H31).

    A search starts from the published defaults the config holds (e.g. Adam
    at 1e-3). A value the space cannot hold (not a number, or <= 0 on a log
    scale, or not among the choices) is replaced and a note says so.

    Returns:
        `(values, notes)`.
    """
    values: dict[str, Any] = {}
    notes: list[str] = []
    for r in ranges:
        if is_builder_key(r.key):
            name = r.key[len(HP_PREFIX):]
            value = config.model.hp.get(name, r.default)
        else:
            section, name = _split(r.key)
            value = getattr(getattr(config, section), name)
        if r.kind == "choice":
            values[r.key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            mid = r.from_u((r.to_u(r.low) + r.to_u(r.high)) / 2)
            mid = int(round(mid)) if r.kind == "int" else mid
            notes.append(f"baseline: `{r.key}` = {value!r} is not a number; the baseline uses {_fmt(mid)}")
            values[r.key] = mid
        elif r.log and value <= 0:
            notes.append(
                f"baseline: `{r.key}` = {value!r} cannot sit on a log scale; the baseline uses "
                f"the range's low end {_fmt(r.low)}"
            )
            values[r.key] = r.low
        else:
            values[r.key] = int(value) if r.kind == "int" else float(value)
    return values, notes


def with_baseline_choices(ranges: list[ParamRange], baseline: dict[str, Any]) -> tuple[list[ParamRange], list[str]]:
    """Choices extended by the config's own value when the user left it out (H31)."""
    out, notes = [], []
    for r in ranges:
        if r.kind == "choice" and baseline.get(r.key) not in r.choices:
            notes.append(f"baseline: `{r.key}` = {baseline[r.key]!r} added to the choices so the baseline can run")
            r = replace(r, choices=(*r.choices, baseline[r.key]))
        out.append(r)
    return out, notes
