"""The hyperparameters a `python:` builder declares, as search ranges (`model.hp.NAME`).

kerasguide builds the model once with a recording `HyperParameters`
(`kerasguide.builders.declared_hyperparameters`) and turns each declaration
into a range: `Int`/`Float` with their bounds, `sampling="log"` as a log
scale (recipe H27), `Choice`/`Boolean` as choices; `Fixed` is not searched.
The search then varies them together with the config's own keys.
"""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

from kerasguide.builders import declared_hyperparameters
from kerasguide.config import ConfigError, RunConfig
from kerasguide.data import load_dataset
from kerasguide.search.space import HP_PREFIX, ParamRange, is_builder_key
from kerasguide.training import split_seed

__all__ = ["declared_ranges", "merge_declared"]


def _as_range(hp: Any) -> ParamRange | None:
    key = HP_PREFIX + hp.name
    if isinstance(hp, kt.engine.hyperparameters.Fixed):
        return None
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return ParamRange(key, "choice", choices=(True, False), default=hp.default)
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return ParamRange(key, "choice", choices=tuple(hp.values), default=hp.default)
    kind = "int" if isinstance(hp, kt.engine.hyperparameters.Int) else "float"
    log = getattr(hp, "sampling", "linear") in ("log", "reverse_log")
    return ParamRange(key, kind, low=hp.min_value, high=hp.max_value, log=log, step=hp.step, default=hp.default)


def declared_ranges(config: RunConfig) -> list[ParamRange]:
    """The ranges of what the config's builder declares ([] for kerasguide's own models and saved ones)."""
    if config.model.builder is None:
        return []
    dataset = load_dataset(config.data, split_seed(config))
    hp = declared_hyperparameters(config, dataset.input_shape, dataset.num_classes)
    return [r for r in (_as_range(p) for p in hp.space) if r is not None]


def merge_declared(ranges: list[ParamRange], declared: list[ParamRange]) -> list[ParamRange]:
    """The space with the builder's declarations: a `model.hp.NAME` the config's space names keeps its
    range there (checked to be the same kind, with the declared default); the others are added."""
    by_key = {r.key: r for r in declared}
    out = []
    for r in ranges:
        if is_builder_key(r.key):
            found = by_key.pop(r.key, None)
            if found is None:
                names = ", ".join(k[len(HP_PREFIX):] for k in (d.key for d in declared)) or "none"
                raise ConfigError(f"search.space: `{r.key}`: the builder declares no hyperparameter "
                                  f"{r.key[len(HP_PREFIX):]!r} (it declares: {names})")
            if (r.kind == "choice") != (found.kind == "choice"):
                raise ConfigError(f"search.space: `{r.key}` is declared by the builder as "
                                  f"{'choices' if found.kind == 'choice' else 'a number range'}: give it "
                                  f"{'choices = [...]' if found.kind == 'choice' else 'low/high'}")
            kind = found.kind if found.kind != "choice" else "choice"
            r = ParamRange(r.key, kind, low=r.low, high=r.high, log=r.log, step=r.step, choices=r.choices,
                           default=found.default)
        out.append(r)
    return out + list(by_key.values())
