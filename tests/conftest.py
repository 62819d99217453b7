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


def cli_in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """`kerasguide.cli.main(ARGS)` in this process (TensorFlow already imported: no 5 s start-up per command).

    Returns what `run_cli` returns (returncode, stdout, stderr), so a test reads either the same way.
    """
    import signal

    from kerasguide.cli import main

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    capsys.readouterr()  # what came before is not this command's
    try:
        code = main(list(args))
    finally:
        for sig, handler in handlers.items():  # the command's own (SIGTERM as Ctrl-C) end with it
            signal.signal(sig, handler)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["kerasguide", *args], code, captured.out, captured.err)


def sigterm_cli_midway(*args: str, until, pause: float = 0.0, timeout: float = 120):
    """Start `python -m kerasguide.cli ARGS --json-progress`, SIGTERM it at the first event `until(event)` accepts.

    Returns `(returncode, stdout, stderr, run_dir)`, the run directory from the events seen.
    """
    import json
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "kerasguide.cli", *args, "--json-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        deadline = time.monotonic() + timeout
        run_dir = None
        while time.monotonic() < deadline:
            event = json.loads(proc.stdout.readline() or "null")
            if event is None:
                raise AssertionError(f"{args[0]} ended early: {proc.stderr.read()[-2000:]}")
            run_dir = event.get("run_dir", run_dir)
            if until(event):
                break
        time.sleep(pause)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err, run_dir


def wait_for(predicate, timeout: float = 120.0):
    """Poll `predicate` every 0.1 s until it returns something true (returned), else fail after `timeout` s."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def tiny_digits(name: str = "tiny", epochs: int = 2, monitors: bool = True, **search):
    """A digits config that trains in a second or two; `search` fills its [search] section (if given)."""
    from kerasguide.config import RunConfig, SearchConfig

    cfg = RunConfig()
    cfg.name = name
    cfg.model.hidden = [16]
    cfg.model.dropout = 0.0
    cfg.train.epochs = epochs
    cfg.train.batch_size = 128
    cfg.optimizer.learning_rate = 1e-2
    cfg.checks.enabled = False
    cfg.monitor.enabled = monitors
    if search:
        cfg.search = SearchConfig(**search)
    return cfg


@pytest.fixture
def tiny_config():
    """A digits config that trains in a second or two."""
    return tiny_digits()


# The GUI tests run in a pytest process of their own (`pytest tests/gui`; `make test` runs both),
# as the app runs in a process of its own: the GUI process never holds TensorFlow. In one process
# the two do not mix: QtWebEngine's software OpenGL loads Mesa's libLLVM, whose command-line
# option registry collides with the LLVM inside TensorFlow's XLA (a segfault when XLA compiles,
# "free(): invalid pointer" at interpreter exit).
_GUI_TESTS = Path(__file__).resolve().parent / "gui"


def _asks_for_gui_tests(config) -> bool:
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        if path == _GUI_TESTS or _GUI_TESTS in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    path = Path(collection_path).resolve()
    if (path == _GUI_TESTS or _GUI_TESTS in path.parents) and not _asks_for_gui_tests(config):
        return True
    return None
