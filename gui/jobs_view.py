"""The Jobs tab: the queue with a progress bar per job, and the selected job's log.

When a job fails, an error panel above its log shows what the child said
last on stderr — never a silent failure.
"""

from __future__ import annotations

import datetime as _dt

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QPalette, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from . import icons
from .jobs import CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING, Job, JobQueue, describe_exit, format_eta
from .search_status import SearchWatch, status_text

__all__ = ["JobsModel", "JobsView"]


class JobsModel(QAbstractTableModel):
    """The queue as a table: job, config, state, progress, ETA, started."""

    HEADERS = ["Job", "Config", "State", "Progress", "ETA", "Started"]
    PROGRESS = 3

    def __init__(self, queue: JobQueue, parent=None):
        super().__init__(parent)
        self.queue = queue
        queue.added.connect(self._added)
        queue.jobChanged.connect(self._changed)

    def job(self, row: int) -> Job:
        return self.queue.jobs[row]

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self.queue.jobs)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.queue.jobs):
            return None
        job = self.queue.jobs[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.UserRole:
            return job
        if role == Qt.ItemDataRole.DecorationRole and column == 2:
            return icons.status_icon(job.state)
        if role == Qt.ItemDataRole.ToolTipRole:
            return job.error or " ".join(job.argv)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column == 0:
            return f"#{job.id} {job.title}"
        if column == 1:
            return job.source
        if column == 2:
            return job.state
        if column == 3:
            return job.progress.describe()
        if column == 4:
            return format_eta(job.progress.remaining) if job.state == RUNNING else ""
        if column == 5:
            return _dt.datetime.fromtimestamp(job.started).strftime("%H:%M:%S") if job.started else ""
        return None

    def _added(self, job: Job) -> None:
        row = self.queue.jobs.index(job)
        self.beginInsertRows(QModelIndex(), row, row)
        self.endInsertRows()

    def _changed(self, job: Job) -> None:
        if job in self.queue.jobs:
            row = self.queue.jobs.index(job)
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.HEADERS) - 1))

    def reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()


class _ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column as a progress bar with the job's one-line status."""

    def paint(self, painter, option, index) -> None:
        job = index.data(Qt.ItemDataRole.UserRole)
        if job is None:
            return super().paint(painter, option, index)
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(option.rect.adjusted(3, 3, -3, -3))
        bar.minimum, bar.maximum = 0, 1000
        fraction = job.progress.fraction
        if job.state == COMPLETED:
            fraction = 1.0
        bar.progress = int(1000 * fraction) if fraction is not None else 0
        if job.state == RUNNING and fraction is None:
            bar.minimum = bar.maximum = 0  # busy
        bar.text = index.data() or job.state
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = QPalette(option.palette)
        bar.palette.setColor(QPalette.ColorRole.Highlight, QColor("#4f8fe6"))
        bar.palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)


class JobsView(QWidget):
    """The Jobs tab.

    Signals:
        openRun(str): "show this job's run directory in the runs browser".
    """

    openRun = Signal(str)

    def __init__(self, queue: JobQueue, parent=None):
        super().__init__(parent)
        self.queue = queue
        self.model = JobsModel(queue, self)
        self.table = QTableView()
        self.table.setObjectName("jobsTable")
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(JobsModel.PROGRESS, _ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(JobsModel.PROGRESS, QHeaderView.ResizeMode.Stretch)
        for column, width in ((0, 170), (1, 190), (2, 110), (4, 60), (5, 70)):
            self.table.setColumnWidth(column, width)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_current())
        queue.jobChanged.connect(self._job_changed)
        queue.added.connect(self._job_added)

        self.title = QLabel("No jobs yet: Check, Find LR or Run a config (toolbar).")
        self.title.setObjectName("jobTitle")
        self.bar = QProgressBar()
        self.bar.setObjectName("jobProgress")
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.detail = QLabel()
        self.detail.setObjectName("jobDetail")
        self.detail.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelJob")
        self.cancel_button.setToolTip("Stop this job (SIGTERM: the run is recorded as interrupted)")
        self.cancel_button.clicked.connect(self._cancel)
        self.open_button = QPushButton("Show run")
        self.open_button.clicked.connect(self._open)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.clicked.connect(self._clear)
        # A running search: its status (`search-status --json`, polled) and a graceful Stop (`--stop`).
        self.stop_search_button = QPushButton("Stop search")
        self.stop_search_button.setObjectName("stopSearch")
        self.stop_search_button.setToolTip("Stop the search gracefully: its running trials finish, no new one "
                                           "starts, it is recorded as stopped; Tune resumes it later")
        self.stop_search_button.clicked.connect(self._stop_search)
        self.stop_search_button.hide()
        self.search_status = QLabel()
        self.search_status.setObjectName("searchStatus")
        self.search_status.setWordWrap(True)
        self.search_status.hide()
        self._program: list[str] | None = None  # set_search_status: the CLI that answers search-status
        self._watches: dict[int, SearchWatch] = {}
        buttons = QHBoxLayout()
        buttons.addWidget(self.title, 1)
        buttons.addWidget(self.stop_search_button)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.clear_button)

        self.error_panel = QFrame()
        self.error_panel.setObjectName("errorPanel")
        self.error_title = QLabel()
        self.error_title.setObjectName("errorTitle")
        self.error_title.setWordWrap(True)
        self.error_text = QPlainTextEdit()
        self.error_text.setObjectName("errorText")
        self.error_text.setReadOnly(True)
        self.error_text.setMaximumHeight(150)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.error_text.setFont(mono)
        error_layout = QVBoxLayout(self.error_panel)
        error_layout.addWidget(self.error_title)
        error_layout.addWidget(self.error_text)
        self.error_panel.hide()

        self.log = QPlainTextEdit()
        self.log.setObjectName("jobLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(Job.LOG_LINES)
        self.log.setFont(mono)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)

        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 6, 0, 0)
        detail_layout.addLayout(buttons)
        detail_layout.addWidget(self.bar)
        detail_layout.addWidget(self.detail)
        detail_layout.addWidget(self.search_status)
        detail_layout.addWidget(self.error_panel)
        log_title = QLabel("Log")
        log_title.setObjectName("paneTitle")
        detail_layout.addWidget(log_title)
        detail_layout.addWidget(self.log, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(detail)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(splitter)
        self._current: Job | None = None
        self._show_current()

    def current_job(self) -> Job | None:
        return self._current

    def set_search_status(self, program: list[str] | None) -> None:
        """The CLI argv prefix that has `search-status` (None: it has not; no status, no Stop button)."""
        self._program = list(program) if program else None
        self._update_header()

    def watch_of(self, job: Job) -> SearchWatch | None:
        return self._watches.get(job.id)

    def close_watches(self) -> None:
        for watch in self._watches.values():
            watch.close()
        self._watches.clear()

    def select_job(self, job: Job) -> None:
        if job in self.queue.jobs:
            self.table.selectRow(self.queue.jobs.index(job))
            self._show_current()

    # ------------------------------------------------------------ internals
    def _job_added(self, job: Job) -> None:
        self.select_job(job)

    def _job_changed(self, job: Job) -> None:
        self._follow_search(job)
        if job is self._current:
            self._update_header()

    def _show_current(self) -> None:
        index = self.table.selectionModel().currentIndex()
        job = self.model.job(index.row()) if index.isValid() and index.row() < len(self.queue.jobs) else None
        if job is not self._current:
            if self._current is not None:
                try:
                    self._current.output.disconnect(self._append)
                except (RuntimeError, TypeError):
                    pass
            self._current = job
            self.log.setPlainText("\n".join(job.log) if job else "")
            self.log.moveCursor(QTextCursor.MoveOperation.End)
            if job is not None:
                job.output.connect(self._append)
        self._update_header()

    def _append(self, text: str) -> None:
        bar = self.log.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        cursor = QTextCursor(self.log.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        if at_end:
            bar.setValue(bar.maximum())

    def _update_header(self) -> None:
        job = self._current
        if job is None:
            self.title.setText("No jobs yet: Check, Find LR or Run a config (toolbar)." if not self.queue.jobs
                               else "Select a job")
            self.bar.setValue(0)
            self.bar.setFormat("")
            self.detail.setText("")
            self.error_panel.hide()
            for button in (self.cancel_button, self.open_button):
                button.setEnabled(False)
            self.stop_search_button.hide()
            self.search_status.hide()
            self.clear_button.setEnabled(bool(self.queue.jobs))
            return
        progress = job.progress
        self.title.setText(f"<b>#{job.id} {job.title}</b> — {job.state}")
        fraction = 1.0 if job.state == COMPLETED else progress.fraction
        if job.state == RUNNING and fraction is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * (fraction or 0.0)))
        self.bar.setFormat(progress.describe() or job.state)
        lines = []
        if progress.metrics:
            lines.append("  ".join(f"{k} {v:.4g}" for k, v in progress.metrics.items()))
        if progress.search_dir:
            lines.append(f"search directory: {progress.search_dir}")
        elif job.folder:
            lines.append(f"{job.folder_kind} directory: {job.folder}")
        elif job.run_dir:
            lines.append(f"run directory: {job.run_dir}")
        if job.output_file:
            lines.append(f"writes: {job.output_file}")
        self.detail.setText("\n".join(lines))
        self.cancel_button.setEnabled(job.state in (QUEUED, RUNNING))
        self.open_button.setEnabled(bool(job.run_dir))
        watch = self._watches.get(job.id)
        self.stop_search_button.setVisible(watch is not None)
        if watch is not None:
            requested = bool(watch.status and watch.status.get("stop_requested"))
            self.stop_search_button.setEnabled(job.state == RUNNING and not requested)
            self.stop_search_button.setText("Stopping…" if requested else "Stop search")
        self.search_status.setVisible(watch is not None and watch.status is not None)
        if watch is not None and watch.status is not None:
            self.search_status.setText(status_text(watch.status))
        self.clear_button.setEnabled(any(j.finished_state for j in self.queue.jobs))
        if job.state == FAILED:
            code = job.exit_code
            why = job.error or describe_exit(code)
            said = job.cli_message
            self.error_title.setText(f"✖ {job.title} failed — {why}" + (f": {said}" if said else "")
                                     + ". Last lines of its error output:")
            self.error_text.setPlainText("\n".join(job.stderr_tail) or "(the child wrote nothing on stderr)")
            self.error_panel.show()
        elif job.state == CANCELLED:
            self.error_panel.hide()
        else:
            self.error_panel.hide()

    def _follow_search(self, job: Job) -> None:
        # A tune job that named its search directory is watched while it runs, and once more when it ends.
        watch = self._watches.get(job.id)
        if watch is None and job.kind == "tune" and job.state == RUNNING and job.progress.search_dir and self._program:
            watch = SearchWatch(self._program, job.progress.search_dir, parent=self)
            watch.updated.connect(lambda _status, job=job: job is self._current and self._update_header())
            watch.stopRequested.connect(lambda text, job=job: job._append(f"{text}\n"))
            self._watches[job.id] = watch
            watch.start()
        elif watch is not None and job.finished_state and watch.timer.isActive():
            watch.timer.stop()
            watch.poll()

    def _stop_search(self) -> None:
        watch = self._watches.get(self._current.id) if self._current is not None else None
        if watch is not None:
            watch.stop()
            self.stop_search_button.setEnabled(False)
            self.stop_search_button.setText("Stopping…")

    def _cancel(self) -> None:
        if self._current is not None:
            self._current.cancel()

    def _open(self) -> None:
        if self._current is not None and self._current.run_dir:
            self.openRun.emit(self._current.run_dir)

    def _clear(self) -> None:
        keep = self._current if self._current and not self._current.finished_state else None
        self.queue.remove_finished()
        self.model.reset()
        self._current = None
        if keep is not None:
            self.select_job(keep)
        self._show_current()
