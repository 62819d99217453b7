"""The app with the real CLI and real TensorBoard: an end-to-end run, a prediction, Cancel, the TensorBoard
tab, no TensorFlow in the GUI process, no orphan processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from gui_support import alive, descendants, python_children
from kerasguide_gui.board import READY, board_argv
from kerasguide_gui.jobs import CANCELLED, COMPLETED, cli_program

from kerasguide.rundir import read_metrics, read_run

TINY = """
name = "tiny"
checks = false
[model]
hidden = [16]
dropout = 0.0
[optimizer]
learning_rate = 0.01
[train]
epochs = {epochs}
batch_size = 128
"""

# The real CLI, and the commands the real parser has (read by the probe in another test).
REAL = {"run": ("--out", "--json-progress", "--epochs", "--quiet")}


def _open_tiny(window, tmp_path, epochs: int) -> None:
    path = tmp_path / f"tiny{epochs}.toml"
    path.write_text(TINY.format(epochs=epochs))
    assert window.open_config(path)
    assert window.document.valid


def test_the_gui_process_never_imports_tensorflow(tmp_path):
    # In a fresh interpreter: pytest's own process may hold TensorFlow from other tests.
    script = textwrap.dedent(f"""
        import json, sys, time
        from kerasguide_gui.app import MainWindow, create_application
        from kerasguide_gui.settings import AppSettings
        from PySide6.QtCore import QSettings
        app = create_application()
        window = MainWindow(AppSettings(QSettings({str(tmp_path / 's.ini')!r}, QSettings.Format.IniFormat)),
                            ask_before_close=False)
        window.set_workspace({str(tmp_path / 'runs')!r})
        window.show()
        deadline = time.monotonic() + 20
        while window.probe.commands is None and time.monotonic() < deadline:
            app.processEvents()
        for index in range(3):  # every tab but TensorBoard's
            window.tabs.setCurrentIndex(index)
            app.processEvents()
        window.runs.curves.figure  # matplotlib's Qt canvas
        window.shutdown()
        print(json.dumps({{"tf": "tensorflow" in sys.modules, "keras": "keras" in sys.modules,
                           "probe": window.probe.commands is not None}}))
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"tf": False, "keras": False, "probe": True}


def test_a_real_run_launched_from_the_gui(make_window, qtbot, tmp_path):
    window = make_window(program=cli_program(), commands=REAL)
    _open_tiny(window, tmp_path, epochs=2)
    job = window.start_job("run")
    assert job.argv[:4] == [sys.executable, "-P", "-m", "kerasguide.cli"]
    qtbot.waitUntil(lambda: job.finished_state, timeout=180000)
    assert job.state == COMPLETED, "\n".join(job.stderr_tail)
    assert job.progress.status == "completed" and job.progress.epoch == 2
    assert window.jobs_view.bar.value() == 1000
    runs = window.runs
    row = runs.model.row_of(job.run_dir)
    assert row >= 0
    info = runs.model.runs[row]
    assert info.status == "completed" and info.record["config_path"] == str(window.document.path)
    headers = runs.model.headers
    val_acc = float(runs.model.index(row, headers.index("val_accuracy")).data())
    assert val_acc == pytest.approx(info.final["val_accuracy"], abs=1e-4) and val_acc > 0.1
    assert len(read_metrics(info.path / "metrics.csv")) == 2
    # its curves are drawn: train and validation loss over the two epochs
    window.tabs.setCurrentIndex(window.TABS.index("Runs"))
    runs.tabs.setCurrentIndex(0)
    runs._show_details(force=True)
    loss_ax = runs.curves.figure.axes[0]
    assert loss_ax.get_title() == "loss" and len(loss_ax.lines) == 2
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2]
    window.close()
    assert python_children() == []


def test_a_real_predict_from_the_runs_browser(make_window, settings, qtbot, tmp_path):
    """The real `kerasguide predict` on a real 1-epoch run: the app's argv, its CSV in the Predictions tab."""
    import numpy as np
    from kerasguide_gui.commands import probe_commands

    config = tmp_path / "tiny1.toml"
    config.write_text(TINY.format(epochs=1))
    workspace = tmp_path / "runs"
    trained = subprocess.run([*cli_program(), "run", str(config), "--out", str(workspace), "--quiet"],
                             capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    run = next(workspace.iterdir())
    data = tmp_path / "new.npz"
    np.savez(data, x=np.random.default_rng(0).uniform(0, 16, size=(7, 64)).astype("float32"))
    settings.set_workspace(workspace)
    window = make_window(program=cli_program(), commands={**REAL, "predict": tuple(probe_commands()["predict"])})
    window.runs.select_paths([run])
    assert window.runs.predict_button.isEnabled()
    job = window.predict(run, data)
    qtbot.waitUntil(lambda: job.finished_state, timeout=180000)
    assert job.state == COMPLETED, "\n".join(job.stderr_tail)
    panel = window.runs.predictions
    assert panel.path == run / "predictions-new.csv" and panel.table.rowCount() == 7
    assert panel.table.horizontalHeaderItem(1).text() == "predicted"
    assert window.runs.TABS[window.runs.tabs.currentIndex()] == "Predictions"
    window.close()
    assert python_children() == []


def test_cancel_stops_a_real_run_and_it_is_marked_interrupted(make_window, qtbot, tmp_path):
    window = make_window(program=cli_program(), commands=REAL)
    _open_tiny(window, tmp_path, epochs=400)
    job = window.start_job("run")
    qtbot.waitUntil(lambda: job.progress.epoch >= 1 or job.finished_state, timeout=180000)
    assert job.state == "running"
    window.cancel_action.trigger()
    qtbot.waitUntil(lambda: job.finished_state, timeout=120000)
    assert "killed" not in "\n".join(job.log), "the CLI did not stop within the grace period"
    assert job.state == CANCELLED
    assert job.progress.status == "interrupted"
    info = read_run(job.run_dir)
    assert info.status == "interrupted"
    assert "interrupted" in (info.record.get("error") or "interrupted")
    assert python_children() == []


def test_tensorboard_tab_starts_loads_restarts_and_leaves_no_orphans(make_window, qtbot, tmp_path):
    window = make_window()
    server = window.board_server
    assert server.state == "stopped"  # nothing started before the tab is shown
    with qtbot.waitSignal(server.ready, timeout=120000):
        window.tabs.setCurrentIndex(window.TABS.index("TensorBoard"))
    argv = board_argv([window.workspace], server.port)
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert server.url.startswith("http://127.0.0.1:")
    web = window.board.web
    qtbot.waitUntil(lambda: web.title() == "TensorBoard", timeout=60000)
    found = []

    def ask() -> bool:  # the page's own app element, once its scripts have built it
        if not found or found[-1] is not True:
            web.page().runJavaScript("document.querySelector('tf-tensorboard, tb-webapp') !== null",
                                     0, found.append)
            qtbot.wait(200)
        return bool(found) and found[-1] is True

    qtbot.waitUntil(ask, timeout=30000)
    # it dies on its own: the app starts it again
    first_pid = server.pid()
    os.kill(first_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: server.state == READY and server.pid() not in (None, first_pid), timeout=120000)
    assert server.restarts == 1
    children = python_children()
    assert any("tensorboard.main" in cmd for _, cmd in children)
    window.close()
    assert python_children() == []
    # not even TensorBoard's own data server (a grandchild)
    assert not any("tensorboard" in cmd for _, cmd in descendants())


APP_SCRIPT = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from kerasguide_gui import app as gui

def later():
    win = next(w for w in QApplication.topLevelWidgets() if isinstance(w, gui.MainWindow))
    win.set_workspace(sys.argv[1])
    def ready(url):
        def loaded(ok):
            print("READY", flush=True)
            QTimer.singleShot(2000, win.close)
        win.board.web.loadFinished.connect(loaded)
    win.board_server.ready.connect(ready)
    win.tabs.setCurrentIndex(win.TABS.index("TensorBoard"))

gui.create_application()  # main() reuses it; the timer needs its event loop
QTimer.singleShot(300, later)
sys.exit(gui.main(None))
"""


def _readline(process: subprocess.Popen, timeout: float) -> str:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(process.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return process.stdout.readline()


def test_the_app_leaves_no_process_behind(tmp_path):
    # The real entry point in its own process: once its window closes, the app
    # exits and every process it started (TensorBoard, its data server, the
    # web engine's helpers) is gone.
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    app = subprocess.Popen([sys.executable, "-c", APP_SCRIPT, str(tmp_path / "runs")], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = _readline(app, timeout=150)
        assert line.strip() == "READY"
        started = descendants(app.pid)
        commands = " ".join(cmd for _, cmd in started)
        assert "tensorboard.main" in commands and "QtWebEngineProcess" in commands
        assert app.wait(timeout=60) == 0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    for _ in range(100):
        if not any(alive(pid) for pid, _ in started):
            break
        time.sleep(0.1)
    assert [cmd for pid, cmd in started if alive(pid)] == []
