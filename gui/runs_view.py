"""The runs browser: the run directories of the workspace, and what each recorded.

`RunsModel` is a table over `kerasguide.rundir.list_runs` (status, key
metrics, best score, date), re-read when the folder changes and every two
seconds while a run is live. Search directories (`kerasguide tune`) and
ensemble directories (`kerasguide ensemble`) are rows too, with their best
trial or the ensemble's score, each followed by the runs inside it (its
trials or members, indented). `RunsBrowser` shows the selected run's curves,
config, report, checks, LR range test, diagnosis and predictions (for a
search or an ensemble: its trials' or members' curves and search.md /
ensemble.md); with two runs selected it compares their curves and their
configs key by key. Predict… (enabled for a run with a checkpoint, its
tooltip says why not), Resume (`kerasguide run --resume RUN_DIR`: enabled for
one killed, interrupted or failed run) and the table's context menu (which
also offers an ensemble of the selected runs or of one run's snapshots) ask
the window to start those jobs; the browser only picks the inputs.
"""

from __future__ import annotations

import datetime as _dt
import math
import tomllib
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QFileSystemWatcher,
    QItemSelectionModel,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QAction, QDesktopServices, QFont, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from kerasguide.rundir import (
    CHECKS_JSON,
    CONFIG,
    DIAGNOSIS_JSON,
    LR_FIND_JSON,
    REPORT_MD,
    RunInfo,
    list_runs,
    read_json,
    read_metrics,
)

from . import icons
from .panels import ChecksPanel, DiagnosisPanel, LRFindPanel, PredictionsPanel, ReportPanel, fmt
from .plots import RUN_COLORS, PlotWidget, draw_curves
from .predict import input_help, predict_unavailable, prediction_files, snapshot_files
from .schema import config_diff

__all__ = ["RunsModel", "RunsBrowser", "key_metrics", "run_duration", "local_time", "short_label",
           "best_text", "report_file", "RESUMABLE", "resume_unavailable", "resumed_text"]

# What a folder of runs writes instead of report.md.
_GROUP_REPORT = {"search": "search.md", "ensemble": "ensemble.md"}
_GROUP_FILES = ("search.json", "ensemble.json", "search.md", "ensemble.md")

# What `kerasguide run --resume` continues: kerasguide.spine.reopen.RESUMABLE, copied (that package imports
# TensorFlow, which the app never does; tests/gui/test_resume.py checks the two stay the same).
RESUMABLE = ("killed", "interrupted", "failed")

# Classification runs: accuracy and loss; regression runs (no accuracy): MAE, RMSE and loss.
_PREFERRED = ["val_accuracy", "val_mae", "val_rmse", "val_loss", "test_accuracy", "test_mae", "test_loss",
              "accuracy", "mae", "loss"]


def key_metrics(runs: list[RunInfo], limit: int = 3) -> list[str]:
    """The metric columns worth a column: validation accuracy (a regression's MAE and RMSE) and loss first.

    A workspace holding both kinds of runs gets one more column, so that the loss still shows.
    """
    seen: list[str] = []
    for info in runs:
        for key in info.final:
            if key not in seen:
                seen.append(key)
    if "val_accuracy" in seen and "val_mae" in seen:
        limit += 1
    ordered = [k for k in _PREFERRED if k in seen] + sorted(k for k in seen if k not in _PREFERRED)
    return ordered[:limit]


def best_text(info: RunInfo) -> str:
    """The Best column: `val_accuracy 0.9812 @ 12` for a run (at its epoch), `... · trial 2-3`
    for a search (its best trial), `... (ensemble)` for an ensemble."""
    best = info.best
    value = best.get("value")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return ""
    text = f"{best.get('metric', '')} {value:.4f}"
    if best.get("trial") is not None:
        return f"{text} · trial {best['trial']}"
    if best.get("label"):
        return f"{text} ({best['label']})"
    return f"{text} @ {best.get('epoch', '?')}"


def resume_unavailable(info: RunInfo | None) -> str | None:
    """Why Resume is disabled for a row of the runs browser (its tooltip), or None when `run --resume` takes it.

    Only a plain run resumes: a search resumes with Tune (and its killed trials
    with it), a sanity-checks or LR-test run has nothing to continue, and a run
    still running (or another host's whose heartbeat stopped) has an owner.
    """
    if info is None:
        return "select one run to resume it"
    if info.kind == "search":
        return "a search resumes with Tune on the same config (its killed trials with it)"
    if info.kind == "ensemble":
        return "an ensemble directory is not a run: resume one of its members"
    if info.kind != "run":
        what = {"check": "a sanity-checks run", "lr_find": "an LR range test"}.get(info.kind, f"a {info.kind} run")
        return f"{what} has nothing to resume: run it again"
    if info.parent is not None and info.path.parent.name == "trials":
        return "a trial of a search: Tune on the same config resumes the search and this trial with it"
    if info.status == "running":
        if info.is_stale():  # another host's run: only that host can tell whether its process is gone
            host = info.record.get("host")
            return f"its heartbeat stopped, but its process may live on {host or 'another host'}: resume it there"
        return "still running: nothing to resume"
    if info.status not in RESUMABLE:
        return (f"{info.status.replace('_', ' ')}: nothing to resume "
                "(Resume continues a killed, interrupted or failed run)")
    return None


def resumed_text(record: dict[str, Any]) -> str:
    """run.json's `resumed` in words, each resumption: `resumed after epoch 3 (from killed)`; "" if never."""
    parts = []
    for entry in record.get("resumed") or []:
        if not isinstance(entry, dict):
            continue
        before = entry.get("status_before")
        came = f" (from {before})" if before else ""
        if entry.get("from") == "start":  # killed before its first backup: its epochs started again
            parts.append(f"from the start, no backup yet{came}")
        else:
            parts.append(f"after epoch {entry.get('epoch', '?')}{came}")
    return "resumed " + ", then ".join(parts) if parts else ""


def report_file(info: RunInfo) -> Path:
    """The Markdown report of a run (report.md), a search (search.md) or an ensemble (ensemble.md)."""
    return info.path / _GROUP_REPORT.get(info.kind, REPORT_MD)


def short_label(path: Path) -> str:
    """A run directory's name without its date: `20260102-030405-digits-ab12cd` -> `030405-digits-ab12cd`."""
    name = Path(path).name
    head, _, rest = name.partition("-")
    return rest if head.isdigit() and len(head) == 8 and rest else name


def _parse_time(text: str | None) -> _dt.datetime | None:
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def local_time(text: str | None) -> str:
    """An ISO timestamp as local `YYYY-MM-DD HH:MM`."""
    when = _parse_time(text)
    if when is None:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone()
    return when.strftime("%Y-%m-%d %H:%M")


def run_duration(info: RunInfo) -> float | None:
    """Seconds the run took (or has taken so far)."""
    seconds = info.record.get("seconds")
    if isinstance(seconds, (int, float)):
        return float(seconds)
    start, end = _parse_time(info.started), _parse_time(info.ended)
    if start is None:
        return None
    if end is None:
        if info.status != "running":
            return None
        end = _dt.datetime.now(start.tzinfo)
    return max(0.0, (end - start).total_seconds())


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class RunsModel(QAbstractTableModel):
    """The runs of a workspace folder as a table (newest first)."""

    FIXED_HEAD = ["Run", "Kind", "Status"]
    FIXED_TAIL = ["Best", "Epochs", "Started", "Duration"]

    def __init__(self, parent=None):
        super().__init__(parent)
        self.workspace: Path | None = None
        self.runs: list[RunInfo] = []
        self.metrics: list[str] = []

    @property
    def headers(self) -> list[str]:
        return self.FIXED_HEAD + self.metrics + self.FIXED_TAIL

    def refresh(self, workspace: str | Path | None = None) -> bool:
        """Re-read the workspace; returns True when the set of runs changed."""
        if workspace is not None:
            self.workspace = Path(workspace)
        runs = list_runs(self.workspace, nested=True) if self.workspace else []
        metrics = key_metrics(runs)
        same = [r.path for r in runs] == [r.path for r in self.runs] and metrics == self.metrics
        if same:
            self.runs = runs
            if runs:
                self.dataChanged.emit(self.index(0, 0), self.index(len(runs) - 1, len(self.headers) - 1))
            return False
        self.beginResetModel()
        self.runs, self.metrics = runs, metrics
        self.endResetModel()
        return True

    def any_running(self) -> bool:
        return any(r.status == "running" and not r.is_stale() for r in self.runs)

    def info_of(self, path: str | Path) -> RunInfo | None:
        row = self.row_of(path)
        return self.runs[row] if row >= 0 else None

    def children_of(self, path: str | Path) -> list[RunInfo]:
        """The runs inside a search or ensemble directory (its trials, its members)."""
        path = Path(path).resolve()
        return [r for r in self.runs if r.parent is not None and r.parent.resolve() == path]

    def row_of(self, path: str | Path) -> int:
        path = Path(path).resolve()
        for index, info in enumerate(self.runs):
            if info.path.resolve() == path:
                return index
        return -1

    # Qt model API
    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt's name
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        info = self.runs[index.row()]
        column = self.headers[index.column()]
        # killed: its process is gone from this host; killed?: another host's run whose heartbeat stopped
        status = "killed?" if info.status == "running" and info.is_stale() else info.status
        if role == Qt.ItemDataRole.UserRole:
            return info
        if role == Qt.ItemDataRole.DecorationRole and column == "Status":
            return icons.status_icon("failed" if status == "killed?" else status)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == "Status" and info.record.get("error"):
                return str(info.record["error"])
            return str(info.path)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in self.metrics + ["Epochs", "Duration"]:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole + 1:  # sort key
            return self._sort_key(info, column)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column == "Run":
            return f"    ↳ {info.path.name}" if info.parent is not None else info.path.name
        if column == "Kind":
            if info.parent is not None:
                return {"trials": "trial", "members": "member"}.get(info.path.parent.name, info.kind)
            return info.kind.replace("_", "-")
        if column == "Status":
            return status.replace("_", " ")
        if column in self.metrics:
            value = info.final.get(column)
            return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else ""
        if column == "Best":
            return best_text(info)
        if column == "Epochs":
            if info.kind == "search":
                return f"{info.record.get('trials_done', 0)} trials"
            if info.kind == "ensemble":
                members = info.record.get("members")
                count = len(members) if isinstance(members, list) else info.record.get("members_done", 0)
                return f"{count} members"
            done = info.record.get("epochs_done")
            return str(done) if done is not None else ""
        if column == "Started":
            return local_time(info.started)
        if column == "Duration":
            return _duration_text(run_duration(info))
        return None

    def _sort_key(self, info: RunInfo, column: str):
        if column == "Run":
            return info.path.name
        if column in self.metrics:
            value = info.final.get(column)
            return value if isinstance(value, (int, float)) else -math.inf
        if column == "Started":
            return info.started or ""
        if column == "Duration":
            return run_duration(info) or 0.0
        if column == "Epochs":
            return info.record.get("epochs_done") or 0
        return str(self.data(self.index(self.runs.index(info), self.headers.index(column))) or "")


class _ConfigPane(QStackedWidget):
    """One run: its config.toml. Two runs: the keys that differ, side by side."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.text.setFont(font)
        self.diff = QTableWidget(0, 3)
        self.diff.setObjectName("configDiff")
        self.diff.verticalHeader().hide()
        self.diff.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.diff.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.diff.setAlternatingRowColors(True)
        self.addWidget(self.text)
        self.addWidget(self.diff)

    def show_one(self, run: Path) -> None:
        try:
            self.text.setPlainText((run / CONFIG).read_text(encoding="utf-8"))
        except OSError:
            self.text.setPlainText("(this run has no config.toml)")
        self.setCurrentWidget(self.text)

    def show_two(self, a: Path, b: Path) -> list[tuple[str, Any, Any]]:
        def load(run: Path) -> dict:
            try:
                return tomllib.loads((run / CONFIG).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}

        rows = config_diff(load(a), load(b))
        self.diff.setHorizontalHeaderLabels(["Key", a.name, b.name])
        self.diff.setRowCount(max(1, len(rows)))
        if not rows:
            self.diff.setItem(0, 0, QTableWidgetItem("the two configs are identical"))
            self.diff.setItem(0, 1, QTableWidgetItem(""))
            self.diff.setItem(0, 2, QTableWidgetItem(""))
        for index, (key, va, vb) in enumerate(rows):
            self.diff.setItem(index, 0, QTableWidgetItem(key))
            for column, value in ((1, va), (2, vb)):
                item = QTableWidgetItem(fmt(value) if value is not None else "(unset)")
                item.setForeground(Qt.GlobalColor.darkBlue if column == 1 else Qt.GlobalColor.darkRed)
                self.diff.setItem(index, column, item)
        self.setCurrentWidget(self.diff)
        return rows


class RunsBrowser(QWidget):
    """The Runs tab: the table of runs and the selected run(s) in detail.

    Signals:
        selectionChanged(list): the selected run directories (Paths).
        loadConfig(Path): "load this run's config into the editor".
        diagnoseRun(Path), boardRequested(list), useLearningRate(float),
        workspaceRequested(): the user wants another workspace folder.
        predictRequested(Path, str): "predict with this run on this input" (a file or an image folder).
        fixRun(Path): "repair this run" (`kerasguide fix`), from the Diagnosis tab's Fix button.
        ensembleRequested(str, list): "an ensemble of these runs": mode `runs` or `snapshots`, the Paths.
        resumeRun(Path): "continue this killed, interrupted or failed run" (`kerasguide run --resume`).
    """

    selectionChanged = Signal(list)
    loadConfig = Signal(object)
    diagnoseRun = Signal(object)
    fixRun = Signal(object)
    boardRequested = Signal(list)
    useLearningRate = Signal(float)
    workspaceRequested = Signal()
    predictRequested = Signal(object, str)
    ensembleRequested = Signal(str, list)
    resumeRun = Signal(object)

    TABS = ["Curves", "Config", "Report", "Checks", "LR finder", "Diagnosis", "Predictions"]

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = RunsModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole + 1)
        self.table = QTableView()
        self.table.setObjectName("runsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setHighlightSections(False)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.doubleClicked.connect(lambda *_: self.tabs.setCurrentIndex(self.TABS.index("Report")))
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        self.workspace_label = QLabel()
        self.workspace_label.setObjectName("workspaceLabel")
        self.workspace_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        change = QPushButton("Change…")
        change.clicked.connect(self.workspaceRequested)
        refresh = QPushButton("Refresh")
        refresh.setShortcut("F5")
        refresh.clicked.connect(self.refresh)
        top = QHBoxLayout()
        top.addWidget(QLabel("Workspace:"))
        top.addWidget(self.workspace_label, 1)
        top.addWidget(change)
        top.addWidget(refresh)

        self.load_button = QPushButton("Load config")
        self.load_button.setToolTip("Open this run's config in the editor")
        self.load_button.clicked.connect(lambda: self._emit_current(self.loadConfig))
        self.diagnose_button = QPushButton("Diagnose")
        self.diagnose_button.setToolTip("kerasguide diagnose RUN_DIR")
        self.diagnose_button.clicked.connect(lambda: self._emit_current(self.diagnoseRun))
        self.diagnose_button.setVisible(False)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("resumeButton")
        self.resume_button.clicked.connect(self._resume)
        self.resume_button.setVisible(False)
        self.board_button = QPushButton("Show in TensorBoard")
        self.board_button.clicked.connect(lambda: self.boardRequested.emit(self.selected_paths()))
        self.folder_button = QPushButton("Open folder")
        self.folder_button.clicked.connect(self._open_folder)
        # Predict: on a data file or an image folder, picked from this button's menu.
        self.predict_file_action = QAction("On a data file (npz, csv)…", self)
        self.predict_file_action.setObjectName("predict:file")
        self.predict_file_action.triggered.connect(lambda: self.pick_predict_input(folder=False))
        self.predict_folder_action = QAction("On a folder of images…", self)
        self.predict_folder_action.setObjectName("predict:images")
        self.predict_folder_action.triggered.connect(lambda: self.pick_predict_input(folder=True))
        self.predict_menu = QMenu("Predict", self)
        self.predict_menu.addAction(self.predict_file_action)
        self.predict_menu.addAction(self.predict_folder_action)
        self.predict_button = QPushButton("Predict…")
        self.predict_button.setObjectName("predictButton")
        self.predict_button.setMenu(self.predict_menu)
        self.predict_button.setVisible(False)
        self.ensemble_runs_action = QAction("Ensemble of the selected runs…", self)
        self.ensemble_runs_action.triggered.connect(
            lambda: self.ensembleRequested.emit("runs", self._ensemble_members()))
        self.ensemble_snapshots_action = QAction("Ensemble of this run's snapshots…", self)
        self.ensemble_snapshots_action.triggered.connect(
            lambda: self.ensembleRequested.emit("snapshots", self.selected_paths()[:1]))
        self._predict_available = False
        self._ensemble_available = False
        self.title = QLabel("Select a run")
        self.title.setObjectName("runTitle")
        actions = QHBoxLayout()
        actions.addWidget(self.title, 1)
        for button in (self.load_button, self.resume_button, self.predict_button, self.diagnose_button,
                       self.board_button, self.folder_button):
            actions.addWidget(button)

        self.curves = PlotWidget(height=3.0)
        self.config_pane = _ConfigPane()
        self.report = ReportPanel()
        self.checks = ChecksPanel()
        self.lr_find = LRFindPanel()
        self.lr_find.useLearningRate.connect(self.useLearningRate)
        self.diagnosis = DiagnosisPanel()
        self.diagnosis.fixRequested.connect(lambda: self._emit_current(self.fixRun))
        self.predictions = PredictionsPanel()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("runTabs")
        self.tabs.setDocumentMode(True)
        for name, widget in zip(self.TABS, (self.curves, self.config_pane, self.report, self.checks,
                                            self.lr_find, self.diagnosis, self.predictions), strict=True):
            self.tabs.addTab(widget, name)
        self.tabs.currentChanged.connect(lambda *_: self._show_details())

        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 6, 0, 0)
        detail_layout.addLayout(actions)
        detail_layout.addWidget(self.tabs, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(detail)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)

        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(lambda *_: self._schedule_refresh())
        self._refresh_timer = QTimer(self, singleShot=True, interval=300)
        self._refresh_timer.timeout.connect(self.refresh)
        self.live_timer = QTimer(self, interval=2000)
        self.live_timer.timeout.connect(self._live_tick)
        self._shown_key: tuple | None = None
        self._jobs_active = False
        self._mtimes: dict[Path, float] = {}
        self._update_actions()

    # ------------------------------------------------------------ public
    def set_workspace(self, path: str | Path) -> None:
        path = Path(path)
        if self.watcher.directories():
            self.watcher.removePaths(self.watcher.directories())
        if path.is_dir():
            self.watcher.addPath(str(path))
        self.workspace_label.setText(str(path))
        self.model.refresh(path)
        self._after_refresh(changed=True)

    def set_diagnose_available(self, available: bool) -> None:
        self.diagnose_button.setVisible(available)

    def set_resume_available(self, available: bool) -> None:
        """Show Resume when the CLI's `run` has `--resume`."""
        self.resume_button.setVisible(available)
        self._update_actions()

    def resume_unavailable(self) -> str | None:
        """Why Resume is disabled for the selection (its tooltip), or None when it is enabled."""
        paths = self.selected_paths()
        if len(paths) != 1:
            return "select one run to resume it"
        return resume_unavailable(self.model.info_of(paths[0]))

    def set_fix_available(self, available: bool) -> None:
        """Show the Diagnosis tab's Fix when the CLI has `fix`."""
        self.diagnosis.set_fix_available(available)

    def set_predict_available(self, available: bool) -> None:
        """Show Predict when the CLI has `predict`."""
        self._predict_available = available
        self.predict_button.setVisible(available)
        self._update_actions()

    def set_ensemble_available(self, runs: bool, snapshots: bool) -> None:
        """Offer "ensemble of the selected runs / of this run's snapshots" when the CLI's `ensemble` takes them."""
        self._ensemble_available = runs
        self.ensemble_runs_action.setVisible(runs)
        self.ensemble_snapshots_action.setVisible(snapshots)
        self._update_actions()

    def predict_unavailable(self) -> str | None:
        """Why Predict is disabled for the selection (its tooltip), or None when it is enabled."""
        paths = self.selected_paths()
        if len(paths) != 1:
            return "select one run to predict with its best checkpoint"
        return predict_unavailable(self.model.info_of(paths[0]))

    def pick_predict_input(self, folder: bool = False) -> str | None:
        """Ask for an input (a data file or a folder of images) and ask to predict on it; returns its path."""
        paths = self.selected_paths()
        if len(paths) != 1 or self.predict_unavailable() is not None:
            return None
        start = self._input_folder(paths[0])
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Predict on a folder of images", start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, f"Predict on {input_help()}", start,
                                                  "Data (*.npz *.csv);;NumPy arrays (*.npz);;CSV (*.csv)")
        if not path:
            return None
        self.predictRequested.emit(paths[0], path)
        return path

    def show_predictions(self, run_dir: str | Path, csv_path: str | Path) -> None:
        """Select a run and show one of its predictions CSVs."""
        self.show_run(run_dir, "Predictions")
        self.predictions.show_file(Path(csv_path))

    def set_live(self, live: bool) -> None:
        """Re-read run files every 2 s while jobs run (and while runs are running)."""
        self._jobs_active = live
        if live and not self.live_timer.isActive():
            self.live_timer.start()
        elif not live:
            self.refresh()

    def refresh(self) -> None:
        if self.model.workspace is None:
            return
        if self.model.workspace.is_dir() and not self.watcher.directories():
            self.watcher.addPath(str(self.model.workspace))
        selected = self.selected_paths()
        changed = self.model.refresh()
        if changed:
            self.select_paths(selected)
        self._after_refresh(changed)

    def selected_paths(self) -> list[Path]:
        rows = sorted(self.table.selectionModel().selectedRows(), key=lambda i: i.row())
        return [self.proxy.mapToSource(i).data(Qt.ItemDataRole.UserRole).path for i in rows]

    def select_paths(self, paths: list[Path | str]) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        for path in paths:
            row = self.model.row_of(path)
            if row < 0:
                continue
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            selection.select(index, QItemSelectionModel.SelectionFlag.Select
                             | QItemSelectionModel.SelectionFlag.Rows)
            self.table.scrollTo(index)

    def show_run(self, path: str | Path, tab: str | None = None) -> None:
        """Select a run (re-reading the folder first) and optionally open one tab."""
        self.refresh()
        self.select_paths([path])
        if tab is not None and tab in self.TABS:
            self.tabs.setCurrentIndex(self.TABS.index(tab))

    # ------------------------------------------------------------ internals
    def _schedule_refresh(self) -> None:
        self._refresh_timer.start()

    def _live_tick(self) -> None:
        self.refresh()
        if not self.model.any_running() and not self._jobs_active:
            self.live_timer.stop()

    def _after_refresh(self, changed: bool) -> None:
        if self.model.any_running() and not self.live_timer.isActive():
            self.live_timer.start()
        self._update_actions()  # a selected run's status may have changed (Resume follows it)
        for column in range(self.model.columnCount() - 1):
            if changed:
                self.table.resizeColumnToContents(column)
        self._show_details(force=changed)

    def _selection_changed(self, *_: Any) -> None:
        self._update_actions()
        self._show_details(force=True)
        self.selectionChanged.emit(self.selected_paths())

    def _resume(self) -> None:
        paths = self.selected_paths()
        if len(paths) == 1 and self.resume_unavailable() is None:
            self.resumeRun.emit(paths[0])

    def _emit_current(self, signal) -> None:
        paths = self.selected_paths()
        if paths:
            signal.emit(paths[0])

    def _open_folder(self) -> None:
        paths = self.selected_paths()
        target = paths[0] if paths else self.model.workspace
        if target is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))

    def _update_actions(self) -> None:
        paths = self.selected_paths()
        for button in (self.load_button, self.diagnose_button, self.folder_button):
            button.setEnabled(len(paths) >= 1)
        # `kerasguide diagnose` reads one run: not a search's or an ensemble's folder.
        first = self.model.info_of(paths[0]) if paths else None
        if first is not None and first.is_group:
            self.diagnose_button.setEnabled(False)
        self.board_button.setEnabled(True)
        why = self.resume_unavailable()
        self.resume_button.setEnabled(why is None)
        self.resume_button.setToolTip(why or f"kerasguide run --resume {first.path.name if first else 'RUN'}: "
                                      "continue from its last backup (weights, optimizer, epoch) in its own directory")
        why = self.predict_unavailable()
        self.predict_button.setEnabled(why is None)
        self.predict_menu.setEnabled(why is None)
        self.predict_button.setToolTip(why or f"kerasguide predict {first.path.name if first else 'RUN'} INPUT: "
                                       f"the best checkpoint's predictions for {input_help()}")
        members = self._ensemble_members()
        self.ensemble_runs_action.setEnabled(len(members) >= 2 or any(
            (info := self.model.info_of(p)) is not None and info.kind == "search" for p in members))
        self.ensemble_snapshots_action.setEnabled(len(paths) == 1 and bool(snapshot_files(paths[0])))

    def _ensemble_members(self) -> list[Path]:
        # What `ensemble --runs` takes from the selection: runs that trained, and search directories.
        members = []
        for path in self.selected_paths():
            info = self.model.info_of(path)
            if info is not None and info.kind in ("run", "fit", "search"):
                members.append(path)
        return members

    def _input_folder(self, run: Path) -> str:
        # The folder of the run's own data file, if it had one: new inputs are often beside it.
        try:
            source = tomllib.loads((run / CONFIG).read_text(encoding="utf-8")).get("data", {}).get("source", "")
        except (OSError, ValueError):
            source = ""
        prefix, _, rest = str(source).partition(":")
        if prefix in ("npz", "csv", "images") and rest:
            parent = Path(rest).expanduser().parent
            if parent.is_dir():
                return str(parent)
        return str(self.model.workspace or "")

    def _context_menu(self, pos) -> None:
        menu = self.context_menu()
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def context_menu(self) -> QMenu:
        """The runs table's context menu for the selection (built each time it opens)."""
        menu = QMenu(self)
        menu.setObjectName("runsContextMenu")
        for button in (self.load_button, self.resume_button, self.diagnose_button):
            if not button.isHidden():
                action = menu.addAction(button.text(), button.click)
                action.setEnabled(button.isEnabled())
                if button is self.resume_button:
                    action.setToolTip(button.toolTip())
                    menu.setToolTipsVisible(True)
        if self._predict_available:
            predict = menu.addMenu(self.predict_menu)
            predict.setEnabled(self.predict_button.isEnabled())
            predict.setToolTip(self.predict_button.toolTip())
            menu.setToolTipsVisible(True)
        if self._ensemble_available:
            menu.addSeparator()
            menu.addAction(self.ensemble_runs_action)
            menu.addAction(self.ensemble_snapshots_action)
        menu.addSeparator()
        menu.addAction(self.board_button.text(), self.board_button.click)
        menu.addAction(self.folder_button.text(), self.folder_button.click)
        return menu

    def _file_state(self, paths: list[Path]) -> tuple:
        # What the detail view depends on: redraw only when one of these changes.
        state = []
        for path in paths:
            for name in ("metrics.csv", "run.json", CHECKS_JSON, LR_FIND_JSON, DIAGNOSIS_JSON, REPORT_MD,
                         *_GROUP_FILES):
                try:
                    state.append((str(path), name, (path / name).stat().st_mtime_ns))
                except OSError:
                    state.append((str(path), name, None))
            state.append((str(path), "predictions", tuple(p.name for p in prediction_files(path))))
        return tuple(state)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._show_details(force=True)

    def _show_details(self, force: bool = False) -> None:
        if not self.isVisible():
            # Drawing plots for a hidden tab would only stall the event loop
            # (e.g. while a job streams); the tab redraws when it is shown.
            self._shown_key = None
            return
        paths = self.selected_paths()
        key = (tuple(paths), self.tabs.currentIndex(), self._file_state(paths))
        if not force and key == self._shown_key:
            return
        self._shown_key = key
        if not paths:
            self.title.setText("Select a run — or two, to compare them" if self.model.runs else
                               "No runs in this workspace yet: edit a config and press Run (Ctrl+R).")
            for index in range(self.tabs.count()):
                self.tabs.setTabEnabled(index, index in (0, 1))
            if self.curves.canvas is not None:
                draw_curves(self.curves.figure, [])
                self.curves.draw()
            return
        run = paths[0]
        info = self.model.info_of(run)
        if len(paths) >= 2:
            self.title.setText(
                f"Comparing <span style='color:{RUN_COLORS[0]}'>■</span> {paths[0].name} and "
                f"<span style='color:{RUN_COLORS[1]}'>■</span> {paths[1].name}"
                + (f" (+{len(paths) - 2} more)" if len(paths) > 2 else "")
            )
        elif info is not None and info.is_group:
            error = info.record.get("error")
            best = best_text(info)
            inside = len(self.model.children_of(run))
            self.title.setText(f"<b>{run.name}</b> — {info.kind} {info.status.replace('_', ' ')}"
                               + (f", best {best}" if best else "")
                               + (f", {inside} {'trials' if info.kind == 'search' else 'members'} below"
                                  if inside else "")
                               + (f": {error}" if error else ""))
        elif info is not None:
            error = info.record.get("error")
            resumed = resumed_text(info.record)
            self.title.setText(f"<b>{run.name}</b> — {info.status.replace('_', ' ')}"
                               + (f": {error}" if error else "") + (f" · {resumed}" if resumed else ""))
        report = report_file(info) if info is not None else run / REPORT_MD
        exists = {name: (run / name).is_file() for name in (CHECKS_JSON, LR_FIND_JSON, DIAGNOSIS_JSON)}
        exists[REPORT_MD] = report.is_file()
        self.tabs.setTabEnabled(self.TABS.index("Report"), exists[REPORT_MD])
        self.tabs.setTabEnabled(self.TABS.index("Checks"), exists[CHECKS_JSON])
        self.tabs.setTabEnabled(self.TABS.index("LR finder"), exists[LR_FIND_JSON])
        self.tabs.setTabEnabled(self.TABS.index("Diagnosis"), exists[DIAGNOSIS_JSON])
        self.tabs.setTabEnabled(self.TABS.index("Predictions"), bool(prediction_files(run)))
        current = self.TABS[self.tabs.currentIndex()]
        if not self.tabs.isTabEnabled(self.tabs.currentIndex()):
            current = "Curves"
            self.tabs.setCurrentIndex(0)
            return  # setCurrentIndex re-enters with the right tab
        if current == "Curves":
            series = [(short_label(p), read_metrics(p / "metrics.csv")) for p in self._curve_runs(paths)]
            draw_curves(self.curves.figure, series)
            self.curves.draw()
        elif current == "Config":
            if len(paths) >= 2:
                self.config_pane.show_two(paths[0], paths[1])
            else:
                self.config_pane.show_one(run)
        elif current == "Report":
            self.report.show_file(report)
        elif current == "Checks":
            self.checks.show_data(read_json(run / CHECKS_JSON))
        elif current == "LR finder":
            self.lr_find.show_data(read_json(run / LR_FIND_JSON))
        elif current == "Diagnosis":
            self.diagnosis.show_data(read_json(run / DIAGNOSIS_JSON), info.record if info is not None else None)
        elif current == "Predictions":
            self.predictions.show_run(run, self.predictions.path if self.predictions.path is not None
                                      and self.predictions.path.parent == run else None)

    def _curve_runs(self, paths: list[Path]) -> list[Path]:
        """The runs whose curves to draw: the selected ones; for one search or ensemble
        selected, its best trials (best first) or its members, at most six."""
        info = self.model.info_of(paths[0]) if len(paths) == 1 else None
        if info is None or not info.is_group:
            return paths[:6]
        children = [c.path for c in self.model.children_of(info.path)]
        if info.kind == "search":
            # search.json's scores, best first (the objective's direction).
            lower = (info.record.get("objective") or {}).get("direction") == "min"
            scored = []
            for stage in info.record.get("stages") or []:
                for trial in (stage.get("trials") or []) if isinstance(stage, dict) else []:
                    score = trial.get("score") if isinstance(trial, dict) else None
                    if isinstance(score, (int, float)) and math.isfinite(score) and trial.get("run_dir"):
                        scored.append((score if lower else -score, (info.path / trial["run_dir"]).resolve()))
            ranked = list(dict.fromkeys(path for _, path in sorted(scored, key=lambda item: item[0])))
            known = {p.resolve(): p for p in children}
            children = [known[p] for p in ranked if p in known] + [p for p in children if p.resolve() not in ranked]
        return children[:6]
