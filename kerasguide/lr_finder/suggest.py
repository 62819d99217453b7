"""The LR range test's suggestion rules (recipe G24): pure functions of the swept rates and losses."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = [
    "RULES",
    "FALLBACK_LR",
    "sweep_learning_rates",
    "smooth_losses",
    "ignore_early_spikes",
    "suggest_steepest",
    "suggest_valley",
    "suggest_minimum",
    "suggest_all",
    "consensus",
    "curve_problem",
    "start_points",
    "planned_steps",
]

# The rules, in the order a tie between two of them is broken.
RULES = ("valley", "steepest", "minimum_div_10")
FALLBACK_LR = 1e-3
# The smoothed loss must fall this far below its starting level for the sweep to show a usable rate.
MIN_FALL = 0.05
# ... and by this many standard deviations of what the batches' noise alone gives.
NOISE_SIGMAS = 1.5


# ----------------------------------------------------------------- pure maths
def sweep_learning_rates(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """`steps` rates from `start_lr` to `end_lr`, evenly spaced on a log scale."""
    if steps == 1:
        return np.array([float(start_lr)])
    return float(start_lr) * (float(end_lr) / float(start_lr)) ** (np.arange(steps) / (steps - 1))


def smooth_losses(losses: Iterable[float], beta: float = 0.98) -> np.ndarray:
    """Exponential moving average with bias correction (fastai's `SmoothenValue`).

    `avg_i = beta * avg_{i-1} + (1 - beta) * loss_i`, `smoothed_i = avg_i / (1 - beta ** (i + 1))`;
    the correction makes the first values the plain mean of what was seen.
    A non-finite loss makes the rest non-finite.
    """
    losses = np.asarray(list(losses), dtype=np.float64)
    out = np.empty_like(losses)
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * loss
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def _finite_prefix(lrs, smoothed) -> tuple[np.ndarray, np.ndarray]:
    lrs = np.asarray(lrs, dtype=np.float64)
    smoothed = np.asarray(smoothed, dtype=np.float64)
    n = min(len(lrs), len(smoothed))
    lrs, smoothed = lrs[:n], smoothed[:n]
    keep = np.isfinite(smoothed) & np.isfinite(lrs) & (lrs > 0)
    return lrs[keep], smoothed[keep]


def _start_level(losses: np.ndarray) -> float:
    """The loss before the rate matters: the median of the first tenth (at least 3 points).

    A median, so that one early spike does not raise it (Lightning#1767).
    """
    head = losses[: max(3, len(losses) // 10)]
    head = head[np.isfinite(head)]
    return float(np.median(head)) if len(head) else math.inf


def start_points(n: int) -> int:
    """How many points open a sweep of `n` points: the first tenth, at least one.

    There the rate is too small to change the model (with the default
    1e-7..10 over 100 steps: below 6e-7), so no rule may suggest a rate in
    it: a suggestion there reads the noise of the first batches (a lucky
    first batch is the smoothed curve's minimum, and "minimum / 10" would
    fall below the sweep's first rate).
    """
    return max(1, int(n) // 10)


def _minimum_index(sm: np.ndarray) -> int:
    """The index of the smoothed loss's minimum after the opening points (a lucky first batch is no minimum)."""
    head = min(start_points(len(sm)), len(sm) - 1)
    return head + int(np.argmin(sm[head:]))


def _flat_start(raw: np.ndarray, best: int) -> np.ndarray:
    """The finite raw losses of the sweep's flat start: its first fifth (at least 5 points), before `best`.

    With the default sweep that is below 4e-6, where no model trains yet.
    """
    head = raw[: max(1, min(max(5, len(raw) // 5), best))]
    return head[np.isfinite(head)]


def _noise_of_fall(head: np.ndarray, best: int, smoothing: float) -> float:
    """The standard deviation of `level - smoothed[best]` for a loss that does not move at all.

    `level` is the median of the flat start's losses `head`; the raw
    losses' spread is read from them too (a MAD, so that a spike does not
    count); the smoothed value at `best` averages `n_eff` losses (the
    bias-corrected EMA's effective count).
    """
    if len(head) < 3:
        return 0.0
    sd = 1.4826 * float(np.median(np.abs(head - np.median(head))))
    weights = float(smoothing) ** np.arange(best + 1, dtype=np.float64)
    n_eff = float(weights.sum() ** 2 / np.sum(weights**2))
    # The median of n values varies about 1.25x as much as their mean.
    return sd * math.sqrt(1.0 / n_eff + 1.57 / len(head))


def curve_problem(lrs, smoothed, losses=None, min_fall: float = MIN_FALL,
                  smoothing: float = 0.98) -> str | None:
    """Why the curve shows no usable rate, or None when it does.

    A curve is usable when its smoothed loss, somewhere after the opening
    points (`start_points`), falls below the starting level (the median of
    the raw losses of the flat start: the first fifth of the sweep, at
    least 5 points, before that lowest point) by at least `min_fall` (5 %) of it and by at least 1.5
    standard deviations of what the batches' noise alone would give (the
    spread of the flat start's losses, averaged as the EMA and the median
    average them). A curve that stays flat (the model learns at no rate
    the sweep reached: a sweep too short, or batch-norm or small-batch
    noise around a flat loss) or that is lowest at its very start has no
    rate to suggest: every rule's answer would be noise.

    Args:
        lrs: The learning rates of the sweep.
        smoothed: The smoothed losses the rules read.
        losses: The raw losses (for the starting level and the noise).
            Defaults to `smoothed`.
        min_fall: The fraction of the starting level the smoothed loss must
            fall. Defaults to `0.05`.
        smoothing: The EMA factor `smoothed` was made with. Defaults to `0.98`.

    Returns:
        One sentence, or None.

    Example:

    >>> curve_problem([1e-3, 1e-2, 1e-1, 1.0], [1.0, 1.01, 0.99, 1.02]) is not None
    True
    """
    lrs, sm = _finite_prefix(lrs, smoothed)
    if len(sm) < 2:
        return f"the sweep recorded {len(sm)} finite loss{'es' if len(sm) != 1 else ''}"
    best = _minimum_index(sm)
    head = _flat_start(np.asarray(losses if losses is not None else smoothed, dtype=np.float64), best)
    if len(head) == 0:
        return "the sweep recorded no finite loss at its start"
    level = float(np.median(head))
    if level <= 0:
        return None  # a loss that is not positive: no relative fall to measure
    fall = level - float(sm[best])
    noise = NOISE_SIGMAS * _noise_of_fall(head, best, smoothing)
    if fall < min_fall * level or fall < noise:
        by_noise = f", nor more than the batches' noise ({noise:.3g})" if noise > min_fall * level else ""
        opening = start_points(len(sm))
        return (f"the smoothed loss never fell {min_fall:.0%} below its starting level {level:.4g}{by_noise} "
                f"(its lowest after the first {opening} point{'s' if opening > 1 else ''}: "
                f"{float(sm[best]):.4g} at {float(lrs[best]):.2g}), so no rate of the sweep trains the model")
    return None


def ignore_early_spikes(losses, factor: float = 1.5) -> tuple[np.ndarray, list[int]]:
    """The raw losses with the early spikes replaced by the starting level, and the spikes' steps.

    Before the loss starts to fall the rate is too small to change the
    model, so a loss far above the starting level there is a hard batch,
    not information (Lightning#1767). On a short sweep (one epoch of a small
    data set: 20-30 steps) the smoothed loss carries such a spike for the
    rest of the sweep: its washing out looks like the steepest fall, and the
    smoothed loss may never get back below its first value (so "minimum"
    picks the first rate). The rules therefore look at these losses.

    The starting level is the median of the lower half of the first fifth
    of the losses (at least 5 of them), which spikes covering up to half of
    them do not raise. The points before the loss first falls below 0.9x
    that level which exceed `factor` x the level are the spikes. Nothing is
    replaced when the loss never falls below 0.9x the level (a sweep that
    only rises or never learns has no spike to wash out).

    Args:
        losses: The raw losses of the sweep.
        factor: A point this many times the starting level is a spike. Defaults to `1.5`.

    Returns:
        `(losses, steps)`: a copy with the spikes at the starting level, and their indices.
    """
    raw = np.asarray(list(losses), dtype=np.float64)
    clean = raw.copy()
    head = raw[: max(5, len(raw) // 5)]
    head = np.sort(head[np.isfinite(head)])
    if len(head) < 3:
        return clean, []
    level = float(np.median(head[: (len(head) + 1) // 2]))
    if not level > 0:  # a loss that is not positive: no relative threshold
        return clean, []
    fallen = np.where(np.isfinite(raw) & (raw < 0.9 * level))[0]
    if len(fallen) == 0:
        return clean, []
    early = raw[: fallen[0]]
    spikes = [int(i) for i in np.where(~np.isfinite(early) | (early > factor * level))[0]]
    clean[spikes] = level
    return clean, spikes


def suggest_steepest(lrs, smoothed, losses=None, skip_end: int = 1) -> float | None:
    """The rate where the smoothed loss falls fastest against log(lr), before its minimum.

    Only points whose smoothed loss is below the starting level (the median
    of the first raw losses) count: a spike in the first batches makes the
    smoothed loss fall steeply while it washes out, at rates that do not
    train at all (Lightning#1767), and this guard ignores that fall.

    Args:
        lrs: The learning rates of the sweep.
        smoothed: The smoothed losses.
        losses: The raw losses (for the starting level). Defaults to `smoothed`.
        skip_end: Points ignored at the end. Defaults to `1`.
    """
    lrs, sm = _finite_prefix(lrs, smoothed)
    if len(sm) < 3:
        return None
    raw = np.asarray(losses if losses is not None else smoothed, dtype=np.float64)
    level = _start_level(raw)
    end = _minimum_index(sm) + 1
    end = min(end, len(sm) - skip_end) if skip_end else end
    if end < 2:
        return None
    grad = np.gradient(sm, np.log10(lrs))[:end]
    candidates = np.where(sm[:end] < level)[0]
    if len(candidates) == 0:
        return None
    best = candidates[np.argmin(grad[candidates])]
    if not grad[best] < 0:
        return None
    return float(lrs[best])


def suggest_valley(lrs, smoothed) -> float | None:
    """fastai's default: a rate inside the longest descending stretch of the loss.

    The longest decreasing subsequence of the smoothed loss is found; the
    suggestion sits half-way into its middle third (fastai's `valley`).
    """
    lrs, sm = _finite_prefix(lrs, smoothed)
    n = len(sm)
    if n < 3:
        return None
    lds = np.ones(n, dtype=int)
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if sm[i] < sm[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    if max_end == 0:
        return None
    sections = (max_end - max_start) / 3
    index = max(0, min(n - 1, max_start + int(sections) + int(sections / 2)))
    return float(lrs[index])


def suggest_minimum(lrs, smoothed, divisor: float = 10.0) -> float | None:
    """The rate of the smoothed loss's minimum, divided by `divisor` (fastai's `minimum`).

    The minimum is looked for after the opening points (`start_points`): a
    lucky first batch is often the lowest point of a noisy smoothed curve,
    and its rate divided by 10 (1e-8 for the default sweep) lies before the
    sweep's start. None when the rate would lie below the sweep's first.
    """
    lrs, sm = _finite_prefix(lrs, smoothed)
    if len(sm) < 2:
        return None
    lr = float(lrs[_minimum_index(sm)] / divisor)
    return lr if lr >= float(lrs[0]) else None  # before the sweep's first rate: nothing was measured there


def suggest_all(lrs, losses, smoothed) -> dict[str, float | None]:
    """Every rule's suggestion, `None` where a rule has no answer."""
    return {
        "valley": suggest_valley(lrs, smoothed),
        "steepest": suggest_steepest(lrs, smoothed, losses),
        "minimum_div_10": suggest_minimum(lrs, smoothed),
    }


def consensus(suggestions: dict[str, float | None], lrs=None, smoothed=None,
              target: str = "constant", losses=None,
              smoothing: float = 0.98) -> tuple[str | None, float | None, str]:
    """The chosen rate from the rules' suggestions.

    With the curve (`lrs`, `smoothed`): a curve that never falls enough
    (`curve_problem`) gives no rate at all, and suggestions among the
    sweep's opening points (`start_points`: the rate there is too small to
    train) are dropped. Non-finite suggestions, and those at or past the
    rate of the loss minimum (the loss already rises there), are dropped
    too. For a
    constant rate (`target="constant"`), the chosen one is the median (on a
    log scale) of what is left: a median of three ignores one rule fooled by
    its curve (a flat start for "valley", a spike for "steepest"); with two
    left, the lower one (the safer side). For the peak of one-cycle or the
    upper bound of a cyclical schedule (`target="peak"`), Smith's rule is
    the largest rate at which the loss still falls fast: "steepest" (its
    early-spike guard applied), else the same median. benchmarks/README.md
    shows both choices against a grid of constant rates.

    Args:
        suggestions: `{rule: lr or None}`.
        lrs: The sweep's rates (to find the loss minimum). Defaults to `None`.
        smoothed: The smoothed losses. Defaults to `None`.
        target: `"constant"` or `"peak"`. Defaults to `"constant"`.
        losses: The raw losses the rules read (the starting level and noise
            of `curve_problem`). Defaults to `smoothed`.
        smoothing: The EMA factor of `smoothed`. Defaults to `0.98`.

    Returns:
        `(rule, lr, reason)`: the rule whose value was chosen (None if none
        is usable), its rate, and one sentence saying why.
    """
    finite = {k: float(v) for k, v in suggestions.items()
              if isinstance(v, (int, float)) and math.isfinite(v) and v > 0}
    dropped, early = [], []
    if lrs is not None and smoothed is not None:
        problem = curve_problem(lrs, smoothed, losses, smoothing=smoothing)
        if problem is not None:
            return None, None, problem
        flrs, fsm = _finite_prefix(lrs, smoothed)
        if len(fsm):
            lr_min = float(flrs[_minimum_index(fsm)])
            dropped = [k for k, v in finite.items() if v >= lr_min]
            finite = {k: v for k, v in finite.items() if v < lr_min}
            lr_open = float(flrs[min(start_points(len(fsm)), len(fsm) - 1)])
            early = [k for k, v in finite.items() if v < lr_open]
            finite = {k: v for k, v in finite.items() if v >= lr_open}
    if not finite:
        why = "no rule found a descending loss (the sweep diverged at once or never learned)"
        if early:
            why += f"; {', '.join(early)} only at the very start of the sweep, where nothing trains"
        return None, None, why
    extra = f"; {', '.join(dropped)} dropped (at or past the loss minimum)" if dropped else ""
    if early:
        extra += f"; {', '.join(early)} dropped (at the very start of the sweep)"
    if target == "peak" and "steepest" in finite:
        listed = ", ".join(f"{k} {v:.2g}" for k, v in sorted(finite.items(), key=lambda kv: kv[1]))
        lr = finite["steepest"]
        return "steepest", lr, (f"steepest {lr:.2g} is where the loss falls fastest, Smith's peak for a "
                                f"one-cycle or cyclical schedule ({listed}){extra}.")
    order = sorted(finite.items(), key=lambda kv: (kv[1], RULES.index(kv[0]) if kv[0] in RULES else 99))
    if len(order) == 1:
        rule, lr = order[0]
        how = "the only usable rule"
    elif len(order) == 2:
        rule, lr = order[0]
        how = "the lower of two usable rules"
    else:
        rule, lr = order[(len(order) - 1) // 2]
        how = f"the median of {len(order)} rules"
    listed = ", ".join(f"{k} {v:.2g}" for k, v in sorted(finite.items(), key=lambda kv: kv[1]))
    return rule, lr, f"{rule} {lr:.2g} is {how} ({listed}){extra}."


MIN_SWEEP = 30  # steps a sweep should have to read a curve from
SMALL_DATA_EPOCHS = 10  # the most epochs small data are swept to reach MIN_SWEEP


def planned_steps(steps: int, max_epochs: float, steps_per_epoch: int | None) -> int:
    """The steps a sweep of at most `steps` steps takes over data of `steps_per_epoch` batches.

    Never more than `max_epochs` of data, never fewer than 2 steps; `steps`
    for data of unknown length. Small data are the exception: when fewer
    than `MIN_SWEEP` steps fit in `max_epochs`, the sweep goes on over more
    epochs, up to `SMALL_DATA_EPOCHS` or `max_epochs`, whichever is more
    (a curve of a handful of points reads noise: 150 examples at 2 batches
    an epoch once chose 1.0).
    """
    if steps_per_epoch is None:
        return steps
    within = int(math.floor(max_epochs * steps_per_epoch))
    wanted = min(steps, MIN_SWEEP)
    if within < wanted:
        # Never fewer epochs than asked for: a max_epochs above SMALL_DATA_EPOCHS stays what it is.
        epochs = max(max_epochs, min(SMALL_DATA_EPOCHS, math.ceil(wanted / steps_per_epoch)))
        within = int(math.floor(epochs * steps_per_epoch))
    return min(steps, max(2, within))
