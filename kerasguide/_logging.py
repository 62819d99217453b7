"""The library logger: `logging.getLogger("kerasguide")`, one handler, `set_verbosity`."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["get_logger", "set_verbosity", "quiet_tensorflow", "import_tensorflow"]

_LOGGER = logging.getLogger("kerasguide")
_HANDLER: logging.Handler | None = None


def get_logger() -> logging.Logger:
    """The kerasguide logger, with a stderr handler added once."""
    global _HANDLER
    if _HANDLER is None:
        _HANDLER = logging.StreamHandler(sys.stderr)
        _HANDLER.setFormatter(logging.Formatter("kerasguide: %(message)s"))
        _LOGGER.addHandler(_HANDLER)
        _LOGGER.setLevel(logging.INFO)
        _LOGGER.propagate = False
    return _LOGGER


def set_verbosity(level: int | str) -> None:
    """Set the kerasguide logger's level (`logging.INFO`, `"WARNING"`, ...)."""
    get_logger().setLevel(level)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ and Python chatter out of the user's way.

    Must run before TensorFlow is imported to silence the C++ side.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def import_tensorflow():
    """Import TensorFlow and Keras with their start-up chatter hidden.

    TensorFlow's C++ side prints "Could not find cuda drivers" and absl's
    "All log messages before absl::InitializeLog()" on a CPU machine before
    `TF_CPP_MIN_LOG_LEVEL` takes effect, straight to file descriptor 2. The
    only way to keep them from the user is to point fd 2 at /dev/null for
    the duration of the import (Python errors raised by it still show).
    """
    quiet_tensorflow()
    # TensorFlow is imported here, on demand: this module is also imported by the app, which never loads it.
    if "tensorflow" in sys.modules:
        import tensorflow

        return tensorflow
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. some embedded hosts)
        import tensorflow

        return tensorflow
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow
