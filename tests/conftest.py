"""Test setup: quiet TensorFlow, offscreen Qt, small helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")
if hasattr(os, "geteuid") and os.geteuid() == 0:
    os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 300, env: dict | None = None):
    """Run `python -m kerasguide.cli ARGS` in a child process; returns CompletedProcess."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "kerasguide.cli", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def tiny_config():
    """A digits config that trains in a second or two."""
    from kerasguide.config import RunConfig

    cfg = RunConfig()
    cfg.name = "tiny"
    cfg.model.hidden = [16]
    cfg.model.dropout = 0.0
    cfg.train.epochs = 2
    cfg.train.batch_size = 128
    cfg.optimizer.learning_rate = 1e-2
    cfg.checks.enabled = False
    return cfg
