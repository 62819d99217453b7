"""The one exception every kerasguide reader and command turns into a single line for the user."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "CommandFailed", "one_line", "MAX_MESSAGE"]

# The longest line a bad input gets (issue 15: a 10 MB config of unknown keys printed one 76 MB line).
MAX_MESSAGE = 300


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` as one line of at most `limit` characters: line breaks escaped, the middle cut with " ... "."""
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    if len(text) <= limit:
        return text
    keep = limit - 5
    return text[: keep - keep // 4] + " ... " + text[len(text) - keep // 4 :]


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
