"""A headless install (no [gui] extra, so no PySide6): the CLI trains; the app's commands say what to install.

PySide6 is installed in the test venv, so each child process here gets a
`sitecustomize` that makes it unimportable. `make headless` does the same
check on a real fresh `pip install .` without extras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kerasguide.cli import GUI_MISSING
from tests.conftest import ROOT, run_cli

TINY = textwrap.dedent("""
    name = "headless"
    checks = false
    [data]
    sample = 512
    [model]
    hidden = [8]
    [optimizer]
    learning_rate = 0.01
    [train]
    epochs = 1
    batch_size = 256
    [monitor]
    enabled = false
""")

NO_QT = textwrap.dedent('''
    """Test helper: PySide6 (and its shiboken6) unimportable, as on a headless install."""
    import sys


    class _NoQt:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("PySide6", "shiboken6"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, _NoQt())
''')


@pytest.fixture(scope="module")
def headless_env(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("no_qt")
    (folder / "sitecustomize.py").write_text(NO_QT)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}
    probe = subprocess.run([sys.executable, "-c", "import PySide6"], capture_output=True, text=True,
                           env=dict(os.environ, **env), timeout=60)
    assert probe.returncode != 0 and "No module named 'PySide6'" in probe.stderr, probe.stderr
    return env


def test_a_run_needs_no_pyside6(headless_env, tmp_path):
    config = tmp_path / "headless.toml"
    config.write_text(TINY)
    proc = run_cli("run", str(config), "--out", str(tmp_path / "runs"), env=headless_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert "kerasguide: training 1 epochs" in proc.stderr and "Traceback" not in proc.stderr


def _one_line_exit_2(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr == GUI_MISSING + "\n" and not proc.stdout, proc.stderr[-2000:]


def test_kerasguide_gui_says_to_install_the_gui_extra(headless_env):
    _one_line_exit_2(run_cli("gui", env=headless_env, timeout=60))
    _one_line_exit_2(run_cli("gui", "digits", env=headless_env, timeout=60))


def test_the_app_itself_says_the_same_line(headless_env):
    env = dict(os.environ, **headless_env)
    # `kerasguide gui` runs `python -m kerasguide_gui.app`; the `kerasguide-gui` script imports its `_entry`.
    _one_line_exit_2(subprocess.run([sys.executable, "-m", "kerasguide_gui.app"], capture_output=True, text=True,
                                    cwd=ROOT, env=env, timeout=60))
    script = Path(sys.executable).parent / "kerasguide-gui"
    if not script.exists():
        pytest.skip(f"{script}: the gui-script is not installed in this environment")
    _one_line_exit_2(subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT,
                                    env=env, timeout=60))


def test_importing_the_app_elsewhere_is_an_import_error(headless_env):
    # Another program importing the app module gets the ImportError, not an exit from under it.
    proc = subprocess.run([sys.executable, "-c", "import kerasguide_gui.app"], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, **headless_env), timeout=60)
    assert proc.returncode == 1 and "ModuleNotFoundError: No module named 'PySide6'" in proc.stderr, proc.stderr
