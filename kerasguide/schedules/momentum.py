"""`CycleMomentum`: the optimizer's momentum (or Adam's beta_1) cycled inversely to one-cycle's rate (G23)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from kerasguide._logging import get_logger

__all__ = ["CycleMomentum", "momentum_attribute"]

logger = get_logger()


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

    @property
    def active(self) -> bool:
        """True while the momentum is cycled (from `on_train_begin` to `on_train_end`)."""
        return self._installed is not None

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
