"""The main window's frame: keyboard shortcuts, its icon, its size, the web engine's sandbox flag,
and TensorBoard pointed at the runs selected in the runs browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence


def test_keyboard_shortcuts_open_save_and_run(make_window, qtbot, fake_mode, tmp_path, monkeypatch):
    window = make_window()
    shortcuts = {
        window.open_action: QKeySequence(QKeySequence.StandardKey.Open),
        window.save_action: QKeySequence(QKeySequence.StandardKey.Save),
        window.job_actions["run"]: QKeySequence("Ctrl+R"),
    }
    for action, keys in shortcuts.items():
        assert not keys.isEmpty() and action.shortcut() == keys, action.text()
    # no two actions share a shortcut (an ambiguous one fires neither)
    taken = [a.shortcut().toString() for a in window.findChildren(type(window.open_action)) if not a.shortcut().isEmpty()]
    assert len(taken) == len(set(taken)), taken
    # Ctrl+S on an untitled config asks where to save; Ctrl+R starts a run
    target = tmp_path / "saved.toml"
    monkeypatch.setattr("kerasguide_gui.app.QFileDialog.getSaveFileName", lambda *a, **k: (str(target), ""))
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert target.is_file() and window.document.path == target.resolve()
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert len(window.queue.jobs) == 1 and window.queue.jobs[0].kind == "run"
    qtbot.waitUntil(lambda: window.queue.jobs[0].finished_state, timeout=20000)


def test_the_window_has_the_app_icon_and_a_sensible_size(make_window):
    from kerasguide_gui import icons

    window = make_window()
    folder = icons.icon_dir()
    assert (folder / "kerasguide.svg").is_file() and (folder / "kerasguide.png").is_file()
    assert not window.windowIcon().isNull()
    assert not window.windowIcon().pixmap(64, 64).isNull()
    assert window.minimumWidth() >= 640 and window.minimumHeight() >= 480


@pytest.mark.parametrize("euid, expected", [(0, True), (1000, False)])
def test_no_sandbox_only_as_root(monkeypatch, euid, expected):
    from kerasguide_gui import app

    monkeypatch.delenv("QTWEBENGINE_CHROMIUM_FLAGS", raising=False)
    monkeypatch.setattr(app.os, "geteuid", lambda: euid)
    app.prepare_environment()
    flags = app.os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "").split()
    assert ("--no-sandbox" in flags) is expected
    app.prepare_environment()  # idempotent
    assert app.os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "").split().count("--no-sandbox") == int(expected)


def test_tensorboard_follows_the_selected_runs(make_window, tmp_path, monkeypatch):
    from kerasguide_gui.board import BoardView, board_argv

    runs = [tmp_path / "20260102-030405-alpha-1", tmp_path / "20260102-030406-beta:2"]
    for run in runs:
        (run / "tb").mkdir(parents=True)
    argv = board_argv(runs, 6006)
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and "--logdir" not in argv
    spec = argv[argv.index("--logdir_spec") + 1]
    # The run directories, not their tb/ (a session at a logdir's root is "." to the HParams plugin).
    assert spec == f"030405-alpha-1:{runs[0]},030406-beta_2:{runs[1]}"
    one = board_argv([runs[0]], 6006)
    assert one[one.index("--logdir") + 1] == str(runs[0])

    window = make_window()
    started: list[list[Path]] = []
    monkeypatch.setattr(window.board_server, "start", lambda dirs: started.append(list(dirs)))
    window.set_workspace(tmp_path)
    window.tabs.setCurrentIndex(window.TABS.index("TensorBoard"))
    assert started[-1] == [tmp_path.resolve()]  # nothing selected: the whole workspace
    window.runs.selectionChanged.emit(runs)  # runs selected in the browser
    assert started[-1] == runs
    window.board.scope.setCurrentText(BoardView.ALL)
    assert started[-1] == [tmp_path.resolve()]
