"""The one exception every kerasguide reader and command turns into a single line for the user."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "CommandFailed"]


class ConfigError(ValueError):
    """A config that cannot be used. Its message is one line meant for a user."""


class CommandFailed(RuntimeError):
    """A command's run failed on an error of its own (not bad input): recorded, with its traceback in error.txt.

    Its message is one line; the CLI prints it and exits 1.
    """

    def __init__(self, what: str, run_dir: Path, error: str):
        super().__init__(f"{what} failed: {error} (traceback in {Path(run_dir) / 'error.txt'})")
        self.run_dir = run_dir
        self.error = error
