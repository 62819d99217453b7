"""The TensorBoard tab: one TensorBoard child on 127.0.0.1, shown in a web view.

`TensorBoardProcess` starts `python -m tensorboard.main` (the argv of
`kerasguide.board.tensorboard_command`, always `--host 127.0.0.1`, a free
port) with `QProcess`, polls it over HTTP without blocking until it
answers, restarts it if it dies on its own (a few times at most), and stops
it (SIGTERM, then SIGKILL) when asked or when the app closes. The web view
(`QWebEngineView`) is created only when the tab is first shown, so
QtWebEngine stays out of the app's start-up.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkReply, QNetworkRequest
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from kerasguide.board import free_port, tensorboard_command

__all__ = ["TensorBoardProcess", "BoardView", "board_argv", "STOPPED", "STARTING", "READY", "FAILED"]

STOPPED, STARTING, READY, FAILED = "stopped", "starting", "ready", "failed"


def board_argv(logdirs: list[Path], port: int) -> list[str]:
    """TensorBoard's argv for a folder of runs or one run (`--logdir`), or several runs (`--logdir_spec`)."""
    argv = tensorboard_command(logdirs, port)
    if argv[argv.index("--host") + 1] != "127.0.0.1":  # never serve beyond this machine
        raise RuntimeError(f"TensorBoard must bind 127.0.0.1. Received: {argv}")
    return argv


class TensorBoardProcess(QObject):
    """A TensorBoard child process with a state, never bound beyond 127.0.0.1.

    Args:
        startup_timeout: Seconds to wait for its first HTTP answer. Defaults to `90`.
        max_restarts: Restarts after unexpected exits before giving up. Defaults to `3`.

    Signals:
        stateChanged(str): `stopped`, `starting`, `ready` or `failed`.
        ready(str): its URL, once it answers.
    """

    stateChanged = Signal(str)
    ready = Signal(str)

    def __init__(self, startup_timeout: float = 90.0, max_restarts: int = 3, parent: QObject | None = None):
        super().__init__(parent)
        self.startup_timeout = startup_timeout
        self.max_restarts = max_restarts
        self.state = STOPPED
        self.process: QProcess | None = None
        self.logdirs: list[Path] = []
        self.port = 0
        self.url = ""
        self.error = ""
        self.restarts = 0
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._deadline = 0.0
        self._stopping = False
        self._net = QNetworkAccessManager(self)
        self._poll = QTimer(self, interval=400)
        self._poll.timeout.connect(self._probe)
        self._pending: QNetworkReply | None = None

    def pid(self) -> int | None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            return int(self.process.processId())
        return None

    def start(self, logdirs: list[Path | str]) -> None:
        """(Re)start on these folders; a no-op if it already serves exactly them."""
        logdirs = [Path(p) for p in logdirs]
        if logdirs == self.logdirs and self.state in (STARTING, READY):
            return
        self.stop()
        self.logdirs = logdirs
        self.restarts = 0
        self._launch()

    def stop(self, timeout_ms: int = 6000) -> None:
        """Stop the child (SIGTERM, then SIGKILL) and wait for it, bounded."""
        self._poll.stop()
        if self._pending is not None:
            self._pending.abort()
            self._pending = None
        process = self.process
        self.process = None
        if process is not None and process.state() != QProcess.ProcessState.NotRunning:
            self._stopping = True
            process.terminate()
            if not process.waitForFinished(timeout_ms):
                process.kill()
                process.waitForFinished(2000)
            self._stopping = False
        if process is not None:
            process.deleteLater()
        self._set_state(STOPPED)

    def _launch(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        argv = board_argv(self.logdirs, self.port)
        argv[0] = sys.executable
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("TF_CPP_MIN_LOG_LEVEL", "3")
        env.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(env)
        process.setStandardOutputFile(QProcess.nullDevice())
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(lambda code, status, p=process: self._exited(p, code))
        process.errorOccurred.connect(lambda err, p=process: self._failed_to_start(p, err))
        self.process = process
        self.error = ""
        self._deadline = time.monotonic() + self.startup_timeout
        self._set_state(STARTING)
        process.start(argv[0], argv[1:])
        self._poll.start()

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", errors="replace")
        for line in text.splitlines():
            if line.strip():
                self.stderr_tail.append(line)

    def _probe(self) -> None:
        if self.process is None or self._pending is not None:
            return
        if time.monotonic() > self._deadline:
            self.error = f"TensorBoard did not answer on {self.url} within {self.startup_timeout:.0f} s"
            self.stop()
            self._set_state(FAILED)
            return
        request = QNetworkRequest(QUrl(self.url))
        request.setTransferTimeout(1500)
        reply = self._net.get(request)
        self._pending = reply
        reply.finished.connect(lambda r=reply: self._probed(r))

    def _probed(self, reply: QNetworkReply) -> None:
        if reply is not self._pending:
            reply.deleteLater()
            return
        self._pending = None
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        reply.deleteLater()
        if reply.error() == QNetworkReply.NetworkError.NoError and status == 200 and self.state == STARTING:
            self._poll.stop()
            self._set_state(READY)
            self.ready.emit(self.url)

    def _exited(self, process: QProcess, code: int) -> None:
        if process is not self.process or self._stopping:
            return  # an old child, or one we stopped on purpose
        self._poll.stop()
        tail = self.stderr_tail[-1] if self.stderr_tail else f"exit code {code}"
        self.process = None
        process.deleteLater()
        if self.restarts < self.max_restarts:
            self.restarts += 1
            self.error = f"TensorBoard exited ({tail}); restarting ({self.restarts}/{self.max_restarts})"
            self._launch()
        else:
            self.error = f"TensorBoard keeps exiting: {tail}"
            self._set_state(FAILED)

    def _failed_to_start(self, process: QProcess, error) -> None:
        if error == QProcess.ProcessError.FailedToStart and process is self.process:
            self._poll.stop()
            self.error = f"could not start TensorBoard: {process.errorString()}"
            self.process = None
            self._set_state(FAILED)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)


class BoardView(QWidget):
    """The TensorBoard tab: which runs to show, the server's state, the page."""

    SELECTED, ALL = "Selected runs", "All runs in the workspace"

    def __init__(self, server: TensorBoardProcess, parent: QWidget | None = None):
        super().__init__(parent)
        self.server = server
        self.web = None  # QWebEngineView, created on first show
        self.workspace: Path | None = None
        self.selected: list[Path] = []
        self.scope = QComboBox()
        self.scope.addItems([self.SELECTED, self.ALL])
        self.scope.currentIndexChanged.connect(lambda *_: self.apply())
        self.status = QLabel("TensorBoard starts when this tab is shown.")
        self.status.setObjectName("boardStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        reload_button = QPushButton("Reload")
        reload_button.clicked.connect(self._reload)
        restart = QPushButton("Restart")
        restart.clicked.connect(self.restart)
        browser = QPushButton("Open in browser")
        browser.clicked.connect(lambda: self.server.url and QDesktopServices.openUrl(QUrl(self.server.url)))
        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.scope)
        top.addWidget(self.status, 1)
        for button in (reload_button, restart, browser):
            top.addWidget(button)
        self.message = QLabel()
        self.message.setObjectName("placeholder")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)
        server.stateChanged.connect(self._state_changed)
        server.ready.connect(self._load)
        self._state_changed(server.state)

    def set_workspace(self, path: Path) -> None:
        self.workspace = Path(path)
        if self.isVisible():
            self.apply()

    def set_selected(self, paths: list[Path]) -> None:
        self.selected = list(paths)
        if self.isVisible() and self.scope.currentText() == self.SELECTED:
            self.apply()

    def logdirs(self) -> list[Path]:
        if self.scope.currentText() == self.SELECTED and self.selected:
            return self.selected
        return [self.workspace] if self.workspace is not None else []

    def apply(self) -> None:
        """Point TensorBoard at the runs this tab should show (restarts it if they changed)."""
        dirs = self.logdirs()
        if not dirs:
            return
        if self.workspace is not None and dirs == [self.workspace]:
            self.workspace.mkdir(parents=True, exist_ok=True)
        self.server.start(dirs)

    def restart(self) -> None:
        self.server.stop()
        self.apply()

    def shutdown(self) -> None:
        self.server.stop()
        if self.web is not None:
            self.web.setUrl(QUrl("about:blank"))
            self.web.deleteLater()
            self.web = None

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._ensure_web()
        self.apply()

    def _ensure_web(self) -> None:
        if self.web is not None:
            return
        from PySide6.QtWebEngineWidgets import QWebEngineView  # QtWebEngine starts Chromium: only when shown

        self.web = QWebEngineView()
        self.web.setObjectName("boardWeb")
        self.stack.addWidget(self.web)

    def _reload(self) -> None:
        if self.web is not None and self.server.state == READY:
            self.web.reload()

    def _load(self, url: str) -> None:
        self._ensure_web()
        self.web.load(QUrl(url))
        self.stack.setCurrentWidget(self.web)

    def _state_changed(self, state: str) -> None:
        names = ", ".join(p.name for p in self.server.logdirs) or "—"
        if state == STARTING:
            self.status.setText(f"Starting TensorBoard on 127.0.0.1:{self.server.port} for {names} …")
            self.message.setText("Starting TensorBoard …\n(the first start takes a few seconds)")
            self.stack.setCurrentWidget(self.message)
        elif state == READY:
            self.status.setText(f"TensorBoard {self.server.url} — {names}")
        elif state == FAILED:
            tail = "\n".join(list(self.server.stderr_tail)[-6:])
            self.status.setText("TensorBoard failed")
            self.message.setText(f"{self.server.error}\n\n{tail}".strip())
            self.stack.setCurrentWidget(self.message)
        else:
            self.status.setText("TensorBoard is stopped.")
