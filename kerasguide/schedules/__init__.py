"""Learning-rate schedules and the config's factory (recipes G22-G23).

Keras already has exponential decay, 1/t decay, piecewise constants, cosine
decay with warm-up and cosine restarts: the factory uses those as they are.
This module adds what Keras lacks, as `LearningRateSchedule` subclasses
that anyone can pass to `keras.optimizers.SGD(learning_rate=...)` and save
inside a `.keras` file:

- `StepDecay`: multiply by `factor` every N epochs (G22).
- `CyclicalLR`: Smith's triangular, triangular2 and exp_range cycles (G23).
- `OneCycle`: warm-up to the maximum, anneal to maximum / div_final, with
  the momentum cycled inversely by the `CycleMomentum` callback (G23).
- `LinearWarmup`: a linear warm-up in front of any schedule (G23).

The maths of each is a pure function of the step (`step_decay`,
`cyclical_lr`, `one_cycle_lr`, `one_cycle_momentum`, `linear_warmup`),
written with `keras.ops` so it runs on NumPy arrays in tests and on the
optimizer's step counter inside the compiled train step.

`schedule_from_config(config, steps_per_epoch, learning_rate)` turns the
config's `schedule` section (durations in epochs) into what the optimizer
takes, plus the callbacks the schedule needs (momentum cycling, Keras'
`ReduceLROnPlateau`).
Modules: `rates` (the schedules and their maths), `momentum`
(`CycleMomentum`), `logger` (`ScheduleLogger`); here, the factory.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from kerasguide._logging import get_logger
from kerasguide.config import ConfigError, RunConfig
from kerasguide.schedules.logger import ScheduleLogger
from kerasguide.schedules.momentum import CycleMomentum, momentum_attribute
from kerasguide.schedules.rates import (
    CyclicalLR,
    LinearWarmup,
    OneCycle,
    StepDecay,
    cyclical_lr,
    linear_warmup,
    one_cycle_lr,
    one_cycle_momentum,
    step_decay,
)

__all__ = [
    "StepDecay",
    "CyclicalLR",
    "OneCycle",
    "LinearWarmup",
    "CycleMomentum",
    "ScheduleLogger",
    "step_decay",
    "cyclical_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "linear_warmup",
    "schedule_from_config",
    "momentum_attribute",
]

logger = get_logger()


# ------------------------------------------------------------------ factory
def schedule_from_config(
    config: RunConfig, steps_per_epoch: int, learning_rate: float
) -> tuple[Any, list[keras.callbacks.Callback]]:
    """`(learning_rate_or_schedule, callbacks)` for a config's `schedule` section.

    Durations in the config are in epochs; they become steps here with
    `steps_per_epoch`. `learning_rate` is the initial (or maximum) rate:
    the config's, or the one the LR range test chose.

    Args:
        config: The run config.
        steps_per_epoch: Optimizer steps in one epoch.
        learning_rate: The initial or peak learning rate.

    Returns:
        What `keras.optimizers.*(learning_rate=...)` takes, and the callbacks
        the schedule needs (`CycleMomentum` for one-cycle, Keras'
        `ReduceLROnPlateau` when asked).

    Raises:
        ConfigError: `reduce_on_plateau` with a schedule (Keras' callback
            can only change a constant rate), or a cyclical `min_lr` that is
            not below the rate.

    Example:

    ```python
    lr, callbacks = schedule_from_config(config, steps_per_epoch=23, learning_rate=3e-3)
    ```
    """
    sc = config.schedule
    spe = max(1, int(steps_per_epoch))
    lr = float(learning_rate)
    total = max(1, int(round(config.train.epochs * spe)))
    warmup = int(round(sc.warmup_epochs * spe))
    schedules = keras.optimizers.schedules
    callbacks: list[keras.callbacks.Callback] = []
    if sc.reduce_on_plateau and (sc.kind != "constant" or warmup > 0):
        # Keras' ReduceLROnPlateau assigns the optimizer's rate, which a schedule does not allow:
        # it would raise a TypeError at the first plateau, in the middle of training.
        what = f"schedule.kind = {sc.kind!r}" if sc.kind != "constant" else "schedule.warmup_epochs > 0"
        raise ConfigError(f"schedule.reduce_on_plateau needs a constant rate (schedule.kind = \"constant\", no "
                          f"warm-up); {what} is a schedule, whose rate Keras' ReduceLROnPlateau cannot change")
    if sc.reduce_on_plateau:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=sc.plateau_factor, patience=sc.plateau_patience, verbose=0
            )
        )
    kind = sc.kind
    schedule: Any
    if kind == "constant":
        schedule = lr
    elif kind == "step":
        schedule = StepDecay(lr, spe, sc.every_epochs, sc.factor)
    elif kind == "exponential":
        # a0 * exp(-k t), t in epochs: Keras' a0 * rate ** (step / decay_steps).
        schedule = schedules.ExponentialDecay(lr, decay_steps=spe, decay_rate=math.exp(-sc.decay_rate))
    elif kind == "inverse_time":
        # a0 / (1 + k t), t in epochs.
        schedule = schedules.InverseTimeDecay(lr, decay_steps=spe, decay_rate=sc.decay_rate)
    elif kind == "piecewise":
        boundaries = [int(round(b * spe)) for b in sc.boundaries_epochs]
        schedule = schedules.PiecewiseConstantDecay(boundaries, [lr * v for v in sc.values])
    elif kind == "cosine":
        if warmup > 0:
            # Keras' own warm-up: from 0 to `lr` over `warmup` steps, then cosine.
            return schedules.CosineDecay(0.0, decay_steps=max(1, total - warmup), alpha=sc.alpha,
                                         warmup_target=lr, warmup_steps=warmup), callbacks
        schedule = schedules.CosineDecay(lr, decay_steps=total, alpha=sc.alpha)
    elif kind == "cosine_restarts":
        schedule = schedules.CosineDecayRestarts(lr, first_decay_steps=max(1, int(round(sc.first_decay_epochs * spe))),
                                                 alpha=sc.alpha)
    elif kind == "cyclical":
        min_lr = sc.min_lr if sc.min_lr is not None else lr / 10.0
        if min_lr >= lr:
            if config.optimizer.learning_rate != "auto":
                raise ConfigError(f"schedule.min_lr = {min_lr:g} must be below the learning rate {lr:g}")
            # The range test chose a peak below the configured floor: keep the cycle's shape.
            logger.warning("schedule.min_lr %g is not below the range test's %g; using %g", min_lr, lr, lr / 10)
            min_lr = lr / 10.0
        schedule = CyclicalLR(min_lr, lr, step_size=sc.step_size_epochs * spe, mode=sc.mode, gamma=sc.gamma)
    elif kind == "one_cycle":
        if warmup > 0:
            logger.info("one_cycle warms up by itself (pct_start); schedule.warmup_epochs is ignored")
        one_cycle = OneCycle(lr, total, pct_start=sc.pct_start, div_factor=sc.div_factor, div_final=sc.div_final,
                             max_momentum=sc.max_momentum, min_momentum=sc.min_momentum)
        if sc.cycle_momentum:
            if config.optimizer.name in ("sgd", "adam", "adamw") and not (
                config.optimizer.name == "sgd" and config.optimizer.momentum == 0
            ):
                callbacks.append(CycleMomentum(one_cycle.momentum))
            else:
                logger.info("optimizer %s has no momentum to cycle; cycling the learning rate only",
                            config.optimizer.name)
        return one_cycle, callbacks
    else:  # pragma: no cover - the config's Literal lists every kind
        raise ConfigError(f"schedule.kind = {kind!r} is not available")
    if warmup > 0:
        schedule = LinearWarmup(schedule, warmup)
    return schedule, callbacks
