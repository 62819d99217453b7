"""PySide6 6.12 on CPython 3.11 drops references to None/True/False; the app survives it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LOOP = """
import sys
{prelude}
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication([])
label = QLabel()
class Model(QObject):
    changed = Signal(bool)
model = Model()
model.changed.connect(label.setVisible)
for i in range(20000):
    label.setText(str(i))       # a void method: returns None
    model.changed.emit(i % 2 == 0)  # emit returns True
    app.processEvents()
print("alive")
"""


def _run(prelude: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-c", LOOP.format(prelude=prelude)], capture_output=True,
                          text=True, timeout=120, env=env)


def test_many_void_qt_calls_do_not_crash_the_app():
    result = _run("import kerasguide_gui")
    assert result.returncode == 0 and "alive" in result.stdout, result.stderr[-500:]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal on 3.12+")
def test_without_the_workaround_the_interpreter_aborts():
    # The planted bug: no workaround. If PySide6 fixes its bug this test fails,
    # telling us the workaround can go.
    result = _run("")
    assert result.returncode != 0 and "deallocating" in result.stderr
