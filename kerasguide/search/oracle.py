"""keras-tuner oracles that start from the config's own values (recipes H26, H27, H31).

The search logic lives in keras-tuner's oracles: random search (preferred,
Bergstra & Bengio), grid, Bayesian optimization and Hyperband (early
stopping of bad trials). kerasguide adds one thing to each: the first trial
of a stage is the baseline, the hyperparameters the config holds (the
published defaults it starts from, recipe H31). Each hyperparameter's
keras-tuner `default` is the config's value, and grid search already starts
from the defaults; the others start there through `_random_values`, which
all of them (and Hyperband's first round) draw from.

Log ranges become `sampling="log"` hyperparameters: keras-tuner then draws
`low * (high / low) ** uniform(0, 1)`, i.e. `10 ** uniform(log10 low,
log10 high)` (recipe H27).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from kerasguide._logging import import_tensorflow
from kerasguide.io import atomic_write_text
from kerasguide.search.space import ParamRange

import_tensorflow()  # before keras-tuner imports Keras: hides TensorFlow's start-up chatter

import keras_tuner as kt  # noqa: E402

__all__ = [
    "build_hyperparameters",
    "make_oracle",
    "BaselineRandomSearchOracle",
    "BaselineGridSearchOracle",
    "BaselineBayesianOptimizationOracle",
    "BaselineHyperbandOracle",
]


def _grid_step(rng: ParamRange, points: int) -> float:
    # keras-tuner's grid needs a step for a Float (without one it takes 10
    # values in an unordered set); `points` values from low to high inclusive.
    # Shrunk a hair so rounding never drops the last point.
    if rng.log:
        return (rng.high / rng.low) ** (1.0 / (points - 1)) * (1 - 1e-9)
    return (rng.high - rng.low) / (points - 1) * (1 - 1e-9)


def build_hyperparameters(
    ranges: list[ParamRange], defaults: dict[str, Any] | None = None, grid_points: int | None = None
) -> kt.HyperParameters:
    """keras-tuner hyperparameters for a list of ranges.

    Args:
        ranges: The stage's ranges.
        defaults: The baseline value of each key (the config's own).
            Defaults to `None` (keras-tuner's defaults: the low ends).
        grid_points: For grid search: values per numeric key without a
            `step`. Defaults to `None` (continuous ranges).

    Returns:
        A `keras_tuner.HyperParameters`; log ranges use `sampling="log"`.

    Example:

    ```python
    hp = build_hyperparameters([ParamRange("optimizer.learning_rate", "float", 1e-5, 1e-1, log=True)])
    hp.space[0].random_sample(seed=0)   # a log-uniform draw
    ```
    """
    defaults = defaults or {}
    hp = kt.HyperParameters()
    for rng in ranges:
        default = defaults.get(rng.key)
        if rng.kind == "choice":
            hp.Choice(rng.key, list(rng.choices), default=default)
            continue
        sampling = "log" if rng.log else "linear"
        step = rng.step
        if step is None and grid_points:
            step = _grid_step(rng, grid_points)
        if rng.kind == "int":
            int_step = int(step) if step is not None else None
            if rng.log and int_step is not None and int_step <= 1:
                int_step = None
            hp.Int(rng.key, int(rng.low), int(rng.high), step=int_step, sampling=sampling,
                   default=None if default is None else int(default))
        else:
            hp.Float(rng.key, float(rng.low), float(rng.high), step=step, sampling=sampling,
                     default=None if default is None else float(default))
    return hp


class _BaselineFirst:
    """Mixin: the first values an oracle draws are the hyperparameters' defaults (H31); state written atomically."""

    # keras-tuner writes oracle.json and trial.json in place: a SIGKILL mid-write would leave half a file,
    # and the search could not resume. The same JSON, written beside and renamed over.
    def save(self):
        atomic_write_text(self._get_oracle_fname(), json.dumps(self.get_state()))

    def _save_trial(self, trial):
        atomic_write_text(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"),
                          json.dumps(trial.get_state()))

    def _random_values(self):
        if not self.trials and not self.ongoing_trials:
            values = {hp.name: hp.default for hp in self.hyperparameters.space}
            if not self._duplicate(values):
                return values
        return super()._random_values()


class BaselineRandomSearchOracle(_BaselineFirst, kt.oracles.RandomSearchOracle):
    """keras-tuner's random search, starting from the config's values."""


class BaselineGridSearchOracle(_BaselineFirst, kt.oracles.GridSearchOracle):
    """keras-tuner's grid search (which itself starts from the defaults)."""


class BaselineBayesianOptimizationOracle(_BaselineFirst, kt.oracles.BayesianOptimizationOracle):
    """keras-tuner's Gaussian-process Bayesian optimization, starting from the config's values."""


class BaselineHyperbandOracle(_BaselineFirst, kt.oracles.HyperbandOracle):
    """keras-tuner's Hyperband (successive halving), the config's values among the first round."""


def make_oracle(
    algorithm: str,
    hyperparameters: kt.HyperParameters,
    metric: str,
    direction: str,
    trials: int,
    seed: int,
    max_epochs: int = 1,
    factor: int = 3,
    min_epochs: int | None = None,
) -> kt.Oracle:
    """The oracle of one stage.

    Args:
        algorithm: `"asha"`, `"random"`, `"grid"`, `"bayesian"` or `"hyperband"`.
        hyperparameters: The stage's space (`build_hyperparameters`).
        metric: The objective's metric name, e.g. `"val_accuracy"`.
        direction: `"max"` or `"min"`.
        trials: Trials in the stage (Hyperband sets its own count; ASHA: the
            configurations started at its first rung).
        seed: Sampling seed (keras-tuner treats 0 as "random": pass >= 1).
        max_epochs: ASHA and Hyperband: epochs of the longest trials. Defaults to `1`.
        factor: ASHA and Hyperband: reduction factor. Defaults to `3`.
        min_epochs: ASHA: epochs of the first rung (`kerasguide.search.asha.asha_rungs`).
            Defaults to `None`.
    """
    if trials < 1:
        raise ValueError(f"Argument `trials` must be >= 1. Received: trials={trials}")
    if seed < 1:
        raise ValueError(f"Argument `seed` must be >= 1 (keras-tuner draws a random one for 0). Received: seed={seed}")
    common = dict(
        objective=kt.Objective(metric, direction),
        hyperparameters=hyperparameters,
        allow_new_entries=False,
        tune_new_entries=False,
        seed=seed,
        max_retries_per_trial=0,
        # A coarse stage may well diverge several times in a row; kerasguide
        # decides itself when a search is hopeless (the baseline failing).
        max_consecutive_failed_trials=10**9,
    )
    if algorithm == "asha":
        from kerasguide.search.asha import ASHAOracle, asha_rungs  # asha imports this module's mixin

        rungs = asha_rungs(max(1, int(max_epochs)), factor, min_epochs, trials)
        oracle = ASHAOracle(rungs=rungs, trials=trials, factor=factor, **common)
    elif algorithm == "random":
        oracle = BaselineRandomSearchOracle(max_trials=trials, **common)
    elif algorithm == "grid":
        oracle = BaselineGridSearchOracle(max_trials=trials, **common)
    elif algorithm == "bayesian":
        dims = len(hyperparameters.space)
        initial = max(2, min(trials - 1, 3 * dims)) if trials > 2 else trials
        oracle = BaselineBayesianOptimizationOracle(max_trials=trials, num_initial_points=initial, **common)
    elif algorithm == "hyperband":
        oracle = BaselineHyperbandOracle(max_epochs=max(1, int(max_epochs)), factor=factor,
                                         hyperband_iterations=1, **common)
    else:
        raise ValueError(f"Argument `algorithm` must be asha, random, grid, bayesian or hyperband. Received: {algorithm!r}")
    oracle.verbose = 0  # keras-tuner prints trial tables on stdout; kerasguide reports through its logger
    return oracle


def is_finite_score(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
