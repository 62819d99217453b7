"""Learning-rate schedules and the config's factory (recipes G22-G23).

The factory `schedule_from_config` turns the config's `schedule` section
(durations in epochs) into what `keras.optimizers.*(learning_rate=...)`
takes, plus any callbacks the schedule needs.
"""

from __future__ import annotations

from typing import Any

import keras

from kerasguide.config import ConfigError, RunConfig

__all__ = ["schedule_from_config"]


def schedule_from_config(
    config: RunConfig, steps_per_epoch: int, learning_rate: float
) -> tuple[Any, list[keras.callbacks.Callback]]:
    """`(learning_rate_or_schedule, callbacks)` for a config's `schedule` section."""
    sc = config.schedule
    callbacks: list[keras.callbacks.Callback] = []
    if sc.reduce_on_plateau:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=sc.plateau_factor, patience=sc.plateau_patience, verbose=0
            )
        )
    if sc.kind == "constant":
        return learning_rate, callbacks
    raise ConfigError(f"schedule.kind = {sc.kind!r} is not available yet in this version")
