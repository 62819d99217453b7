"""Ctrl-C and SIGTERM: telling the user's interruption from a failure, also when TensorFlow wrapped it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["INTERRUPTED", "StopRun", "is_interrupt", "unwrapped_interrupts"]

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
    KeyboardInterrupt`: still the user's interruption, not a failed run.
    """
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
