"""The Ensemble dialog: which members (seeds, existing runs, one run's snapshots), and distillation.

`kerasguide ensemble` averages several models' predicted probabilities
(recipe J34): `--members N` seeds of the config, each a recorded run; the
best checkpoints of `--runs DIR...` (run or search directories); or one
run's `--snapshots`. `--distill` also trains one student on the ensemble's
softened predictions (J36), with `--temperature` and `--alpha` when given
(else the config's `[ensemble]` values). The dialog builds an `EnsembleSpec`;
`commands.ensemble_args` turns it into the argv from the options the
installed CLI declares, and a mode whose option the CLI lacks is disabled.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kerasguide.config import RunConfig

from .commands import ENSEMBLE_MODES, CommandSet, EnsembleSpec, ensemble_args
from .predict import snapshot_files

__all__ = ["EnsembleDialog"]


def _is_search(path: Path) -> bool:
    return (Path(path) / "search.json").is_file()


class EnsembleDialog(QDialog):
    """Asks how to build an ensemble; `spec()` is the answer, `launch(spec)` is emitted on Start.

    Args:
        commands: The CLI's commands (which of `ensemble`'s options exist).
        config: The config being edited, or None when it is invalid (seeds are then disabled).
        config_name: What the seeds mode names the config. Defaults to the config's name.
        selected: Run directories selected in the runs browser (offered to the runs and snapshots modes).
        mode: The mode to open on. Defaults to seeds, or runs when two or more runs are selected.
        workspace: The folder the pickers start in. Defaults to the current folder.

    Signals:
        launch(EnsembleSpec): the user pressed Start with a complete spec.
    """

    launch = Signal(object)

    def __init__(self, commands: CommandSet, config: RunConfig | None, selected: list[Path] | None = None,
                 mode: str | None = None, workspace: str | Path | None = None, config_name: str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ensembleDialog")
        self.setWindowTitle("Ensemble")
        self.setMinimumWidth(560)
        self.commands = commands
        self.config = config
        self.workspace = Path(workspace) if workspace is not None else Path.cwd()
        selected = [Path(p) for p in selected or []]
        ensemble = config.ensemble if config is not None else None

        about = QLabel("Average the predicted probabilities of several models (recipe J34), and optionally "
                       "distill them into one (J36). Each member is a recorded run.")
        about.setObjectName("pageAbout")
        about.setWordWrap(True)

        self.mode_buttons: dict[str, QRadioButton] = {}
        self.group = QButtonGroup(self)
        modes = QVBoxLayout()
        for index, (key, label, option) in enumerate(ENSEMBLE_MODES):
            button = QRadioButton(label)
            button.setObjectName(f"mode:{key}")
            self.group.addButton(button, index)
            self.mode_buttons[key] = button
            if not commands.accepts("ensemble", option):
                button.setEnabled(False)
                button.setToolTip(f"this kerasguide's `ensemble` has no {option}")
            modes.addWidget(button)
        if config is None:
            self.mode_buttons["seeds"].setEnabled(False)
            self.mode_buttons["seeds"].setToolTip("fix the config first: the seeds are runs of it")

        # seeds
        self.members = QSpinBox()
        self.members.setObjectName("members")
        self.members.setRange(1, 100)
        self.members.setValue(int(ensemble.members) if ensemble is not None else 5)
        self.members.setToolTip("--members N: N runs of the config, each with another train.seed, one data split")
        name = config_name or (config.name if config is not None else "the config")
        self.seeds_box = QGroupBox(f"Seeds of {name}")
        seeds_form = QFormLayout(self.seeds_box)
        seeds_form.addRow("Members", self.members)

        # runs
        self.runs_list = QListWidget()
        self.runs_list.setObjectName("ensembleRuns")
        self.runs_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.runs_list.setMinimumHeight(90)
        add_selected = QPushButton("Add selected runs")
        add_selected.setToolTip("The runs and searches selected in the Runs tab")
        add_selected.clicked.connect(lambda: self.add_runs(self._selected_runs))
        add_selected.setEnabled(bool(selected))
        add = QPushButton("Add folder…")
        add.setToolTip("A run directory (its best checkpoint) or a search directory (its best trials)")
        add.clicked.connect(self._pick_run)
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove_runs)
        run_buttons = QHBoxLayout()
        for button in (add_selected, add, remove):
            run_buttons.addWidget(button)
        run_buttons.addStretch(1)
        self.trials = QSpinBox()
        self.trials.setObjectName("trials")
        self.trials.setRange(0, 100)
        self.trials.setSpecialValueText("default (5)")
        self.trials.setToolTip("--members N with a search directory: its N best trials")
        self.runs_box = QGroupBox("Existing runs (their best checkpoints)")
        runs_layout = QVBoxLayout(self.runs_box)
        runs_layout.addWidget(self.runs_list)
        runs_layout.addLayout(run_buttons)
        trials_form = QFormLayout()
        trials_form.addRow("Best trials of a search", self.trials)
        runs_layout.addLayout(trials_form)

        # snapshots
        self.snapshot_dir = QLineEdit()
        self.snapshot_dir.setObjectName("snapshotDir")
        self.snapshot_dir.setPlaceholderText("a run trained with [ensemble] snapshots = K")
        self.snapshot_dir.textChanged.connect(self._update)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._pick_snapshots)
        self.snapshot_note = QLabel()
        self.snapshot_note.setObjectName("hint")
        self.snapshots_box = QGroupBox("Snapshots of one run")
        snap_layout = QVBoxLayout(self.snapshots_box)
        line = QHBoxLayout()
        line.addWidget(self.snapshot_dir, 1)
        line.addWidget(browse)
        snap_layout.addLayout(line)
        snap_layout.addWidget(self.snapshot_note)

        # distillation
        self.distill = QGroupBox("Distill into one student (--distill)")
        self.distill.setObjectName("distill")
        self.distill.setCheckable(True)
        self.distill.setChecked(False)
        self.distill.setEnabled(commands.accepts("ensemble", "--distill"))
        self.distill.toggled.connect(self._update)
        self.temperature_on = QCheckBox("Temperature T")
        self.temperature = QDoubleSpinBox()
        self.temperature.setObjectName("temperature")
        self.temperature.setRange(0.1, 100.0)
        self.temperature.setDecimals(2)
        self.temperature.setValue(float(ensemble.temperature) if ensemble is not None else 4.0)
        self.alpha_on = QCheckBox("Alpha (weight of the hard labels)")
        self.alpha = QDoubleSpinBox()
        self.alpha.setObjectName("alpha")
        self.alpha.setRange(0.0, 1.0)
        self.alpha.setSingleStep(0.05)
        self.alpha.setDecimals(2)
        self.alpha.setValue(float(ensemble.alpha) if ensemble is not None else 0.1)
        distill_form = QFormLayout(self.distill)
        for check, spin, option in ((self.temperature_on, self.temperature, "--temperature"),
                                    (self.alpha_on, self.alpha, "--alpha")):
            check.setToolTip(f"{option}; unticked: the config's [ensemble] value")
            check.setEnabled(commands.accepts("ensemble", option))
            check.toggled.connect(self._update)
            spin.valueChanged.connect(self._update)
            distill_form.addRow(check, spin)

        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.preview = QLabel()
        self.preview.setObjectName("ensembleCommand")
        self.preview.setFont(mono)
        self.preview.setWordWrap(True)
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton("Start ensemble", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setObjectName("startEnsemble")
        self.buttons.accepted.connect(self._start)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(about)
        layout.addLayout(modes)
        for box in (self.seeds_box, self.runs_box, self.snapshots_box, self.distill):
            layout.addWidget(box)
        layout.addWidget(self.preview)
        layout.addWidget(self.buttons)

        self._selected_runs = selected
        self.group.idToggled.connect(lambda *_: self._update())
        self.members.valueChanged.connect(self._update)
        self.trials.valueChanged.connect(self._update)
        if mode is None:
            mode = "runs" if len(selected) >= 2 or (selected and _is_search(selected[0])) else "seeds"
        if mode == "runs":
            self.add_runs(selected)
        with_snapshots = [p for p in selected if snapshot_files(p)]
        if mode == "snapshots" and selected:
            self.snapshot_dir.setText(str((with_snapshots or selected)[0]))
        elif with_snapshots:
            self.snapshot_dir.setText(str(with_snapshots[0]))
        self.set_mode(mode)

    # ------------------------------------------------------------ public
    def mode(self) -> str:
        for key, button in self.mode_buttons.items():
            if button.isChecked():
                return key
        return ""

    def set_mode(self, mode: str) -> None:
        """Choose a mode (the first enabled one when `mode` is not available)."""
        button = self.mode_buttons.get(mode)
        if button is None or not button.isEnabled():
            button = next((b for b in self.mode_buttons.values() if b.isEnabled()), None)
        if button is not None:
            button.setChecked(True)
        self._update()

    def runs(self) -> list[str]:
        """The run and search directories of the runs mode, in the list's order."""
        return [self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.runs_list.count())]

    def add_runs(self, paths: list[Path | str]) -> None:
        known = set(self.runs())
        for path in paths:
            text = str(path)
            if text not in known:
                item = QListWidgetItem(f"{Path(text).name}  (search: its best trials)" if _is_search(Path(text))
                                       else Path(text).name)
                item.setData(Qt.ItemDataRole.UserRole, text)
                item.setToolTip(text)
                self.runs_list.addItem(item)
                known.add(text)
        self._update()

    def spec(self) -> EnsembleSpec:
        """What the dialog says now (possibly incomplete: `problem()` says what is missing)."""
        mode = self.mode()
        distill = self.distill.isEnabled() and self.distill.isChecked()
        members = None
        if mode == "seeds":
            members = self.members.value()
        elif mode == "runs" and self.trials.value() > 0 and any(_is_search(Path(p)) for p in self.runs()):
            members = self.trials.value()
        return EnsembleSpec(
            mode=mode,
            members=members,
            runs=tuple(self.runs()) if mode == "runs" else (),
            snapshots=(self.snapshot_dir.text().strip() or None) if mode == "snapshots" else None,
            distill=distill,
            temperature=self.temperature.value() if distill and self.temperature_on.isChecked() else None,
            alpha=self.alpha.value() if distill and self.alpha_on.isChecked() else None,
        )

    def problem(self) -> str | None:
        """Why Start is disabled, or None."""
        spec = self.spec()
        if not spec.mode:
            return "this kerasguide's `ensemble` takes none of these modes"
        if spec.mode == "runs":
            searches = sum(_is_search(Path(p)) for p in spec.runs)
            if len(spec.runs) < 2 and not searches:
                return "add two runs or more (or a search directory: its best trials)"
        if spec.mode == "snapshots":
            if not spec.snapshots:
                return "choose the run whose snapshots to average"
            if not snapshot_files(spec.snapshots):
                return (f"{Path(spec.snapshots).name} has no snapshot checkpoints "
                        "(train it with [ensemble] snapshots = K)")
        try:
            ensemble_args(self.commands, spec, "CONFIG", "WORKSPACE")
        except ValueError as error:
            return str(error)
        return None

    # ------------------------------------------------------------ internals
    def _update(self, *_) -> None:
        mode = self.mode()
        self.seeds_box.setVisible(mode == "seeds")
        self.runs_box.setVisible(mode == "runs")
        self.snapshots_box.setVisible(mode == "snapshots")
        self.temperature.setEnabled(self.temperature_on.isChecked() and self.temperature_on.isEnabled())
        self.alpha.setEnabled(self.alpha_on.isChecked() and self.alpha_on.isEnabled())
        self.trials.setEnabled(any(_is_search(Path(p)) for p in self.runs()))
        path = self.snapshot_dir.text().strip()
        count = len(snapshot_files(path)) if path else 0
        self.snapshot_note.setText(f"{count} snapshot checkpoints" if count else
                                   "no snapshot checkpoints there yet" if path else "")
        problem = self.problem()
        self.start_button.setEnabled(problem is None)
        self.start_button.setToolTip(problem or "")
        if problem is None:
            args = ensemble_args(self.commands, self.spec(), "CONFIG", self.workspace)
            self.preview.setText("kerasguide ensemble " + " ".join(
                Path(a).name if a in self.runs() or a == self.snapshot_dir.text().strip() else a for a in args))
        else:
            self.preview.setText(problem)
        self.adjustSize()

    def _pick_run(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A run or search directory", str(self.workspace))
        if path:
            self.add_runs([path])

    def _remove_runs(self) -> None:
        for item in self.runs_list.selectedItems():
            self.runs_list.takeItem(self.runs_list.row(item))
        self._update()

    def _pick_snapshots(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A run with snapshot checkpoints", str(self.workspace))
        if path:
            self.snapshot_dir.setText(path)

    def _start(self) -> None:
        if self.problem() is None:
            self.launch.emit(self.spec())
            self.accept()
