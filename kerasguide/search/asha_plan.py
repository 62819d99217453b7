"""ASHA's rungs and their budget, in plain Python (the dry run and the app read them without TensorFlow)."""

from __future__ import annotations

import math

from kerasguide.config import ConfigError

__all__ = ["asha_rungs", "asha_plan", "MAX_RUNGS"]

MAX_RUNGS = 3


def asha_rungs(max_epochs: int, factor: int = 3, min_epochs: int | None = None, trials: int = 20) -> list[int]:
    """The rungs' budgets in epochs: each `factor`x the one before, the last `max_epochs`.

    Args:
        max_epochs: The top rung (`train.epochs`).
        factor: Reduction factor. Defaults to `3`.
        min_epochs: The first rung. Defaults to `None`: as many rungs as
            `trials` first-rung configurations can fill (about `trials /
            factor**k` reach rung k, so the top one gets at least one), at
            most `MAX_RUNGS` (3).
        trials: Configurations started at the first rung. Defaults to `20`.

    Example:

    ```python
    asha_rungs(27, 3, trials=30)      # [3, 9, 27]
    asha_rungs(20, 3, min_epochs=2)   # [2, 6, 18, 20]
    ```
    """
    if max_epochs < 1 or factor < 2 or trials < 1:
        raise ValueError(f"asha needs max_epochs >= 1, factor >= 2, trials >= 1. Received: {max_epochs}, "
                         f"{factor}, {trials}")
    if min_epochs is not None:
        if min_epochs > max_epochs:
            raise ConfigError(f"`search.min_epochs` ({min_epochs}) must not exceed `train.epochs` ({max_epochs})")
        rungs, budget = [], min_epochs
        while budget < max_epochs:
            rungs.append(budget)
            budget *= factor
        return rungs + [max_epochs]
    # At most three rungs: below max/factor**2 epochs a trial's set-up (build, trace, records) costs more
    # than its training, and the top rung is reached sooner.
    levels = min(MAX_RUNGS, 1 + int(math.floor(math.log(trials) / math.log(factor) + 1e-9)))
    rungs = []
    for k in range(levels):
        budget = max(1, int(round(max_epochs / factor ** (levels - 1 - k))))
        if not rungs or budget > rungs[-1]:
            rungs.append(budget)
    return rungs


def asha_plan(rungs: list[int], trials: int, factor: int) -> list[tuple[int, int, int]]:
    """`(configurations, epochs, epochs each trains)` per rung when every rung fills: the budget's upper bound."""
    out, count = [], trials
    for k, budget in enumerate(rungs):
        if count < 1:
            break
        out.append((count, budget, budget - (rungs[k - 1] if k else 0)))
        count //= factor
    return out
