"""The library logger: `logging.getLogger("kerasguide")`, a `NullHandler` only; output is the application's.

Importing kerasguide configures nothing: the "kerasguide" logger gets a
`logging.NullHandler` (no "No handlers could be found" fallback to stderr)
and TensorFlow's loggers and environment are left as they are. The command
line calls `configure_cli_output()`: "kerasguide: ..." lines on stderr at
INFO and TensorFlow quieted. A Python-API user configures `logging` as for
any library, or calls `set_verbosity("INFO")` to get the CLI's lines.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["get_logger", "set_verbosity", "configure_cli_output", "quiet_tensorflow", "import_tensorflow"]

_LOGGER = logging.getLogger("kerasguide")
if not any(isinstance(h, logging.NullHandler) for h in _LOGGER.handlers):  # a module reloaded adds no second one
    _LOGGER.addHandler(logging.NullHandler())

FORMAT = "kerasguide: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is at each message, as `logging.lastResort` does.

    Bound at creation, a handler made in one context (a test's capsys, a
    `contextlib.redirect_stderr`) would keep writing to that stream after it is gone.
    """

    def __init__(self, level: int = logging.NOTSET):
        logging.Handler.__init__(self, level)  # StreamHandler.__init__ would bind a stream

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # setStream and flush assign nothing lasting: the stream is always sys.stderr
        pass


_HANDLER: logging.Handler | None = None


def get_logger() -> logging.Logger:
    """The kerasguide logger. Adds no handler: configuring output is the application's (the CLI's) business."""
    return _LOGGER


def _attach_stderr() -> None:
    """The "kerasguide: ..." stderr handler, once per process however often it is asked for."""
    global _HANDLER
    if _HANDLER is None:
        _HANDLER = _StderrHandler()
        _HANDLER.setFormatter(logging.Formatter(FORMAT))
        _LOGGER.addHandler(_HANDLER)
    # kerasguide prints its own lines: a root handler (basicConfig, absl's) would print each one again.
    _LOGGER.propagate = False


def set_verbosity(level: int | str) -> None:
    """Print kerasguide's messages at `level` and above (`logging.INFO`, `"WARNING"`, ...) on stderr.

    For Python-API users who want the CLI's "kerasguide: ..." lines without configuring `logging` themselves.
    """
    _attach_stderr()
    _LOGGER.setLevel(level)


def configure_cli_output(level: int | str = logging.INFO) -> None:
    """The command line's output: "kerasguide: ..." on stderr at `level`, TensorFlow quieted. Idempotent."""
    set_verbosity(level)
    quiet_tensorflow()


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ and Python chatter out of the user's way (the CLI's choice, not the library's).

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
    # Only fd 2 for the import's length: loggers and TF_CPP_MIN_LOG_LEVEL are the user's (the CLI quiets them).
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
