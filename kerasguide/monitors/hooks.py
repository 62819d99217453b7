"""In-step measurement: constraint hooks, compiled read-and-reset, and the naming helpers the monitors share.

After its update, Keras' optimizer applies each variable's `constraint`
inside the compiled step. The update-ratio and loss monitors wrap that
constraint (the value comes back unchanged, after the original constraint)
with a function that records the step's numbers into their own variables;
the wrap is removed in `on_train_end`. No extra Python call per step, so
`steps_per_execution` keeps its speed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

__all__ = [
    "ConstraintHook",
    "install_hook",
    "remove_hook",
    "retrace",
    "read_and_reset",
    "read_then_zero",
    "is_multi_replica",
    "layer_of_variables",
    "var_name",
]


class ConstraintHook:
    """A variable constraint that first applies the original one, then records (never changes) the value.

    Keras' optimizers call `variable.constraint(variable)` inside the
    compiled step right after the update: the only place where a callback
    can see every step's new weights without its own Python call.
    """

    def __init__(self, inner: Callable | None, fn: Callable[[Any], None]):
        self.inner = inner
        self.fn = fn

    def __call__(self, value):
        if self.inner is not None:
            value = self.inner(value)
        self.fn(value)
        return value


def install_hook(variable, fn: Callable[[Any], None]) -> ConstraintHook:
    """Wrap `variable`'s constraint so that `fn(new_value)` runs after it, inside the compiled step."""
    hook = ConstraintHook(variable.constraint, fn)
    variable.constraint = hook
    return hook


def remove_hook(variable, hook: ConstraintHook) -> None:
    """Take `hook` out of `variable`'s chain of constraints, wherever it is in it."""
    current = variable.constraint
    if current is hook:
        variable.constraint = hook.inner
        return
    while isinstance(current, ConstraintHook):
        if current.inner is hook:
            current.inner = hook.inner
            return
        current = current.inner


def retrace(model: keras.Model) -> None:
    """Make the model trace a new train function, which picks up the hooks just installed or removed."""
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def read_and_reset(counter: tf.Variable, *others: tf.Variable) -> Callable[[], Any]:
    """A compiled `() -> (counter, *others)` that also zeroes `counter`: one call instead of several eager ops.

    Traced now, not at its first call (which would be mid-fit).
    """

    def take():
        values = [tf.identity(counter)] + [tf.identity(v) for v in others]
        with tf.control_dependencies(values):
            counter.assign(tf.zeros_like(counter))
        return values[0] if not others else tuple(values)

    function = tf.function(take, autograph=False)
    function.get_concrete_function()
    return function


def read_then_zero(counter: tf.Variable, *others: tf.Variable) -> Callable[[Any], Any]:
    """For a compiled call: `reset -> (counter, *others)`, zeroing `counter` after the read when `reset` is true.

    A part of the epoch's one call (`kerasguide.monitors.epoch_end`), which runs once with `reset`
    false (on the background thread, beside a training step, to set it up) before training reads it.
    """

    def take(reset):
        values = [tf.identity(counter)] + [tf.identity(v) for v in others]
        with tf.control_dependencies(values):
            # Subtract what was read (x - x is exactly 0), or nothing: an atomic update, no `tf.cond`
            # (which tripled the call's tracing and set-up).
            counter.assign_sub(values[0] * tf.cast(reset, counter.dtype))
        return values[0] if not others else tuple(values)

    return take


def is_multi_replica(model: keras.Model) -> bool:
    """Whether the model trains under a strategy with more than one replica (no in-step hooks then)."""
    strategy = getattr(model, "distribute_strategy", None)
    return bool(strategy is not None and getattr(strategy, "num_replicas_in_sync", 1) > 1)


def layer_of_variables(model: keras.Model) -> dict[int, str]:
    """id(variable) -> name of the (innermost) layer that owns it."""
    owners: dict[int, str] = {}

    def visit(layer):
        for sub in getattr(layer, "layers", None) or getattr(layer, "_layers", []) or []:
            visit(sub)
        for variable in layer.trainable_weights:
            owners.setdefault(id(variable), layer.name)

    for layer in model.layers:
        visit(layer)
    return owners


def var_name(variable) -> str:
    """A variable's path (`dense/kernel`), or its name where it has none."""
    return getattr(variable, "path", None) or variable.name
