"""The one exception every kerasguide reader and command turns into a single line for the user."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config that cannot be used. Its message is one line meant for a user."""
