"""The learning-rate schedules Keras lacks (recipes G22-G23) and their maths, pure functions of the step.

Written with `keras.ops`, so each runs on NumPy arrays in tests and on the
optimizer's step counter inside the compiled train step; each class is a
`LearningRateSchedule` that saves inside a `.keras` file.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from kerasguide._logging import get_logger

__all__ = [
    "StepDecay",
    "CyclicalLR",
    "OneCycle",
    "LinearWarmup",
    "step_decay",
    "cyclical_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "linear_warmup",
]

logger = get_logger()

_CYCLICAL_MODES = ("triangular", "triangular2", "exp_range")
_ANNEAL = ("cos", "linear")


# -------------------------------------------------------------- pure maths
def _f(value: Any):
    return ops.cast(value, "float32")


def _anneal(start, end, fraction, kind: str = "cos"):
    """From `start` (fraction 0) to `end` (fraction 1), cosine or linear."""
    fraction = ops.clip(fraction, 0.0, 1.0)
    if kind == "linear":
        return start + (end - start) * fraction
    return end + (start - end) * 0.5 * (1.0 + ops.cos(math.pi * fraction))


def step_decay(step, initial_learning_rate: float, step_size: float, factor: float):
    """`initial_learning_rate * factor ** floor(step / step_size)` (recipe G22)."""
    return initial_learning_rate * ops.power(_f(factor), ops.floor(_f(step) / step_size))


def cyclical_lr(step, min_lr: float, max_lr: float, step_size: float, mode: str = "triangular",
                gamma: float = 1.0):
    """Smith's cyclical learning rate (2015), one triangle every `2 * step_size` steps.

    `cycle = floor(1 + step / (2 step_size))`, `x = |step / step_size - 2 cycle + 1|`,
    `lr = min + (max - min) * max(0, 1 - x) * scale`, where scale is 1
    (triangular), `1 / 2 ** (cycle - 1)` (triangular2) or `gamma ** step` (exp_range).
    """
    step = _f(step)
    cycle = ops.floor(1.0 + step / (2.0 * step_size))
    x = ops.abs(step / step_size - 2.0 * cycle + 1.0)
    height = (max_lr - min_lr) * ops.maximum(0.0, 1.0 - x)
    if mode == "triangular2":
        height = height / ops.power(2.0, cycle - 1.0)
    elif mode == "exp_range":
        height = height * ops.power(_f(gamma), step)
    return min_lr + height


def _warmup_steps(total_steps: float, pct_start: float) -> float:
    return max(1.0, float(total_steps) * pct_start)


def one_cycle_lr(step, max_lr: float, total_steps: int, pct_start: float = 0.25,
                 div_factor: float = 25.0, div_final: float = 1e4, anneal: str = "cos"):
    """One-cycle (Smith 2018): `max/div_factor` -> `max` over `pct_start` of the steps -> `max/div_final`.

    Both phases follow `anneal` ("cos" as fastai and PyTorch, or "linear");
    after `total_steps` the rate stays at `max_lr / div_final`.
    """
    step = _f(step)
    warm = _warmup_steps(total_steps, pct_start)
    rest = max(1.0, float(total_steps) - warm)
    up = _anneal(max_lr / div_factor, max_lr, step / warm, anneal)
    down = _anneal(max_lr, max_lr / div_final, (step - warm) / rest, anneal)
    return ops.where(step < warm, up, down)


def one_cycle_momentum(step, total_steps: int, pct_start: float = 0.25, max_momentum: float = 0.95,
                       min_momentum: float = 0.85, anneal: str = "cos"):
    """The momentum of one-cycle, inverse to its learning rate: max -> min -> max."""
    step = _f(step)
    warm = _warmup_steps(total_steps, pct_start)
    rest = max(1.0, float(total_steps) - warm)
    down = _anneal(max_momentum, min_momentum, step / warm, anneal)
    up = _anneal(min_momentum, max_momentum, (step - warm) / rest, anneal)
    return ops.where(step < warm, down, up)


def linear_warmup(step, warmup_steps: float, target, start_lr: float = 0.0):
    """`start_lr + (target - start_lr) * step / warmup_steps` while `step < warmup_steps`, else `target`."""
    step = _f(step)
    return ops.where(step < warmup_steps, start_lr + (target - start_lr) * step / warmup_steps, target)


# ------------------------------------------------------------- validation
def _positive(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")


def _in_open_unit(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"Argument `{name}` must be in (0, 1). Received: {name}={value!r}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"Argument `{name}` must be one of {allowed}. Received: {name}={value!r}")


# ---------------------------------------------------------------- schedules
@keras.saving.register_keras_serializable(package="kerasguide")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Multiply the learning rate by `factor` every `every_epochs` epochs (recipe G22).

    `lr = initial_learning_rate * factor ** floor(step / (every_epochs * steps_per_epoch))`:
    "halve every 5 epochs" or "x0.1 every 20".

    Args:
        initial_learning_rate: The rate of the first epochs.
        steps_per_epoch: Optimizer steps in one epoch (batches per epoch).
        every_epochs: Epochs between two decays. Defaults to `5.0`.
        factor: The multiplier at each decay. Defaults to `0.5`.
        name: Defaults to `"StepDecay"`.

    Example:

    >>> schedule = StepDecay(0.1, steps_per_epoch=100, every_epochs=5, factor=0.5)
    >>> round(float(schedule(1000)), 6)  # after 10 epochs: halved twice
    0.025
    """

    def __init__(self, initial_learning_rate: float, steps_per_epoch: int, every_epochs: float = 5.0,
                 factor: float = 0.5, name: str = "StepDecay"):
        super().__init__()
        _positive("initial_learning_rate", initial_learning_rate)
        _positive("steps_per_epoch", steps_per_epoch)
        _positive("every_epochs", every_epochs)
        _positive("factor", factor)
        self.initial_learning_rate = float(initial_learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.every_epochs = float(every_epochs)
        self.factor = float(factor)
        self.name = name

    def __call__(self, step):
        return step_decay(step, self.initial_learning_rate, self.every_epochs * self.steps_per_epoch, self.factor)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "every_epochs": self.every_epochs,
            "factor": self.factor,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerasguide")
class CyclicalLR(keras.optimizers.schedules.LearningRateSchedule):
    """Cyclical learning rates between two bounds (Smith 2015; recipe G23).

    The rate climbs linearly from `min_lr` to `max_lr` over `step_size`
    steps and back down over the next `step_size`. Smith suggests a
    `step_size` of 2-10 epochs of steps, and bounds from the LR range test.

    Args:
        min_lr: The lower bound.
        max_lr: The upper bound (must exceed `min_lr`).
        step_size: Steps in half a cycle.
        mode: `"triangular"` (constant height), `"triangular2"` (height
            halved every cycle) or `"exp_range"` (height times
            `gamma ** step`). Defaults to `"triangular"`.
        gamma: The decay per step of `"exp_range"`. Defaults to `1.0`.
        name: Defaults to `"CyclicalLR"`.

    Example:

    >>> schedule = CyclicalLR(1e-3, 1e-2, step_size=100)
    >>> round(float(schedule(100)), 6), round(float(schedule(200)), 6)
    (0.01, 0.001)
    """

    def __init__(self, min_lr: float, max_lr: float, step_size: float, mode: str = "triangular",
                 gamma: float = 1.0, name: str = "CyclicalLR"):
        super().__init__()
        _positive("min_lr", min_lr)
        _positive("max_lr", max_lr)
        _positive("step_size", step_size)
        _choice("mode", mode, _CYCLICAL_MODES)
        if max_lr <= min_lr:
            raise ValueError(f"Argument `max_lr` must be > `min_lr`. Received: min_lr={min_lr}, max_lr={max_lr}")
        if not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
            raise ValueError(f"Argument `gamma` must be in (0, 1]. Received: gamma={gamma!r}")
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.step_size = float(step_size)
        self.mode = mode
        self.gamma = float(gamma)
        self.name = name

    def __call__(self, step):
        return cyclical_lr(step, self.min_lr, self.max_lr, self.step_size, self.mode, self.gamma)

    def get_config(self) -> dict[str, Any]:
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "step_size": self.step_size,
            "mode": self.mode,
            "gamma": self.gamma,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerasguide")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle: warm up to `max_lr`, then anneal far below the start (Smith 2018; G23).

    The rate goes from `max_lr / div_factor` to `max_lr` over the first
    `pct_start` of `total_steps`, then down to `max_lr / div_final`. The
    momentum goes the other way (`max_momentum` -> `min_momentum` ->
    `max_momentum`): `momentum(step)` gives it, and the `CycleMomentum`
    callback applies it to SGD's momentum or Adam's `beta_1`.

    Args:
        max_lr: The peak learning rate (from the LR range test).
        total_steps: Steps of the whole training (epochs x steps per epoch).
        pct_start: Fraction of the steps spent warming up. Defaults to `0.25`.
        div_factor: The start rate is `max_lr / div_factor`. Defaults to `25.0`.
        div_final: The end rate is `max_lr / div_final`. Defaults to `1e4`.
        anneal: `"cos"` or `"linear"`. Defaults to `"cos"`.
        max_momentum: The momentum at both ends. Defaults to `0.95`.
        min_momentum: The momentum at the peak rate. Defaults to `0.85`.
        name: Defaults to `"OneCycle"`.

    Example:

    >>> schedule = OneCycle(0.1, total_steps=1000)
    >>> round(float(schedule(0)), 6), round(float(schedule(250)), 6), round(float(schedule(1000)), 8)
    (0.004, 0.1, 1e-05)
    >>> round(float(schedule.momentum(250)), 6)
    0.85
    """

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.25, div_factor: float = 25.0,
                 div_final: float = 1e4, anneal: str = "cos", max_momentum: float = 0.95,
                 min_momentum: float = 0.85, name: str = "OneCycle"):
        super().__init__()
        _positive("max_lr", max_lr)
        _positive("total_steps", total_steps)
        _in_open_unit("pct_start", pct_start)
        _positive("div_factor", div_factor)
        _positive("div_final", div_final)
        _choice("anneal", anneal, _ANNEAL)
        for key, value in (("max_momentum", max_momentum), ("min_momentum", min_momentum)):
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"Argument `{key}` must be in [0, 1). Received: {key}={value!r}")
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.div_factor = float(div_factor)
        self.div_final = float(div_final)
        self.anneal = anneal
        self.max_momentum = float(max_momentum)
        self.min_momentum = float(min_momentum)
        self.name = name

    def __call__(self, step):
        return one_cycle_lr(step, self.max_lr, self.total_steps, self.pct_start, self.div_factor,
                            self.div_final, self.anneal)

    def momentum(self, step):
        """The momentum (or Adam's `beta_1`) at `step`, cycled inversely to the rate."""
        return one_cycle_momentum(step, self.total_steps, self.pct_start, self.max_momentum,
                                  self.min_momentum, self.anneal)

    def get_config(self) -> dict[str, Any]:
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "div_final": self.div_final,
            "anneal": self.anneal,
            "max_momentum": self.max_momentum,
            "min_momentum": self.min_momentum,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerasguide")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up in front of any schedule (or constant rate) (recipe G23).

    For `step < warmup_steps` the rate climbs linearly from `start_lr` to
    the wrapped schedule's first value; afterwards it is
    `schedule(step - warmup_steps)`, so the wrapped schedule runs whole.

    Args:
        schedule: A `LearningRateSchedule` or a constant rate (float).
        warmup_steps: Steps of the warm-up.
        start_lr: The rate at step 0. Defaults to `0.0`.
        name: Defaults to `"LinearWarmup"`.

    Example:

    >>> decay = keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.5)
    >>> schedule = LinearWarmup(decay, warmup_steps=10)
    >>> round(float(schedule(5)), 6), round(float(schedule(110)), 6)
    (0.05, 0.05)
    """

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule | float, warmup_steps: int,
                 start_lr: float = 0.0, name: str = "LinearWarmup"):
        super().__init__()
        if isinstance(schedule, dict):  # from get_config
            schedule = keras.saving.deserialize_keras_object(schedule)
        if isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
            _positive("schedule", schedule)
            schedule = float(schedule)
        elif not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise ValueError(
                f"Argument `schedule` must be a LearningRateSchedule or a float. Received: schedule={schedule!r}"
            )
        _positive("warmup_steps", warmup_steps)
        if not isinstance(start_lr, (int, float)) or start_lr < 0:
            raise ValueError(f"Argument `start_lr` must be >= 0. Received: start_lr={start_lr!r}")
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)
        self.start_lr = float(start_lr)
        self.name = name

    def _inner(self, step):
        if isinstance(self.schedule, float):
            return ops.full_like(_f(step), self.schedule)
        return _f(self.schedule(step))

    def __call__(self, step):
        step = _f(step)
        warmup = float(self.warmup_steps)
        first = self._inner(ops.zeros_like(step))
        after = self._inner(ops.maximum(step - warmup, 0.0))
        return linear_warmup(step, warmup, ops.where(step < warmup, first, after), self.start_lr)

    def get_config(self) -> dict[str, Any]:
        schedule = self.schedule
        if not isinstance(schedule, float):
            schedule = keras.saving.serialize_keras_object(schedule)
        return {"schedule": schedule, "warmup_steps": self.warmup_steps, "start_lr": self.start_lr,
                "name": self.name}
