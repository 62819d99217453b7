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
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasguide._logging import get_logger
from kerasguide.config import RunConfig

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


# ------------------------------------------------------ momentum cycling
class _ScheduledScalar(float):
    """A float that, read inside the compiled train step, is `fn(optimizer.iterations)`.

    Keras' SGD keeps `momentum` (and Adam `beta_1`) as a Python float that is
    baked into the traced train step as a constant: assigning a new float
    from a callback changes nothing once the step is traced, and with
    `steps_per_execution > 1` a callback runs only once per execution anyway.
    This float subclass keeps the optimizer's own Python checks
    (`momentum != 0`, `isinstance(momentum, float)`) and its config (it
    serializes as the static value) intact, while TensorFlow's
    `__tf_tensor__` protocol makes every `ops.cast(self.momentum, ...)` in
    the update compute the value from the step counter, inside the graph,
    at every step. Arithmetic (`1 - beta_1`) is forwarded to that tensor.
    """

    def __new__(cls, value: float, fn: Callable[[], Any]):
        self = super().__new__(cls, value)
        self._fn = fn
        self._graphs: dict[int, tuple[Any, Any]] = {}
        return self

    def __tf_tensor__(self, dtype=None, name=None):
        import tensorflow as tf

        if tf.executing_eagerly():
            value = self._fn()
        else:
            # Adam reads beta_1 a few times for every variable: computed once per traced graph
            # (one training step; the step counter only moves after every variable's update),
            # not once per read (each is a dozen ops to trace).
            graph = tf.compat.v1.get_default_graph()
            cached = self._graphs.get(id(graph))
            if cached is not None and cached[0]() is graph:
                value = cached[1]
            else:
                value = self._fn()
                self._graphs[id(graph)] = (weakref.ref(graph), value)
        return tf.cast(value, dtype) if dtype is not None else tf.convert_to_tensor(value)

    def _t(self):
        return ops.convert_to_tensor(self.__tf_tensor__("float32"))

    def __add__(self, other):
        return self._t() + other

    def __radd__(self, other):
        return other + self._t()

    def __sub__(self, other):
        return self._t() - other

    def __rsub__(self, other):
        return other - self._t()

    def __mul__(self, other):
        return self._t() * other

    def __rmul__(self, other):
        return other * self._t()

    def __truediv__(self, other):
        return self._t() / other

    def __rtruediv__(self, other):
        return other / self._t()

    def __pow__(self, other):
        return ops.power(self._t(), other)

    def __rpow__(self, other):
        return ops.power(other, self._t())

    def __neg__(self):
        return -self._t()

    def __reduce__(self):
        # copy/pickle give the plain static value: the cycling is not state.
        return (float, (float(self),))


def momentum_attribute(optimizer: keras.optimizers.Optimizer) -> str | None:
    """The optimizer attribute holding its momentum: `beta_1` (Adam family) or `momentum` (SGD, RMSprop)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    for name in ("beta_1", "momentum"):
        if isinstance(getattr(optimizer, name, None), float):
            return name
    return None


class CycleMomentum(keras.callbacks.Callback):
    """Cycle the optimizer's momentum (SGD `momentum`, Adam `beta_1`) step by step (recipe G23).

    The value is computed inside the compiled train step from the
    optimizer's step counter, so it changes at every step also with
    `steps_per_execution > 1`. At the end of training the optimizer gets its
    original float back. The current value is logged as `momentum` at each
    epoch's end (and so reaches metrics.csv).

    Args:
        schedule: A callable `step -> momentum`, e.g. `OneCycle.momentum`.

    Example:

    ```python
    one_cycle = OneCycle(0.01, total_steps=epochs * steps_per_epoch)
    model.compile(keras.optimizers.SGD(one_cycle, momentum=0.9), "mse")
    model.fit(x, y, epochs=epochs, callbacks=[CycleMomentum(one_cycle.momentum)])
    ```
    """

    def __init__(self, schedule: Callable[[Any], Any]):
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"Argument `schedule` must be callable. Received: schedule={schedule!r}")
        self.schedule = schedule
        self._installed: tuple[Any, str, float] | None = None

    def on_train_begin(self, logs=None):
        self._installed = None
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        name = momentum_attribute(optimizer)
        if name is None:
            logger.warning("%s has no momentum to cycle", type(optimizer).__name__)
            return
        static = float(getattr(optimizer, name))
        if static == 0.0 and name == "momentum":
            # SGD/RMSprop only create momentum slots when momentum != 0.
            logger.warning("%s: momentum is 0, nothing to cycle (set a momentum)", type(optimizer).__name__)
            return
        setattr(optimizer, name, _ScheduledScalar(static, lambda: self.schedule(optimizer.iterations)))
        self._installed = (optimizer, name, static)
        # A train step traced before read the plain float: trace it again.
        self.model.make_train_function(force=True)

    def current(self) -> float | None:
        """The momentum at the optimizer's current step, or None when not cycling."""
        if self._installed is None:
            return None
        optimizer = self._installed[0]
        return float(ops.convert_to_numpy(self.schedule(optimizer.iterations)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._installed is not None:
            logs["momentum"] = self.current()

    def on_train_end(self, logs=None):
        if self._installed is not None:
            optimizer, name, static = self._installed
            setattr(optimizer, name, static)
            self._installed = None
            self.model.make_train_function(force=True)


class ScheduleLogger(keras.callbacks.Callback):
    """Write the learning rate (and a cycled momentum) of every step to TensorBoard.

    Keras' TensorBoard callback logs the rate once per epoch; a schedule
    moves at every step, and with `steps_per_execution > 1` callbacks run
    once per execution. The rate is a pure function of the step (or, for a
    constant or plateau-reduced rate, constant within the execution), so
    each execution's steps are written at their own step numbers.

    Args:
        log_dir: The event files' folder.
        momentum: A `CycleMomentum` whose values are logged too. Defaults to `None`.
    """

    def __init__(self, log_dir: str, momentum: CycleMomentum | None = None):
        super().__init__()
        self.log_dir = str(log_dir)
        self.momentum = momentum

    def on_train_begin(self, logs=None):
        from kerasguide.monitors import shared_writer

        # TensorBoard's event writer in plain Python (`kerasguide.monitors.EventWriter`): an eager
        # `tf.summary.scalar` costs about a millisecond, and this writes two per training step.
        self._writer = shared_writer(self.log_dir)
        self._done = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        # The rate (and momentum) of every step of this fit, computed once: the schedules are
        # pure functions of the step, and a vector of them costs one eager evaluation.
        params = self.params or {}
        total = int(params.get("epochs") or 0) * int(params.get("steps") or 0)
        self._first = self._done
        steps = np.arange(self._done, self._done + total, dtype=np.int64)
        self._tables = {name: (self._values(fn, steps) if total else np.zeros(0))
                        for name, fn in self._schedules().items()}

    def _schedules(self) -> dict[str, Callable[[Any], Any]]:
        inner = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        schedules = {}
        schedule = getattr(inner, "_learning_rate", None)
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            schedules["lr"] = schedule
        if self.momentum is not None and self.momentum._installed is not None:
            schedules["momentum"] = self.momentum.schedule
        return schedules

    def _of(self, name: str, fn: Callable[[Any], Any], steps: np.ndarray) -> np.ndarray:
        table = self._tables.get(name)
        offset = int(steps[0]) - self._first
        if table is not None and offset >= 0 and offset + len(steps) <= len(table):
            return table[offset: offset + len(steps)]
        return self._values(fn, steps)

    def _values(self, fn: Callable[[Any], Any], steps: np.ndarray) -> np.ndarray:
        try:  # our schedules and most of Keras' take a vector of steps
            values = np.asarray(ops.convert_to_numpy(fn(steps)), dtype=np.float64).reshape(-1)
            if values.shape == steps.shape:
                return values
        except Exception:  # noqa: BLE001 - e.g. CosineDecay's ops.cond needs a scalar
            pass
        return np.array([float(ops.convert_to_numpy(fn(int(s)))) for s in steps])

    def on_train_batch_end(self, batch, logs=None):
        optimizer = self.model.optimizer
        now = int(ops.convert_to_numpy(optimizer.iterations))
        if now <= self._done:
            return
        steps = np.arange(self._done, now, dtype=np.int64)
        # The rate behind `optimizer.learning_rate`: a schedule of the step, or one value.
        schedules = self._schedules()
        if "lr" in schedules:
            lrs = self._of("lr", schedules["lr"], steps)
        else:
            lrs = np.full(len(steps), float(ops.convert_to_numpy(optimizer.learning_rate)))
        moms = self._of("momentum", schedules["momentum"], steps) if "momentum" in schedules else None
        for i, step in enumerate(steps.tolist()):
            self._writer.scalar("schedule/learning_rate", lrs[i], step, "the learning rate of each step (G22-G23)")
            if moms is not None:
                self._writer.scalar("schedule/momentum", moms[i], step, "the cycled momentum of each step (G23)")
        self._done = now

    def on_train_end(self, logs=None):
        from kerasguide.monitors import release_writer

        self._writer.flush()
        release_writer(self.log_dir, force=True)


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
        from kerasguide.config import ConfigError

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
                from kerasguide.config import ConfigError

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
        from kerasguide.config import ConfigError

        raise ConfigError(f"schedule.kind = {kind!r} is not available")
    if warmup > 0:
        schedule = LinearWarmup(schedule, warmup)
    return schedule, callbacks
