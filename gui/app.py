"""The desktop app's main window and entry points (`kerasguide gui`, `kerasguide-gui`).

The window owns the models (the config document, the job queue, the
TensorBoard child) and the views that observe them: the config editor, the
jobs, the runs browser and the TensorBoard tab. Work runs in child
processes of the `kerasguide` CLI; this process never imports TensorFlow.
Some jobs ask first: Ensemble its members (`EnsembleDialog`), Tune whether
to resume the search of this config or start afresh (`tune --new`), then
confirms the search's budget (`tune --dry-run --json`: trials x epochs per
stage and an estimated time); a running search shows its status and a Stop
button in Jobs (`search-status`); Predict comes from the runs browser, on a run and an input it picked,
and Resume too, on a killed, interrupted or failed run (`run --resume RUN_DIR`: a run job in its own directory).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import threading
from pathlib import Path

__all__ = ["MainWindow", "main", "create_application", "prepare_environment"]


def prepare_environment() -> None:
    """Environment QtWebEngine needs, set before the QApplication exists.

    Chromium refuses to run as root with its sandbox on: only then (effective
    uid 0) is `--no-sandbox` added.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
        if "--no-sandbox" not in flags.split():
            os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = (flags + " --no-sandbox").strip()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# A headless install (`pip install kerasguide`, no [gui] extra) has no Qt: the same one line as `kerasguide gui`.
GUI_MISSING = "kerasguide: the desktop app needs PySide6: pip install 'kerasguide[gui]'"


def _started_as_the_app() -> bool:
    """This module is the program: `python -m kerasguide_gui.app`, or the `kerasguide-gui` script importing `_entry`."""
    main = sys.modules.get("__main__")
    return __name__ == "__main__" or Path(getattr(main, "__file__", None) or "").stem == "kerasguide-gui"


def _require_qt() -> None:
    # Here, not in `_entry`: the script imports this module (and so Qt, below) before it can call `_entry`.
    try:
        import PySide6  # noqa: F401
    except ImportError:
        if not _started_as_the_app():
            raise  # imported by other code (a test, a plugin): the ImportError as usual
        print(GUI_MISSING, file=sys.stderr)
        sys.exit(2)


prepare_environment()
_require_qt()

from PySide6.QtCore import QCoreApplication, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QAction, QActionGroup, QKeySequence  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QApplication,
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QStyle,
    QTabWidget,
    QToolBar,
    QWidget,
)

from kerasguide import __version__  # noqa: E402
from kerasguide.io import atomic_write_bytes  # noqa: E402
from kerasguide.presets import preset_names, preset_path  # noqa: E402
from kerasguide.rundir import read_run  # noqa: E402

from . import icons  # noqa: E402
from .board import BoardView, TensorBoardProcess  # noqa: E402
from .commands import (  # noqa: E402
    JOB_COMMANDS,
    CommandProbe,
    CommandSet,
    EnsembleSpec,
    ensemble_args,
    existing_search,
    fix_args,
    job_args,
    predict_args,
    tune_args,
)
from .config_doc import ConfigDocument  # noqa: E402
from .config_form import ConfigEditor  # noqa: E402
from .ensemble_dialog import EnsembleDialog  # noqa: E402
from .jobs import COMPLETED, FAILED, Job, JobQueue, cli_program, workspace_config_dir  # noqa: E402
from .jobs_view import JobsView  # noqa: E402
from .predict import predict_unavailable, predictions_path  # noqa: E402
from .runs_view import RunsBrowser, resume_unavailable  # noqa: E402
from .search_status import TunePreview, budget_html  # noqa: E402
from .settings import AppSettings  # noqa: E402
from .style import STYLESHEET, apply_palette  # noqa: E402

# After a job, which tab of the runs browser shows its result.
_RESULT_TAB = {"check": "Checks", "lr-find": "LR finder", "diagnose": "Diagnosis", "run": "Curves",
               "predict": "Predictions", "fix": "Diagnosis"}


class MainWindow(QMainWindow):
    """The kerasguide desktop app.

    Args:
        settings: Persisted settings. Defaults to the user's (`QSettings`).
        program: The argv prefix that runs the CLI. Defaults to
            `[python, -m, kerasguide.cli]` (tests pass a replaying fake).
        commands: The CLI's subcommands. Defaults to asking the CLI in a child.
        ask_before_close: Ask before cancelling running jobs on close. Defaults to `True`.
    """

    TABS = ["Config", "Jobs", "Runs", "TensorBoard"]

    def __init__(self, settings: AppSettings | None = None, program: list[str] | None = None,
                 commands: CommandSet | None = None, ask_before_close: bool = True):
        super().__init__()
        self.settings = settings or AppSettings()
        self.program = list(program or cli_program())
        self.tune_preview: TunePreview | None = None  # `tune --dry-run --json` before a search starts
        self.tune_budget: QMessageBox | None = None
        self.ask_before_close = ask_before_close
        self.commands = commands or CommandSet({"run": ("--out", "--json-progress")})
        self.setWindowIcon(icons.app_icon())
        self.setMinimumSize(760, 520)

        self.document = ConfigDocument(self)
        self.queue = JobQueue(self)
        self.board_server = TensorBoardProcess(parent=self)

        self.editor = ConfigEditor(self.document)
        self.jobs_view = JobsView(self.queue)
        self.runs = RunsBrowser()
        self.board = BoardView(self.board_server)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(True)
        for name, widget in zip(self.TABS, (self.editor, self.jobs_view, self.runs, self.board), strict=False):
            self.tabs.addTab(widget, name)
        self.setCentralWidget(self.tabs)

        self._make_actions()
        self._make_menus()
        self._make_toolbar()
        self._make_statusbar()
        self._connect()

        self.set_workspace(self.settings.workspace(), remember=False)
        self._restore_layout()
        if "digits" in preset_names():
            self.document.load_preset("digits")
            self.preset_combo.setCurrentText("digits")
        self._update_title()
        self._update_actions()

        QTimer.singleShot(1000, _warm_up_plotting)
        self.probe: CommandProbe | None = None
        if commands is None:
            self.probe = CommandProbe(self)
            self.probe.ready.connect(self.set_commands)
            QTimer.singleShot(0, self.probe.start)
        else:
            self.set_commands(commands)

    # ------------------------------------------------------------ building
    def _make_actions(self) -> None:
        style = self.style()

        def action(text, slot, shortcut=None, icon=None, tip=None) -> QAction:
            act = QAction(text, self)
            if icon is not None:
                act.setIcon(style.standardIcon(icon))
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            if tip:
                act.setStatusTip(tip)
                act.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})" if shortcut else tip)
            act.triggered.connect(slot)
            return act

        sp = QStyle.StandardPixmap
        self.open_action = action("&Open…", self.open_dialog, QKeySequence.StandardKey.Open,
                                  sp.SP_DialogOpenButton, "Open a TOML config")
        self.save_action = action("&Save", self.save, QKeySequence.StandardKey.Save,
                                  sp.SP_DialogSaveButton, "Save the config")
        self.save_as_action = action("Save &as…", self.save_as, QKeySequence.StandardKey.SaveAs,
                                     None, "Save the config to a new file")
        self.workspace_action = action("Set &workspace…", self.choose_workspace, None, sp.SP_DirIcon,
                                       "Choose the folder where runs are written and read")
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.job_actions: dict[str, QAction] = {}
        job_icons = {"check": sp.SP_DialogApplyButton, "lr-find": sp.SP_FileDialogContentsView,
                     "run": sp.SP_MediaPlay, "tune": sp.SP_BrowserReload, "ensemble": sp.SP_FileDialogListView}
        shortcuts = {"run": "Ctrl+R", "check": "Ctrl+K", "lr-find": "Ctrl+L"}
        for command, label, tip in JOB_COMMANDS:
            act = action(label, lambda checked=False, c=command: self._job_triggered(c), shortcuts.get(command),
                         job_icons.get(command), tip)
            act.setObjectName(f"job:{command}")
            self.job_actions[command] = act
        self.tune_new_action = action("Tune afresh (new search)", lambda: self.start_tune(new=True), None,
                                      None, "Start a new search of the config even if one exists (tune --new)")
        self.tune_new_action.setVisible(False)
        self.cancel_action = action("&Cancel job", self.cancel_job, "Ctrl+.", sp.SP_BrowserStop,
                                    "Cancel the running job (the run is recorded as interrupted)")
        self.view_actions = []
        group = QActionGroup(self)
        for index, name in enumerate(self.TABS):
            act = action(name, lambda checked=False, i=index: self.tabs.setCurrentIndex(i), f"Ctrl+{index + 1}")
            act.setCheckable(True)
            group.addAction(act)
            self.view_actions.append(act)

    def _make_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.preset_menu = file_menu.addMenu("&New from preset")
        for name in preset_names():
            self.preset_menu.addAction(name, lambda n=name: self.load_preset(n))
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        file_menu.addSeparator()
        file_menu.addAction(self.workspace_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        jobs_menu = bar.addMenu("&Jobs")
        for act in self.job_actions.values():
            jobs_menu.addAction(act)
            if act is self.job_actions.get("tune"):
                jobs_menu.addAction(self.tune_new_action)
        jobs_menu.addSeparator()
        jobs_menu.addAction(self.cancel_action)
        view_menu = bar.addMenu("&View")
        for act in self.view_actions:
            view_menu.addAction(act)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("&About kerasguide", self.about)

    def _make_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        bar.addAction(self.open_action)
        bar.addAction(self.save_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Preset "))
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.addItem("—")
        self.preset_combo.addItems(preset_names())
        self.preset_combo.setToolTip("Start from a bundled example config")
        self.preset_combo.textActivated.connect(lambda n: n != "—" and self.load_preset(n))
        bar.addWidget(self.preset_combo)
        bar.addSeparator()
        for act in self.job_actions.values():
            bar.addAction(act)
        bar.addSeparator()
        bar.addAction(self.cancel_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addAction(self.workspace_action)
        self.addToolBar(bar)
        self.toolbar = bar

    def _make_statusbar(self) -> None:
        status = self.statusBar()
        self.valid_label = QLabel()
        self.workspace_status = QLabel()
        status.addPermanentWidget(self.valid_label)
        status.addPermanentWidget(self.workspace_status)

    def _connect(self) -> None:
        self.document.validityChanged.connect(lambda *_: self._update_actions())
        self.document.changed.connect(lambda *_: self._update_title())
        self.document.dirtyChanged.connect(lambda *_: self._update_title())
        self.document.pathChanged.connect(lambda *_: self._update_title())
        self.queue.busyChanged.connect(self._busy_changed)
        self.queue.jobChanged.connect(lambda *_: self._update_actions())
        self.queue.jobFinished.connect(self._job_finished)
        self.jobs_view.openRun.connect(lambda path: self.show_run(path))
        self.runs.selectionChanged.connect(self.board.set_selected)
        self.runs.loadConfig.connect(self.load_run_config)
        self.runs.diagnoseRun.connect(self.diagnose)
        self.runs.fixRun.connect(self.fix)
        self.runs.boardRequested.connect(self.show_board)
        self.runs.useLearningRate.connect(self.use_learning_rate)
        self.runs.workspaceRequested.connect(self.choose_workspace)
        self.runs.predictRequested.connect(self.predict)
        self.runs.resumeRun.connect(self.resume)
        self.runs.ensembleRequested.connect(lambda mode, paths: self.ensemble_dialog(mode, paths))
        self.tabs.currentChanged.connect(self._tab_changed)

    # ------------------------------------------------------------ config
    def load_preset(self, name: str) -> None:
        if not self._discard_ok():
            return
        self.document.load_preset(name)
        self.preset_combo.setCurrentText(name)
        self.statusBar().showMessage(f"Preset {name}: {preset_path(name)}", 5000)

    def open_config(self, path: str | Path) -> bool:
        """Open a TOML config (or a preset name); False with a message when it cannot be read."""
        path = Path(path)
        if not path.exists() and str(path) in preset_names():
            self.load_preset(str(path))
            return True
        try:
            self.document.load_file(path)
        except OSError as error:
            self._warn("Cannot open config", f"{path}: {error.strerror or error}")
            return False
        self.settings.add_recent(self.document.path)
        self.preset_combo.setCurrentIndex(0)
        if not self.document.valid:
            self.statusBar().showMessage(f"{path.name} opened with problems: see the marked fields", 8000)
        return True

    def load_run_config(self, run_dir: Path) -> None:
        """Open a run's recorded config, unbound (saving asks for a new file)."""
        if not self._discard_ok():
            return
        try:
            self.document.load_file(Path(run_dir) / "config.toml", bind=False)
        except OSError as error:
            self._warn("Cannot open config", str(error))
            return
        self.tabs.setCurrentIndex(self.TABS.index("Config"))

    def open_dialog(self) -> None:
        if not self._discard_ok():
            return
        start = str(self.document.path.parent) if self.document.path else str(Path.cwd())
        path, _ = QFileDialog.getOpenFileName(self, "Open config", start, "TOML configs (*.toml);;All files (*)")
        if path:
            self.open_config(path)

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        self._commit_text()
        try:
            self.document.save()
        except OSError as error:
            self._warn("Cannot save", f"{self.document.path}: {error.strerror or error}")
            return False
        self.settings.add_recent(self.document.path)
        self.statusBar().showMessage(f"Saved {self.document.path}", 4000)
        return True

    def save_as(self) -> bool:
        name = f"{self.document.config.name if self.document.config else 'config'}.toml"
        start = str((self.document.path.parent if self.document.path else Path.cwd()) / name)
        path, _ = QFileDialog.getSaveFileName(self, "Save config", start, "TOML configs (*.toml)")
        if not path:
            return False
        self._commit_text()
        try:
            self.document.save(path)
        except OSError as error:
            self._warn("Cannot save", f"{path}: {error.strerror or error}")
            return False
        self.settings.add_recent(self.document.path)
        self.statusBar().showMessage(f"Saved {self.document.path}", 4000)
        return True

    def use_learning_rate(self, lr: float) -> None:
        self.document.set_value(("optimizer", "learning_rate"), float(f"{lr:.3g}"), origin="external")
        self.editor.form.show_section("optimizer")
        self.tabs.setCurrentIndex(self.TABS.index("Config"))
        self.statusBar().showMessage(f"optimizer.learning_rate set to {lr:.3g}", 6000)

    def _commit_text(self) -> None:
        self.editor.toml.flush_pending()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_configs()
        for path in recent:
            self.recent_menu.addAction(str(path), lambda p=path: self._discard_ok() and self.open_config(p))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _discard_ok(self) -> bool:
        if not self.document.dirty or not self.ask_before_close:
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", f"Discard the unsaved changes to {self.document.title}?",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Discard

    # ------------------------------------------------------------ workspace
    def set_workspace(self, path: str | Path, remember: bool = True) -> None:
        path = Path(path).expanduser().resolve()
        self.workspace = path
        if remember:
            self.settings.set_workspace(path)
        self.runs.set_workspace(path)
        self.board.set_workspace(path)
        self.workspace_status.setText(f"Workspace: {path}")

    def choose_workspace(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Workspace: the folder of runs", str(self.workspace))
        if path:
            self.set_workspace(path)

    # ------------------------------------------------------------ jobs
    def set_commands(self, commands: CommandSet) -> None:
        """Enable the job buttons whose CLI command exists."""
        self.commands = commands
        for command, act in self.job_actions.items():
            act.setVisible(commands.has(command) or command in ("run", "check", "lr-find"))
        self.runs.set_diagnose_available(commands.has("diagnose"))
        self.runs.set_predict_available(commands.has("predict"))
        self.runs.set_fix_available(commands.has("fix"))
        self.runs.set_resume_available(commands.accepts("run", "--resume"))
        self.runs.set_ensemble_available(commands.accepts("ensemble", "--runs"),
                                         commands.accepts("ensemble", "--snapshots"))
        self.tune_new_action.setVisible(commands.accepts("tune", "--new"))
        self.jobs_view.set_search_status(self.program if commands.accepts("search-status", "--stop") else None)
        self._update_actions()

    def _job_triggered(self, command: str) -> None:
        # The toolbar and menu: Ensemble asks how first, Tune whether to resume; the rest start at once.
        if command == "ensemble":
            self.ensemble_dialog()
        elif command == "tune":
            self.launch_tune()
        else:
            self.start_job(command)

    def start_job(self, command: str, new: bool = False) -> Job | None:
        """Queue a CLI command on the current config; returns the job (None if refused).

        `new` is tune's: start a new search even if one of this config exists (`tune --new`).
        An ensemble started here is the config's seeds, `ensemble.members` of them.
        """
        config_path = self._checked_config(command)
        if config_path is None:
            return None
        label = dict((c, lbl) for c, lbl, _ in JOB_COMMANDS).get(command, command)
        name = self.document.config.name if self.document.config else "config"
        if command == "tune":
            args = tune_args(self.commands, config_path, self.workspace, new=new and
                             self.commands.accepts("tune", "--new"))
        else:
            args = job_args(self.commands, command, config_path, self.workspace)
        job = Job(command, args, title=f"{label} {name}" + (" (new search)" if "--new" in args else ""),
                  program=self.program, source=self.document.title)
        if command == "ensemble" and self.document.config is not None:
            # One recorded run per member, one after the other: the bar counts them all.
            job.progress.runs_total = int(self.document.config.ensemble.members)
        return self._submit(job)

    def _checked_config(self, command: str) -> Path | None:
        # The config snapshot a job on the current config runs; None (and why, in the status bar) if it cannot.
        self._commit_text()
        if not self.document.valid:
            self.tabs.setCurrentIndex(self.TABS.index("Config"))
            self.statusBar().showMessage("Fix the config first: " + "; ".join(self.document.error_messages()[:2]), 8000)
            return None
        if not self.commands.has(command):
            self.statusBar().showMessage(f"this kerasguide has no `{command}` command", 6000)
            return None
        try:
            return self._config_for_job()
        except OSError as error:
            self._warn("Cannot write the config", str(error))
            return None

    # ------------------------------------------------------------ tune
    def start_tune(self, new: bool = False, preview: bool = True) -> Job | TunePreview | None:
        """Tune the config: resume its search (the CLI's default) or, with `new`, start afresh (`--new`).

        With `preview` and a CLI that has `tune --dry-run`, the budget comes first
        (`tune --dry-run --json`, a child process; returned) and a dialog asks to
        start; the job is queued on Start.
        """
        if not (preview and self.commands.accepts("tune", "--dry-run")):
            return self.start_job("tune", new=new)
        config_path = self._checked_config("tune")
        if config_path is None:
            return None
        args = tune_args(self.commands, config_path, self.workspace, new=new and self.commands.accepts("tune", "--new"))
        if self.tune_preview is not None:
            self.tune_preview.kill()
        self.tune_preview = TunePreview(self.program, args, parent=self)
        self.tune_preview.ready.connect(lambda budget: self._confirm_tune(budget, new))
        self.tune_preview.failed.connect(lambda text: self._warn("Tune: the budget preview failed", text))
        self.statusBar().showMessage("Tune: timing a few training steps for the budget…", 8000)
        self.tune_preview.start()
        return self.tune_preview

    def _confirm_tune(self, budget: dict, new: bool) -> QMessageBox:
        box = QMessageBox(self)
        box.setObjectName("tuneBudget")
        box.setWindowTitle("Tune: the search's budget")
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(f"Search <b>{budget.get('name')}</b> ({budget.get('algorithm')}): {budget.get('trials')} trials, "
                    f"{budget.get('total_epochs')} epochs in all.")
        box.setInformativeText(budget_html(budget))
        box.start_button = box.addButton("Start", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(box.start_button)
        box.buttonClicked.connect(lambda button: button is box.start_button and self.start_tune(new, preview=False))
        box.open()
        self.tune_budget = box
        return box

    def launch_tune(self) -> QMessageBox | Job | TunePreview | None:
        """The Tune button: when a search of this config exists, ask whether to resume it or start afresh
        (a dialog, returned; Resume is the default); else start the search."""
        self._commit_text()
        config = self.document.config if self.document.valid else None
        found = existing_search(self.workspace, config) if config is not None else None
        if found is None or not self.commands.accepts("tune", "--new"):
            return self.start_tune()
        state = self.runs.model.info_of(found)
        status = state.status.replace("_", " ") if state is not None else "unknown"
        trials = state.record.get("trials_done", 0) if state is not None else 0
        box = QMessageBox(self)
        box.setObjectName("tuneChoice")
        box.setWindowTitle("Tune")
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(f"A search of this config exists: <b>{found.name}</b> ({status}, {trials} trials).")
        box.setInformativeText(
            "Resume it (a completed search is only shown again), or start a new search from scratch?"
            if status == "completed" else "Resume it where it stopped, or start a new search from scratch?")
        box.resume_button = box.addButton("Resume", QMessageBox.ButtonRole.AcceptRole)
        box.afresh_button = box.addButton("Start afresh", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(box.resume_button)

        def chosen(button) -> None:
            if button is box.resume_button:
                self.start_tune(new=False)
            elif button is box.afresh_button:
                self.start_tune(new=True)

        box.buttonClicked.connect(chosen)
        box.open()
        self.tune_choice = box
        return box

    # ------------------------------------------------------------ ensemble
    def ensemble_dialog(self, mode: str | None = None, paths: list[Path] | None = None) -> EnsembleDialog | None:
        """Open the Ensemble dialog (seeds, existing runs, snapshots; distillation); it starts the job on Start.

        `paths` default to the runs selected in the runs browser.
        """
        if not self.commands.has("ensemble"):
            self.statusBar().showMessage("this kerasguide has no `ensemble` command", 6000)
            return None
        self._commit_text()
        selected = list(paths) if paths is not None else self.runs.selected_paths()
        dialog = EnsembleDialog(self.commands, self.document.config if self.document.valid else None,
                                selected=selected, mode=mode, workspace=self.workspace, parent=self)
        dialog.launch.connect(self.start_ensemble)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self.ensemble_choice = dialog
        return dialog

    def start_ensemble(self, spec: EnsembleSpec) -> Job | None:
        """Queue `kerasguide ensemble` for a spec (seeds of the config, runs, snapshots; --distill)."""
        config_path = None
        if spec.mode == "seeds":
            config_path = self._checked_config("ensemble")
            if config_path is None:
                return None
        elif not self.commands.has("ensemble"):
            self.statusBar().showMessage("this kerasguide has no `ensemble` command", 6000)
            return None
        try:
            args = ensemble_args(self.commands, spec, config_path, self.workspace)
        except ValueError as error:
            self.statusBar().showMessage(f"Ensemble: {error}", 8000)
            return None
        if spec.mode == "seeds":
            name = self.document.config.name if self.document.config else "config"
            title = f"Ensemble {name}" + (f" ({spec.members} seeds)" if spec.members else "")
            source = self.document.title
        elif spec.mode == "runs":
            title, source = f"Ensemble of {len(spec.runs)} runs", ", ".join(Path(p).name for p in spec.runs)
        else:
            title, source = f"Snapshot ensemble {Path(spec.snapshots or '').name}", Path(spec.snapshots or "").name
        if spec.distill:
            title += " + student"
        job = Job("ensemble", args, title=title, program=self.program, source=source)
        if spec.mode == "seeds":
            members = spec.members or (self.document.config.ensemble.members if self.document.config else 0)
            job.progress.runs_total = int(members)
        return self._submit(job)

    # ------------------------------------------------------------ predict
    def predict(self, run_dir: str | Path, input_path: str | Path) -> Job | None:
        """Queue `kerasguide predict RUN_DIR INPUT --out RUN_DIR/predictions-<input>.csv`; shown when done."""
        run_dir = Path(run_dir)
        if not self.commands.has("predict"):
            self.statusBar().showMessage("this kerasguide has no `predict` command", 6000)
            return None
        info = self.runs.model.info_of(run_dir)
        why = predict_unavailable(info) if info is not None else None
        if why is not None:
            self.statusBar().showMessage(f"Predict {run_dir.name}: {why}", 8000)
            return None
        out = predictions_path(run_dir, input_path)
        job = Job("predict", predict_args(self.commands, run_dir, input_path, out),
                  title=f"Predict {run_dir.name}", program=self.program, source=Path(input_path).name)
        job.progress.run_dir = str(run_dir)
        job.output_file = str(out)
        return self._submit(job)

    # ------------------------------------------------------------ resume
    def resume(self, run_dir: str | Path) -> Job | None:
        """Queue `kerasguide run --resume RUN_DIR --json-progress`: the run continues in its own directory.

        A run job like Run's (its progress, its row back to running); refused, with why in the status bar,
        for a run that cannot resume or one a queued or running job already resumes.
        """
        run_dir = Path(run_dir)
        if not self.commands.accepts("run", "--resume"):
            self.statusBar().showMessage("this kerasguide's `run` has no --resume", 6000)
            return None
        self.runs.refresh()  # its status as of now: the CLI refuses a run that is running or done
        info = self.runs.model.info_of(run_dir)
        if info is None and (run_dir / "run.json").is_file():  # a run outside the workspace
            info = read_run(run_dir)
        why = resume_unavailable(info) if info is not None else "no run.json: not a run directory"
        if why is None and any(job.kind == "run" and "--resume" in job.args
                               and Path(job.args[job.args.index("--resume") + 1]) == run_dir
                               for job in self.queue.active()):
            why = "a job already resumes it (see Jobs)"
        if why is not None:
            self.statusBar().showMessage(f"Resume {run_dir.name}: {why}", 8000)
            return None
        args = ["--resume", str(run_dir)]
        if self.commands.accepts("run", "--json-progress"):
            args.append("--json-progress")
        job = Job("run", args, title=f"Resume {run_dir.name}", program=self.program, source=run_dir.name)
        job.progress.run_dir = str(run_dir)
        return self._submit(job)

    def diagnose(self, run_dir: Path) -> Job | None:
        if not self.commands.has("diagnose"):
            return None
        args = [str(run_dir)]
        if self.commands.accepts("diagnose", "--json-progress"):
            args.append("--json-progress")
        return self._submit(Job("diagnose", args, title=f"Diagnose {Path(run_dir).name}", program=self.program,
                                source=Path(run_dir).name))

    def fix(self, run_dir: Path) -> Job | None:
        """Queue `kerasguide fix RUN_DIR --out WORKSPACE`: the repaired runs, the last one's diagnosis shown after."""
        if not self.commands.has("fix"):
            return None
        return self._submit(Job("fix", fix_args(self.commands, run_dir, self.workspace),
                                title=f"Fix {Path(run_dir).name}", program=self.program, source=Path(run_dir).name))

    def cancel_job(self) -> None:
        job = self.jobs_view.current_job()
        if job is None or job.finished_state:
            job = self.queue.running()
        if job is not None:
            job.cancel()

    def _submit(self, job: Job) -> Job:
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.queue.submit(job)
        self.tabs.setCurrentIndex(self.TABS.index("Jobs"))
        self.jobs_view.select_job(job)
        self.runs.set_live(True)
        return job

    def _config_for_job(self) -> Path:
        # The job runs a snapshot, so later edits never change a queued job.
        doc = self.document
        if doc.path is not None and not doc.dirty:
            return doc.path
        folder = workspace_config_dir(self.workspace)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        name = doc.config.name if doc.config else "config"
        target = folder / f"{stamp}-{name}.toml"
        atomic_write_bytes(target, doc.text.encode("utf-8"))
        return target

    def _job_finished(self, job: Job) -> None:
        self._update_actions()
        if not job.run_dir and job.started is not None:
            job.progress.run_dir = self._new_run_since(job.started)
        written = job.output_file if job.output_file and Path(job.output_file).is_file() else None
        if job.kind == "predict" and job.state == COMPLETED and written and job.run_dir:
            self.runs.show_predictions(job.run_dir, written)
        elif job.run_dir and Path(job.run_dir).is_dir():
            self.runs.show_run(job.run_dir, _RESULT_TAB.get(job.kind) if job.kind != "predict" else None)
        else:
            self.runs.refresh()
        if job.state == COMPLETED:
            self.statusBar().showMessage(f"{job.title}: completed" + (f" — {written or job.run_dir}"
                                                                      if written or job.run_dir else ""), 8000)
            if job.kind in ("lr-find", "check", "diagnose", "predict", "fix") and job.run_dir:
                self.tabs.setCurrentIndex(self.TABS.index("Runs"))
        elif job.state == FAILED:
            self.statusBar().showMessage(f"{job.title} failed: {job.cli_message or job.error}", 10000)
            self.tabs.setCurrentIndex(self.TABS.index("Jobs"))
            self.jobs_view.select_job(job)

    def _new_run_since(self, started: float) -> str | None:
        # A command that did not say where it wrote: the newest run directory it created.
        try:
            fresh = [p for p in self.workspace.iterdir()
                     if (p / "run.json").is_file() and p.stat().st_mtime >= started - 1]
        except OSError:
            return None
        return str(max(fresh, key=lambda p: p.stat().st_mtime)) if fresh else None

    def _busy_changed(self, busy: bool) -> None:
        self.runs.set_live(busy)
        self._update_actions()

    # ------------------------------------------------------------ runs, board
    def show_run(self, path: str | Path, tab: str | None = None) -> None:
        self.runs.show_run(path, tab)
        self.tabs.setCurrentIndex(self.TABS.index("Runs"))

    def show_board(self, paths: list[Path]) -> None:
        self.board.set_selected(paths)
        self.tabs.setCurrentIndex(self.TABS.index("TensorBoard"))

    # ------------------------------------------------------------ state
    def _update_actions(self) -> None:
        valid = self.document.valid
        for command, act in self.job_actions.items():
            act.setEnabled(valid and self.commands.has(command))
            if not self.commands.has(command):
                act.setToolTip(f"this kerasguide has no `{command}` command yet")
        # An ensemble of existing runs or of snapshots needs no valid config (the dialog says so for seeds).
        if self.commands.has("ensemble") and (self.commands.accepts("ensemble", "--runs")
                                              or self.commands.accepts("ensemble", "--snapshots")):
            self.job_actions["ensemble"].setEnabled(True)
        self.tune_new_action.setEnabled(valid and self.commands.accepts("tune", "--new"))
        self.cancel_action.setEnabled(bool(self.queue.active()))
        problems = len(self.document.error_messages())
        self.valid_label.setText("config valid" if valid else f"config: {problems} problem{'s' * (problems != 1)}")
        self.valid_label.setProperty("ok", valid)
        self.valid_label.style().unpolish(self.valid_label)
        self.valid_label.style().polish(self.valid_label)

    def _update_title(self) -> None:
        doc = self.document
        star = "*" if doc.dirty else ""
        self.setWindowTitle(f"{doc.title}{star} — kerasguide")
        self.save_action.setEnabled(True)
        self._update_actions()

    def _tab_changed(self, index: int) -> None:
        if 0 <= index < len(self.view_actions):
            self.view_actions[index].setChecked(True)

    def _restore_layout(self) -> None:
        geometry = self.settings.geometry("geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1280, 820)
        state = self.settings.geometry("state")
        if state is not None:
            self.restoreState(state)
        tab = self.settings.value("window/tab")
        if tab in self.TABS:
            self.tabs.setCurrentIndex(self.TABS.index(tab))
        else:
            self.tabs.setCurrentIndex(0)
        self._tab_changed(self.tabs.currentIndex())

    def _save_layout(self) -> None:
        self.settings.set_geometry("geometry", self.saveGeometry())
        self.settings.set_geometry("state", self.saveState())
        self.settings.set_value("window/tab", self.TABS[self.tabs.currentIndex()])
        self.settings.sync()

    def _warn(self, title: str, text: str) -> None:
        self.statusBar().showMessage(f"{title}: {text}", 10000)
        if self.ask_before_close:  # interactive use; tests read the status bar
            QMessageBox.warning(self, title, text)

    def about(self) -> None:
        QMessageBox.about(self, "About kerasguide",
                          f"<b>kerasguide {__version__}</b><br>The training recipes practitioners follow, "
                          "for Keras 3: sanity checks, LR range test, schedules, monitors, diagnosis, "
                          "search and ensembles — every run recorded.")

    # ------------------------------------------------------------ closing
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.queue.active() and self.ask_before_close:
            answer = QMessageBox.question(
                self, "Jobs are running", "Cancel the running jobs and quit? "
                "A running training is recorded as interrupted.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        if not self._discard_ok():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop every child process (jobs, TensorBoard, the command probe) and save the layout."""
        self._save_layout()
        self.runs.live_timer.stop()
        self.jobs_view.close_watches()
        if self.tune_preview is not None:
            self.tune_preview.kill()
        self.queue.shutdown()
        self.board.shutdown()
        if self.probe is not None:
            self.probe.stop()


def _import_plotting() -> None:
    try:
        import matplotlib.backends.backend_qtagg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except Exception:  # noqa: BLE001 - a plot will report it when drawn
        pass


def _warm_up_plotting() -> None:
    """Import matplotlib in a background thread once the window is up.

    The first plot would otherwise import it on the GUI thread, a stall of a
    second or more; a thread gives up the GIL every few milliseconds, so the
    event loop keeps running while it imports.
    """
    threading.Thread(target=_import_plotting, name="kerasguide-warm-up", daemon=True).start()


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (existing or new) with kerasguide's names, icon, style and palette."""
    prepare_environment()
    QCoreApplication.setOrganizationName("kerasguide")
    QCoreApplication.setApplicationName("kerasguide-gui")
    app = QApplication.instance() or QApplication(argv if argv is not None else [sys.argv[0]])
    app.setApplicationDisplayName("kerasguide")
    app.setWindowIcon(icons.app_icon())
    app.setStyle("Fusion")
    apply_palette(app)
    app.setStyleSheet(STYLESHEET)
    return app


def main(config_path: str | None = None) -> int:
    """Start the desktop app, optionally on a config; returns the exit code.

    A config that does not exist (and is no preset name) is bad input: one
    line on stderr, exit code 2. A config that exists but is invalid opens,
    with the problems marked in the form.
    """
    if config_path is not None:
        path = Path(config_path)
        if not path.exists() and config_path not in preset_names():
            print(f"kerasguide gui: error: {config_path}: no such config file or preset "
                  f"(presets: {', '.join(preset_names())})", file=sys.stderr)
            return 2
    app = create_application()
    window = MainWindow()
    if config_path is not None:
        window.open_config(config_path)
    window.show()
    return app.exec()


def _entry() -> None:  # pragma: no cover - gui-script
    parser = argparse.ArgumentParser(prog="kerasguide-gui", description="The kerasguide desktop app.")
    parser.add_argument("config", nargs="?", help="a TOML config or preset name to open")
    args = parser.parse_args()
    sys.exit(main(args.config))


if __name__ == "__main__":  # pragma: no cover - `kerasguide gui` starts the app this way
    _entry()
