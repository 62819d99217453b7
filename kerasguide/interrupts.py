"""Ctrl-C and SIGTERM: telling the user's interruption from a failure, also when TensorFlow wrapped it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["INTERRUPTED", "StopRun", "is_interrupt", "unwrapped_interrupts", "request_interrupt",
           "interrupt_requested", "clear_interrupt_request"]

# Set by the CLI's signal handlers before they raise KeyboardInterrupt: a KeyboardInterrupt raised inside
# TensorFlow's tracing can leave it broken and come out as another error (an AttributeError from
# tf.while_loop was seen), which is still the user's interruption.
_REQUESTED = threading.Event()


def request_interrupt() -> None:
    """Note that the user asked to stop (Ctrl-C or SIGTERM): any error from now on is that interruption."""
    _REQUESTED.set()


def interrupt_requested() -> bool:
    return _REQUESTED.is_set()


def clear_interrupt_request() -> None:
    """Forget an earlier request (a new command starts)."""
    _REQUESTED.clear()

INTERRUPTED = "interrupted by the user (Ctrl-C or SIGTERM)"


class StopRun(Exception):
    """Raised by a stage or a recipe to end a run early with a status (e.g. `checks_failed`)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def is_interrupt(error: BaseException | None) -> bool:
    """True for Ctrl-C or SIGTERM (the CLI's `KeyboardInterrupt`), also when TensorFlow has wrapped it.

    A signal that arrives while TensorFlow's C++ layer is building an
    exception of its own (seen while it traced a function) comes out as
    `RuntimeError: pybind11::error_already_set: MISMATCH ... REPLACED BY
    KeyboardInterrupt`: still the user's interruption, not a failed run. So is any error once the
    user asked to stop (`request_interrupt`).
    """
    if error is not None and interrupt_requested():
        return True
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, KeyboardInterrupt) or "REPLACED BY KeyboardInterrupt" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def unwrapped_interrupts() -> Iterator[None]:
    """Re-raise an interruption that TensorFlow wrapped in another exception as `KeyboardInterrupt`."""
    try:
        yield
    except Exception as error:
        if is_interrupt(error):
            raise KeyboardInterrupt from error
        raise
