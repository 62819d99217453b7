"""Where a run's numbers come from: the library versions and the code's git commit (recipe I32)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasguide import __version__

__all__ = ["versions", "git_commit"]


def versions() -> dict[str, str]:
    """The versions that decide a run's numbers."""
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "kerasguide": __version__,
    }


def git_commit(cwd: Path) -> dict[str, Any] | None:
    """The git commit of the working directory (code identity, recipe I32), if any."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None
