"""run.json's opening fields, the same for every command (`run`, `check`, `lr-find`)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasguide import __version__
from kerasguide.config import RunConfig, dump_config
from kerasguide.rundir import utc_now

__all__ = ["run_header", "versions", "git_commit", "resolved_config"]


def run_header(config: RunConfig, config_path: str | None, **fields: Any) -> dict[str, Any]:
    """The fields every command's run.json starts with, plus `fields` (`kind` goes first)."""
    return {
        "format_version": 1,
        **({"kind": fields.pop("kind")} if fields.get("kind") else {}),
        "name": config.name,
        "status": "running",
        "started": utc_now(),
        "ended": None,
        "seed": config.train.seed,
        "config_path": config_path,
        "command": " ".join(sys.argv),
        "versions": versions(),
        **{k: v for k, v in fields.items() if k != "kind"},
        "pid": os.getpid(),
    }


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


def resolved_config(config: RunConfig, header: str | None = None) -> str:
    """config.toml's text: the resolved config, every default filled in, after an optional comment line."""
    return (f"# {header}\n" if header else "") + dump_config(config)
