"""GUI test setup: offscreen Qt, a temp settings file, a window factory, a fake CLI."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QCoreApplication, QSettings, Qt

# QtWebEngine wants shared GL contexts set before the QApplication exists
# (pytest-qt's `qapp` creates it after this file is imported).
QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)

from gui_support import ALL_COMMANDS, FAKE_CLI  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _styled_app(qapp):
    from kerasguide_gui.app import create_application

    return create_application()


@pytest.fixture
def settings(tmp_path):
    from kerasguide_gui.settings import AppSettings

    store = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    store.set_workspace(tmp_path / "runs")
    return store


@pytest.fixture
def make_window(qtbot, settings):
    """`make_window(program=None, commands=ALL_COMMANDS)` -> a shown MainWindow, shut down after."""
    from kerasguide_gui.app import MainWindow
    from kerasguide_gui.commands import CommandSet

    windows = []

    def make(program=None, commands=ALL_COMMANDS, settings_=None):
        window = MainWindow(settings=settings_ or settings, program=program or FAKE_CLI,
                            commands=CommandSet(dict(commands)), ask_before_close=False)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.shutdown()


@pytest.fixture
def fake_mode(monkeypatch):
    """Set the fake CLI's scenario: `fake_mode("fail")`."""

    def set_mode(mode: str, delay: float = 0.02) -> None:
        monkeypatch.setenv("FAKE_CLI_MODE", mode)
        monkeypatch.setenv("FAKE_CLI_DELAY", str(delay))

    set_mode("ok")
    return set_mode
