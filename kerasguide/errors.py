"""The one exception every kerasguide reader and command turns into a single line for the user."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "CommandFailed", "one_line", "MAX_MESSAGE"]

# The longest line a bad input gets (issue 15: a 10 MB config of unknown keys printed one 76 MB line).
MAX_MESSAGE = 300


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` as one line of at most `limit` characters: every character that is not printable (line breaks,
    but also U+0085 or U+2028, which split lines too) escaped, the middle cut with " ... "."""
    text = str(text)
    if len(text) > 4 * limit:  # escape only what can be kept: a message may hold a 10 MB value
        text = text[: 2 * limit] + text[-2 * limit :]
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
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
