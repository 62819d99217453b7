"""The LR range test (recipe G24): sweep the learning rate, watch the loss, suggest a rate.

`LRFinder(model).find(x, y)` trains the user's own compiled Keras model
(Sequential, functional or subclassed; any optimizer; NumPy arrays or
`tf.data`) for at most `steps` mini-batches (100 by default, as fastai and
Lightning) and never more than `max_epochs` (1) of data, with the learning
rate growing exponentially from `start_lr` (1e-7) to `end_lr` (10). It stops
when the smoothed loss passes `diverge_factor` (4) times its best or stops
being finite. Afterwards the model's variables (weights, normalization
statistics, random-seed state) and the optimizer's variables (slots,
iteration count, learning rate) are put back exactly as they were, also
when the sweep fails half-way (try/finally).

The suggestion rules are pure functions of `(lrs, losses)`:
`suggest_steepest`, `suggest_valley`, `suggest_minimum`, combined by
`consensus`; they read the losses with early spikes set aside
(`ignore_early_spikes`). No rate is chosen (`result.found` False, the
reason opening "No usable rate", the fallback 1e-3) when the sweep has
fewer than 10 points or its smoothed loss never falls clearly below its
starting level (`curve_problem`), and never one at the sweep's very start
(`start_points`) or its last point. Small data, with fewer than 30 steps
in `max_epochs`, are swept over more epochs (at most 10: `planned_steps`);
the result's `sweep` records the epochs and why. `kerasguide lr-find
CONFIG` and the run's "lr_find" stage (`optimizer.learning_rate =
"auto"`) write lr_find.json and lr_find.png into a run directory.

Modules: `suggest` (the rules), `result` (`LRFinderResult`), `finder`
(`LRFinder`); here, the range test on a config (`find_on_config`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import keras

from kerasguide.builders import is_compiled
from kerasguide.config import RunConfig
from kerasguide.lr_finder.finder import LRFinder
from kerasguide.lr_finder.result import LRFinderResult
from kerasguide.lr_finder.suggest import (
    FALLBACK_LR,
    RULES,
    consensus,
    curve_problem,
    ignore_early_spikes,
    planned_steps,
    smooth_losses,
    start_points,
    suggest_all,
    suggest_minimum,
    suggest_steepest,
    suggest_valley,
    sweep_learning_rates,
)
from kerasguide.training import compile_model, split_batches

__all__ = [
    "LRFinder",
    "LRFinderResult",
    "smooth_losses",
    "suggest_steepest",
    "suggest_valley",
    "suggest_minimum",
    "consensus",
    "curve_problem",
    "start_points",
    "suggest_all",
    "ignore_early_spikes",
    "sweep_learning_rates",
    "planned_steps",
    "find_on_config",
    "schedule_bounds",
    "result_record",
    "RULES",
    "FALLBACK_LR",
]


def find_on_config(config: RunConfig, dataset, model, strategy=None, on_step=None,
                   own: bool | None = None) -> LRFinderResult:
    """Compile `model` with the config's optimizer and loss, and run the range test on the training split.

    `own`: the model came compiled and keeps its optimizer and loss; None asks `is_compiled` (right for a
    model no recipe has compiled yet).
    """
    lf = config.lr_find
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        compile_model(model, config, 1e-3, 1, own=is_compiled(model) if own is None else own)
    keras.utils.set_random_seed(config.train.seed)
    x, y, per_epoch = dataset.x_train, dataset.y_train, None
    if dataset.streamed:
        # A stream sweeps its own batches (the sample in memory is for the checks): no augmentation, as the checks.
        x, y = split_batches(dataset, "train", config.train.batch_size, True, config.train.seed), None
        per_epoch = dataset.steps("train", config.train.batch_size)
    return LRFinder(model).find(
        x, y, batch_size=config.train.batch_size, steps_per_epoch=per_epoch, start_lr=lf.start_lr,
        end_lr=lf.end_lr, steps=lf.steps, smoothing=lf.smoothing, diverge_factor=lf.diverge_factor,
        max_epochs=lf.max_epochs, seed=config.train.seed, on_step=on_step, target=_target(config),
        rule=lf.rule,
    )


def _target(config: RunConfig) -> str:
    """A one-cycle or cyclical schedule wants its peak from the test; anything else, a constant rate."""
    return "peak" if config.schedule.kind in ("one_cycle", "cyclical") else "constant"


def schedule_bounds(config: RunConfig, chosen: float) -> dict[str, float]:
    """What the chosen rate sets: the peak of one-cycle, the bounds of a cyclical schedule, else the rate."""
    sc = config.schedule
    if sc.kind == "one_cycle":
        return {"max_lr": chosen}
    if sc.kind == "cyclical":
        min_lr = sc.min_lr if sc.min_lr is not None and sc.min_lr < chosen else chosen / 10.0
        return {"max_lr": chosen, "min_lr": min_lr}
    return {"learning_rate": chosen}


def result_record(result: LRFinderResult, config: RunConfig) -> dict[str, Any]:
    """run.json's `lr_find` field: what the test found and the rates it set."""
    return {
        "chosen": result.chosen,
        "chosen_rule": result.chosen_rule,
        "reason": result.reason,
        "suggestions": result.suggestions,
        "steps": result.steps,
        "seconds": result.seconds,
        "stop_reason": result.stop_reason,
        "sweep": result.extra.get("sweep"),
        "start_lr": result.start_lr,
        "end_lr": result.end_lr,
        "used": schedule_bounds(config, result.chosen),
        "file": "lr_find.json",
    }
