"""One compiled call at the epoch's end for every monitor of a model.

Each monitor registers a part (a Python function that builds a few ops: a
read-and-reset of its in-step counters, a copy of a kernel, the probe's
forward and backward pass) with the model's `EpochEnd`; the first monitor
that asks for its part at an epoch's end runs every part due at that epoch
in one `tf.function` call, the others read what it returned. Each
`tf.function` call costs 0.2-0.5 ms of Python: four monitors made four or
five calls an epoch, a visible part of a small model's epoch.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = ["EpochEnd", "epoch_end"]

_HUBS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class EpochEnd:
    """The parts of one model's epoch-end call, and the compiled call of each set of due parts.

    `add(key, build, due, ready)` registers a part: `build(reset)` returns
    a structure of tensors (traced into the call; a part that reads
    counters zeroes them only where the scalar bool `reset` is true), `due(epoch)` says whether
    it runs at that epoch (None: at every call; for cheap parts such as a
    kernel's copy, so that the set of due parts rarely changes), `ready()`
    whether it is in the call yet (None: always; the probe's pass joins
    once its own function is traced). `take(key, epoch)` (from
    `on_epoch_end` only) returns the part's values for that epoch: the first
    `take` of an epoch runs every due part at once and keeps the others'
    values for their own `take`.

    One compiled function per set of due parts, traced and set up at its
    first use (about 30 ms: as much as the separate calls' own first runs
    were), or ahead of it by `prepare` on the background thread. Not one
    function with each part in a `tf.cond`: that one cost 4x as much to
    trace and set up.
    """

    def __init__(self):
        self._parts: dict[str, tuple[Callable[[], Any], Callable[[int], bool] | None, Callable[[], bool] | None]] = {}
        self._functions: dict[tuple[str, ...], Callable[[], dict[str, Any]]] = {}
        self._epoch: int | None = None
        self._values: dict[str, Any] = {}

    def add(self, key: str, build: Callable[[], Any], due: Callable[[int], bool] | None = None,
            ready: Callable[[], bool] | None = None) -> None:
        """Register (or replace) the part `key`; forgets the values of the epoch being read."""
        self._parts[key] = (build, due, ready)
        self._forget(key)
        self._epoch, self._values = None, {}

    def remove(self, key: str) -> None:
        """Unregister the part `key` (a monitor's `on_train_end`)."""
        if self._parts.pop(key, None) is not None:
            self._forget(key)
        self._values.pop(key, None)

    def _forget(self, key: str) -> None:
        self._functions = {keys: f for keys, f in self._functions.items() if key not in keys}

    def _function(self, keys: tuple[str, ...]) -> Callable[[], dict[str, Any]]:
        function = self._functions.get(keys)
        if function is None:
            builds = {key: self._parts[key][0] for key in keys}
            # autograph off: the parts are straight-line ops (and it slows the tracing).
            function = tf.function(lambda reset: {key: build(reset) for key, build in builds.items()},
                                   autograph=False, input_signature=[tf.TensorSpec([], tf.bool)])
            self._functions[keys] = function
        return function

    def prepare(self, add: str, drop: tuple[str, ...] = ()) -> None:
        """Trace and set up the call of every part with `add` joined and `drop` left out.

        For the background thread: it runs the call once with `reset` false (the parts read and
        zero nothing), so that its first run by the training thread costs no tracing and no
        set-up (80-120 ms with the probe's pass).
        """
        keys = tuple(k for k in list(self._parts) if k == add or k not in drop)
        self._function(keys)(tf.constant(False))

    def take(self, key: str, epoch: int) -> Any:
        """The values of part `key` at `epoch` (None if no such part); runs the epoch's call if not run yet."""
        if key not in self._parts:
            return None
        if self._epoch != epoch or key not in self._values:
            if self._epoch == epoch:  # due, or registered, after this epoch's call: on its own
                keys: tuple[str, ...] = (key,)
            else:
                keys = tuple(k for k, (_, due, ready) in self._parts.items()
                             if k == key or ((ready is None or ready()) and (due is None or due(epoch))))
            self._epoch = epoch
            self._values = self._run(keys)
        value = self._values.pop(key)
        if isinstance(value, _Failed):
            raise value.error
        return value

    def _run(self, keys: tuple[str, ...]) -> dict[str, Any]:
        try:
            return dict(self._function(keys)(tf.constant(True)))
        except Exception as error:
            if len(keys) == 1:
                return {keys[0]: _Failed(error)}
        # One part's failure must not take the other monitors' values with it: each part on its own.
        return {k: v for key in keys for k, v in self._run((key,)).items()}


class _Failed:
    """A part whose call raised: its `take` raises the error, the other parts' values are kept."""

    def __init__(self, error: Exception):
        self.error = error


def epoch_end(model) -> EpochEnd:
    """The `EpochEnd` of `model` (created at its first use; kept as long as the model lives)."""
    hub = _HUBS.get(model)
    if hub is None:
        hub = _HUBS[model] = EpochEnd()
    return hub
