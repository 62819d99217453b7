"""Panels for a run directory's result files: checks, LR finder, diagnosis, report.

Each panel shows one file and degrades gracefully: a missing file, a
missing key or a value of an unexpected type shows as a dash or a short
note, never an exception (the formats grow while the app is in use).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import icons
from .plots import PlotWidget, draw_lr_find
from .predict import prediction_files, read_csv_head

__all__ = ["ChecksPanel", "LRFindPanel", "DiagnosisPanel", "ReportPanel", "PredictionsPanel", "fmt",
           "check_items", "finding_items"]


def fmt(value: Any) -> str:
    """A value for a table cell: short numbers, compact JSON, a dash for nothing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        if len(value) > 6:
            return f"[{', '.join(fmt(v) for v in value[:6])}, … ({len(value)})]"
        return f"[{', '.join(fmt(v) for v in value)}]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    return str(value)


def check_items(data: Any) -> list[dict[str, Any]]:
    """The check results in a `checks.json` (a list, or a dict holding one)."""
    if isinstance(data, dict):
        for key in ("checks", "results"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            data = [dict(v, name=v.get("name", k)) for k, v in data.items() if isinstance(v, dict)]
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, dict)]


def finding_items(data: Any) -> list[dict[str, Any]]:
    """The findings in a `diagnosis.json` (`{"findings": [...]}` or a bare list)."""
    if isinstance(data, dict):
        data = data.get("findings")
    if not isinstance(data, list):
        return []
    order = {"error": 0, "warning": 1, "info": 2}
    items = [item for item in data if isinstance(item, dict)]
    return sorted(items, key=lambda f: order.get(str(f.get("severity")), 3))


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("panelNote")
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ChecksPanel(QWidget):
    """`checks.json`: pass or fail per sanity check, with what was measured and the advice."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = _note("")
        self.summary.setObjectName("panelSummary")
        self.tree = QTreeWidget()
        self.tree.setObjectName("checksTree")
        self.tree.setHeaderLabels(["Check", "Result", "Measured", "Expected", "Tolerance", "Advice"])
        self.tree.setRootIsDecorated(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree, 1)

    def show_data(self, data: Any) -> None:
        self.tree.clear()
        items = check_items(data)
        if not items:
            self.summary.setText("checks.json holds no check results.")
            return
        passed = sum(1 for item in items if item.get("passed") is True)
        self.summary.setText(f"{passed} of {len(items)} checks passed.")
        for item in items:
            ok = item.get("passed")
            severity = str(item.get("severity") or "error")
            status = "passed" if ok else ("warning" if severity == "warning" else "failed")
            row = QTreeWidgetItem([
                str(item.get("name", "?")),
                "passed" if ok else ("warning" if status == "warning" else "FAILED"),
                fmt(item.get("measured")),
                fmt(item.get("expected")),
                fmt(item.get("tolerance")),
                str(item.get("advice") or ""),
            ])
            row.setIcon(0, icons.status_icon(status))
            row.setToolTip(5, str(item.get("advice") or ""))
            for key in ("advice", "recipe"):
                if item.get(key):
                    child = QTreeWidgetItem([f"{key}: {item[key]}"])
                    row.addChild(child)
                    child.setFirstColumnSpanned(True)
            details = item.get("details")
            if isinstance(details, dict) and details:
                child = QTreeWidgetItem(["details: " + fmt(details)])
                row.addChild(child)
                child.setFirstColumnSpanned(True)
            self.tree.addTopLevelItem(row)
            row.setExpanded(not ok)


class LRFindPanel(QWidget):
    """`lr_find.json`: the loss-vs-LR curve, the suggestions, and "use this LR"."""

    useLearningRate = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.data: dict[str, Any] = {}
        self.plot = PlotWidget(height=3.2)
        self.table = QTableWidget(0, 2)
        self.table.setObjectName("lrSuggestions")
        self.table.setHorizontalHeaderLabels(["Rule", "Learning rate"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.reason = _note("")
        self.use_button = QPushButton("Use in config")
        self.use_button.setObjectName("useLR")
        self.use_button.setToolTip("Put the selected learning rate into the config being edited")
        self.use_button.clicked.connect(self._use)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(QLabel("Suggestions"))
        side_layout.addWidget(self.table, 1)
        side_layout.addWidget(self.reason)
        side_layout.addWidget(self.use_button)
        side.setMaximumWidth(380)
        side.setMinimumWidth(300)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.plot, 3)
        layout.addWidget(side, 1)

    def selected_lr(self) -> float | None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            value = self.table.item(rows[0].row(), 1).data(Qt.ItemDataRole.UserRole)
            return float(value) if value is not None else None
        chosen = self.data.get("chosen")
        return float(chosen) if isinstance(chosen, (int, float)) and chosen > 0 else None

    def show_data(self, data: Any) -> None:
        self.data = data if isinstance(data, dict) else {}
        suggestions = self.data.get("suggestions") if isinstance(self.data.get("suggestions"), dict) else {}
        chosen_rule = self.data.get("chosen_rule")
        rows = [(rule, lr) for rule, lr in sorted(suggestions.items()) if isinstance(lr, (int, float))]
        chosen = self.data.get("chosen")
        if isinstance(chosen, (int, float)) and chosen_rule not in suggestions:
            rows.insert(0, (chosen_rule or "chosen", chosen))
        self.table.setRowCount(len(rows))
        select = None
        for index, (rule, lr) in enumerate(rows):
            name = QTableWidgetItem(f"{rule}  (chosen)" if rule == chosen_rule else str(rule))
            value = QTableWidgetItem(f"{lr:.3g}")
            value.setData(Qt.ItemDataRole.UserRole, float(lr))
            self.table.setItem(index, 0, name)
            self.table.setItem(index, 1, value)
            if rule == chosen_rule:
                select = index
        if select is not None:
            self.table.selectRow(select)
        parts = []
        if self.data.get("reason"):
            parts.append(str(self.data["reason"]))
        steps, seconds = self.data.get("steps"), self.data.get("seconds")
        if isinstance(steps, (int, float)):
            parts.append(f"{int(steps)} steps" + (f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""))
        self.reason.setText(" · ".join(parts))
        self._selection_changed()
        draw_lr_find(self.plot.figure, self.data)
        self.plot.draw()

    def _selection_changed(self) -> None:
        lr = self.selected_lr()
        self.use_button.setEnabled(lr is not None)
        self.use_button.setText(f"Use learning rate {lr:.3g} in config" if lr else "Use in config")
        rows = self.table.selectionModel().selectedRows()
        if rows and self.data:
            rule = self.table.item(rows[0].row(), 0).text().replace("  (chosen)", "")
            draw_lr_find(self.plot.figure, self.data, highlight=rule)
            self.plot.draw()

    def _use(self) -> None:
        lr = self.selected_lr()
        if lr is not None:
            self.useLearningRate.emit(lr)


class DiagnosisPanel(QWidget):
    """`diagnosis.json`: findings with a severity icon, their evidence, advice and cause; Fix (`kerasguide fix`).

    A consequence names its cause ("caused by lr_too_high", `Finding.caused_by`). A run that is itself a
    repair (run.json's `parent` and `repair`) says what was changed from which run.

    Signals:
        fixRequested(): "repair this run" (`kerasguide fix RUN_DIR`), from the Fix button.
    """

    fixRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = _note("")
        self.summary.setObjectName("panelSummary")
        self.repair_note = _note("")
        self.repair_note.setObjectName("repairNote")
        self.repair_note.setVisible(False)
        self.fix_button = QPushButton("Fix")
        self.fix_button.setObjectName("fixButton")
        self.fix_button.setToolTip("kerasguide fix RUN_DIR: turn each finding into a config change, run the "
                                   "changed config, repeat (at most 2 rounds); before and after in fix.md")
        self.fix_button.clicked.connect(self.fixRequested)
        self.fix_button.setVisible(False)
        self._fix_available = False
        self.tree = QTreeWidget()
        self.tree.setObjectName("diagnosisTree")
        self.tree.setHeaderLabels(["Finding", "Advice"])
        self.tree.setWordWrap(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(True)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.fix_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(self.repair_note)
        layout.addWidget(self.tree, 1)

    def set_fix_available(self, available: bool) -> None:
        """Show Fix when the CLI has `fix`."""
        self._fix_available = available
        self.fix_button.setVisible(available)

    def show_data(self, data: Any, record: Any = None) -> None:
        """Show a diagnosis.json; `record` (run.json) adds what a repaired run changed, and from which run."""
        self.tree.clear()
        self._show_repair(record if isinstance(record, dict) else {})
        findings = finding_items(data)
        problems = [f for f in findings if f.get("severity") in ("warning", "error")]
        self.fix_button.setEnabled(bool(problems))
        self.fix_button.setToolTip(
            "kerasguide fix RUN_DIR: turn each finding into a config change, run the changed config, repeat "
            "(at most 2 rounds); before and after in fix.md" if problems else "nothing to fix: no warning or error")
        if not findings:
            self.summary.setText("No findings: nothing in the recorded signals looks wrong.")
            return
        counts: dict[str, int] = {}
        for finding in findings:
            severity = str(finding.get("severity") or "info")
            counts[severity] = counts.get(severity, 0) + 1
            row = QTreeWidgetItem([str(finding.get("code", "finding")), str(finding.get("advice") or "")])
            row.setIcon(0, icons.severity_icon(severity))
            row.setToolTip(1, str(finding.get("advice") or ""))
            cause = finding.get("caused_by")
            if isinstance(cause, str) and cause:
                row.addChild(QTreeWidgetItem(["caused by", cause]))
            evidence = finding.get("evidence")
            if isinstance(evidence, dict):
                for key, value in evidence.items():
                    row.addChild(QTreeWidgetItem([str(key), fmt(value)]))
            elif evidence:
                row.addChild(QTreeWidgetItem(["evidence", fmt(evidence)]))
            if finding.get("recipe"):
                row.addChild(QTreeWidgetItem(["recipe", str(finding["recipe"])]))
            self.tree.addTopLevelItem(row)
            row.setExpanded(severity != "info")
        order = ["error", "warning", "info"]
        self.summary.setText(", ".join(f"{counts[k]} {k}{'s' if counts[k] > 1 else ''}"
                                       for k in order if k in counts) + ".")

    def _show_repair(self, record: dict[str, Any]) -> None:
        repair = record.get("repair")
        parent = record.get("parent")
        if not isinstance(repair, dict) or not parent:
            self.repair_note.setVisible(False)
            return
        changes = repair.get("changes") if isinstance(repair.get("changes"), dict) else {}
        text = ", ".join(f"{key} {fmt(v[0])} → {fmt(v[1])}" for key, v in changes.items()
                         if isinstance(v, (list, tuple)) and len(v) == 2)
        self.repair_note.setText(f"A repair (round {repair.get('round', '?')}) of {Path(str(parent)).name}: "
                                 f"{text or 'no change'}.")
        self.repair_note.setVisible(True)


class ReportPanel(QWidget):
    """`report.md`, rendered (images resolved relative to the run directory)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.browser = QTextBrowser()
        self.browser.setObjectName("reportBrowser")
        self.browser.setOpenExternalLinks(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.browser)

    def show_file(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            self.browser.setPlainText(f"{path}: cannot read ({error.strerror})")
            return
        self.browser.document().setBaseUrl(QUrl.fromLocalFile(str(path.parent) + "/"))
        self.browser.setSearchPaths([str(path.parent)])
        self.browser.setMarkdown(text)


class PredictionsPanel(QWidget):
    """A run's predictions CSVs (`kerasguide predict`): the first rows as a table, and the file to open.

    Signals:
        openFile(Path): the user asked to open the CSV (the default app for it).
    """

    ROWS = 200
    openFile = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.path: Path | None = None
        self.files = QComboBox()
        self.files.setObjectName("predictionFiles")
        self.files.setToolTip("The predictions CSVs of this run, newest first")
        self.files.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.files.currentIndexChanged.connect(self._file_chosen)
        self.summary = _note("")
        self.summary.setObjectName("panelSummary")
        self.open_button = QPushButton("Open file")
        self.open_button.setObjectName("openPredictions")
        self.open_button.setToolTip("Open the CSV in the application your desktop uses for it")
        self.open_button.clicked.connect(self._open)
        self.folder_button = QPushButton("Show in folder")
        self.folder_button.clicked.connect(self._open_folder)
        self.table = QTableWidget(0, 0)
        self.table.setObjectName("predictionsTable")
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.verticalHeader().hide()  # the CSV has its own index column
        top = QHBoxLayout()
        top.addWidget(QLabel("File"))
        top.addWidget(self.files)
        top.addWidget(self.summary, 1)
        top.addWidget(self.open_button)
        top.addWidget(self.folder_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        self.openFile.connect(lambda path: QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))))
        self._show(None)

    def show_run(self, run_dir: Path, select: Path | None = None) -> None:
        """List the run's predictions CSVs and show `select` (default: the newest)."""
        files = prediction_files(run_dir)
        if select is not None and Path(select).is_file() and Path(select) not in files:
            files.insert(0, Path(select))
        wanted = Path(select) if select is not None else (self.path if self.path in files else None)
        self.files.blockSignals(True)
        self.files.clear()
        for path in files:
            self.files.addItem(path.name, str(path))
        index = files.index(wanted) if wanted in files else 0
        self.files.setCurrentIndex(index if files else -1)
        self.files.blockSignals(False)
        self._show(files[index] if files else None)

    def show_file(self, path: Path) -> None:
        """Show one predictions CSV (listing its run directory's others beside it)."""
        self.show_run(Path(path).parent, Path(path))

    def _file_chosen(self, index: int) -> None:
        data = self.files.itemData(index) if index >= 0 else None
        self._show(Path(data) if data else None)

    def _show(self, path: Path | None) -> None:
        self.path = path
        self.open_button.setEnabled(path is not None)
        self.folder_button.setEnabled(path is not None)
        if path is None:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)
            self.summary.setText("No predictions yet: Predict… (above) on an npz or csv file or a folder of images.")
            return
        header, rows, total = read_csv_head(path, self.ROWS)
        self.table.setUpdatesEnabled(False)  # filled once, then sized once: not per cell
        self.table.setColumnCount(len(header))
        self.table.setHorizontalHeaderLabels(header)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row[: len(header)]):
                item = QTableWidgetItem(_short_number(value))
                item.setToolTip(value)
                if _is_number(value):
                    item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.setUpdatesEnabled(True)
        shown = f"the first {len(rows)} of {total} rows" if total > len(rows) else f"{total} rows"
        self.summary.setText(f"{shown}, {len(header)} columns — {path}")

    def _open(self) -> None:
        if self.path is not None:
            self.openFile.emit(self.path)

    def _open_folder(self) -> None:
        if self.path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.path.parent)))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _short_number(text: str) -> str:
    """A probability like `0.0123456789` as `0.01235`; ids, labels and other text as written."""
    if "." not in text and "e" not in text.lower():
        return text
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text


def pretty_json(data: Any) -> str:  # pragma: no cover - debugging aid
    return json.dumps(data, indent=2)
