"""The config editor: a form generated from the schema, beside the raw TOML.

Pages come from `schema.form_sections` (one per section of `RunConfig`,
whatever sections the schema has today); each field gets the editor its
type calls for. The form observes a `ConfigDocument`: it writes each edit
into it and shows the schema's verdict under the field (red frame, the
message), and the section list marks the pages that hold a problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import icons
from .config_doc import FORM, ConfigDocument
from .schema import BOOL, CHOICE, NUMBER_OR_CHOICE, UNSET, FieldSpec, SectionSpec, format_field, parse_text

__all__ = ["ConfigForm", "ConfigEditor", "TomlView", "PICKERS", "DATA_SOURCE_KINDS", "model_kind_of",
           "data_source_of", "python_names"]

_BUILDER = re.compile(r"^(?:def|class)\s+([A-Za-z_]\w*)", re.M)
_FUNCTION = re.compile(r"^def\s+([A-Za-z_]\w*)", re.M)


def python_names(path: str, classes: bool = True) -> list[str]:
    """The public top-level functions (and classes) of a Python file, in file order; [] if unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [n for n in (_BUILDER if classes else _FUNCTION).findall(text) if not n.startswith("_")]


def _default_name(names: list[str], conventional: str) -> str:
    return conventional if conventional in names or not names else names[0]


def model_kind_of(path: str, name: str | None = None) -> str:
    """`model.kind` for a picked file: `keras:PATH` for a saved model, `python:PATH:NAME` for a builder file.

    NAME is the one given, else the file's `build` if it has one, else its first top-level function or class.
    """
    if path.endswith(".keras"):
        return f"keras:{path}"
    return f"python:{path}:{name or _default_name(python_names(path), 'build')}"


def data_source_of(path: str, folder: bool = False, function: str | None = None) -> str:
    """`data.source` for a picked file or folder.

    A folder is `images:DIR` (its subfolders are the classes); a `.py` file is
    `python:PATH:FUNCTION` (the function given, else the file's `load`, else
    its first public function); a `.csv` (`.tsv`, `.txt`) file is `csv:PATH`;
    any other file `npz:PATH`.
    """
    if folder:
        return f"images:{path}"
    lower = path.lower()
    if lower.endswith(".py"):
        return f"python:{path}:{function or _default_name(python_names(path, classes=False), 'load')}"
    return f"{'csv' if lower.endswith(('.csv', '.tsv', '.txt')) else 'npz'}:{path}"


# Fields with a Browse button: (what it picks, the dialog's file filter).
PICKERS = {
    "model.kind": ("file", "Models (*.py *.keras);;Python builder (*.py);;Saved Keras model (*.keras)"),
    "data.source": ("data file, image folder or Python file",
                    "Data (*.npz *.csv *.py);;NumPy arrays (*.npz);;CSV (*.csv);;Python function (*.py)"),
}
# data.source's Browse menu: (what, its text); "python" picks a .py file and then, if need be, its function.
DATA_SOURCE_KINDS = [
    ("file", "Data file (npz, csv)…"),
    ("images", "Folder of images (one subfolder per class)…"),
    ("python", "Python function returning the splits (.py)…"),
]
# The conventional name of the function a picked .py file is expected to hold, per field.
_CONVENTIONAL = {"model.kind": ("build", True), "data.source": ("load", False)}


class _FieldRow(QWidget):
    """One field: its editor, its description and (when invalid) the schema's message."""

    edited = Signal(tuple, object)

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.editor = self._make_editor()
        self.editor.setObjectName(f"field:{spec.key}")
        self.editor.setToolTip(f"{spec.key}\n{spec.description}".strip())
        self.browse: QToolButton | None = None
        if spec.key in PICKERS and isinstance(self.editor, QLineEdit):
            line = QHBoxLayout()
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(self.editor, 1)
            line.addWidget(self._make_browse())
            layout.addLayout(line)
        else:
            layout.addWidget(self.editor)
        if spec.description:
            hint = QLabel(spec.description)
            hint.setObjectName("hint")
            hint.setWordWrap(True)
            layout.addWidget(hint)
        self.error = QLabel()
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        layout.addWidget(self.error)

    def _make_editor(self) -> QWidget:
        spec = self.spec
        if spec.kind == BOOL:
            editor = QCheckBox()
            editor.toggled.connect(lambda on: self.edited.emit(spec.path, bool(on)))
            return editor
        if spec.kind == CHOICE:
            editor = QComboBox()
            editor.addItems(list(spec.choices))
            editor.textActivated.connect(lambda text: self.edited.emit(spec.path, text))
            return editor
        if spec.kind == NUMBER_OR_CHOICE:
            editor = QComboBox()
            editor.setEditable(True)
            editor.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            editor.addItems(list(spec.choices))
            editor.lineEdit().textEdited.connect(self._text_edited)
            editor.textActivated.connect(self._text_edited)
            return editor
        editor = QLineEdit()
        if spec.optional:
            editor.setPlaceholderText("unset")
        elif spec.kind == "list":
            editor.setPlaceholderText("comma-separated; empty for none")
        editor.textEdited.connect(self._text_edited)
        return editor

    def _make_browse(self) -> QToolButton:
        what, _ = PICKERS[self.spec.key]
        button = QToolButton()
        button.setText("Browse…")
        button.setObjectName(f"browse:{self.spec.key}")
        button.setToolTip(f"pick a {what} for {self.spec.key}")
        if self.spec.key == "data.source":
            menu = QMenu(button)
            for kind, text in DATA_SOURCE_KINDS:
                action = menu.addAction(text, lambda k=kind: self.pick(kind=k))
                action.setObjectName(f"pick:{kind}")
            button.setMenu(menu)
            button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        else:
            button.clicked.connect(lambda: self.pick())
        self.browse = button
        return button

    def pick(self, folder: bool = False, kind: str | None = None) -> str | None:
        """Ask for a file (or a folder) and set the field from it; returns the new value or None.

        `kind` is data.source's: `"file"` (npz, csv), `"images"` (a folder, as
        `folder=True`) or `"python"` (a .py file, then its function when the
        file has several and none is called `load`).
        """
        key = self.spec.key
        _, filters = PICKERS[key]
        kind = "images" if folder else (kind or "file")
        start = self._current_path()
        if kind == "images":
            path = QFileDialog.getExistingDirectory(self, f"Folder of images for {key} (one subfolder per class)",
                                                    start)
        elif kind == "python":
            path, _ = QFileDialog.getOpenFileName(self, f"A Python file for {key}", start, "Python (*.py)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, f"A file for {key}", start, filters)
        if not path:
            return None
        name = None
        if path.lower().endswith(".py"):
            name = self._ask_name(path)
            if name is None:
                return None
        if key == "model.kind":
            value = model_kind_of(path, name)
        else:
            value = data_source_of(path, folder=kind == "images", function=name)
        self.editor.setText(value)
        self.edited.emit(self.spec.path, value)
        return value

    def _ask_name(self, path: str) -> str | None:
        """The function (or class) of a picked .py file: the conventional one (`build`, `load`) or the only one
        when that settles it, else the user's choice among the file's; None if the user cancels."""
        conventional, classes = _CONVENTIONAL.get(self.spec.key, ("build", True))
        names = python_names(path, classes=classes)
        if conventional in names or len(names) <= 1:
            return _default_name(names, conventional)
        what = "builds the model" if self.spec.key == "model.kind" else "returns the splits"
        name, ok = QInputDialog.getItem(self, f"{self.spec.key}: which function?",
                                        f"{Path(path).name} has no `{conventional}`. Which one {what}?",
                                        names, 0, False)
        return name if ok and name else None

    def _current_path(self) -> str:
        # "python:/a/b.py:build" -> "/a/b.py": the dialog opens where the current value points.
        text = self.editor.text()
        body = text.split(":", 1)[1] if ":" in text else ""
        if text.startswith("python:") and ":" in body:
            body = body.rsplit(":", 1)[0]
        return str(Path(body).parent) if body else ""

    def _text_edited(self, text: str) -> None:
        self.edited.emit(self.spec.path, parse_text(self.spec, text))

    def text(self) -> str:
        """What the editor shows, as text (tests and round trips read this)."""
        editor = self.editor
        if isinstance(editor, QCheckBox):
            return "true" if editor.isChecked() else "false"
        if isinstance(editor, QComboBox):
            return editor.currentText()
        return editor.text()

    def value(self) -> Any:
        """The editor's content parsed as the schema expects it."""
        if isinstance(self.editor, QCheckBox):
            return self.editor.isChecked()
        return parse_text(self.spec, self.text())

    def show_value(self, value: Any) -> None:
        editor = self.editor
        blocker = QSignalBlocker(editor)
        if isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QComboBox):
            text = format_field(self.spec, value)
            if editor.isEditable():
                editor.setEditText(text)
            else:
                index = editor.findText(text)
                if index < 0:  # a value the schema will reject: show it anyway
                    editor.addItem(text)
                    index = editor.count() - 1
                editor.setCurrentIndex(index)
        else:
            text = format_field(self.spec, value)
            if editor.text() != text:
                editor.setText(text)
        del blocker

    def show_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))
        if self.editor.property("invalid") != bool(message):
            self.editor.setProperty("invalid", bool(message))
            self.editor.style().unpolish(self.editor)
            self.editor.style().polish(self.editor)


class _SectionPage(QScrollArea):
    def __init__(self, section: SectionSpec, parent: QWidget | None = None):
        super().__init__(parent)
        self.section = section
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        body.setObjectName("formPage")
        outer = QVBoxLayout(body)
        outer.setContentsMargins(18, 14, 18, 14)
        title = QLabel(section.title)
        title.setObjectName("pageTitle")
        outer.addWidget(title)
        if section.description:
            about = QLabel(section.description)
            about.setObjectName("pageAbout")
            about.setWordWrap(True)
            outer.addWidget(about)
        self.error = QLabel()
        self.error.setObjectName("sectionError")
        self.error.setWordWrap(True)
        self.error.hide()
        outer.addWidget(self.error)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setHorizontalSpacing(14)
        form.setVerticalSpacing(10)
        self.rows: dict[tuple[str, ...], _FieldRow] = {}
        for spec in section.fields:
            row = _FieldRow(spec)
            label = QLabel(spec.label)
            label.setToolTip(spec.key)
            label.setObjectName("fieldLabel")
            form.addRow(label, row)
            self.rows[spec.path] = row
        outer.addLayout(form)
        outer.addStretch(1)
        self.setWidget(body)


class ConfigForm(QWidget):
    """The generated form: a list of sections and one page per section.

    A page's widgets are built the first time it is shown (or one of its
    rows is asked for): a dozen pages of fields would otherwise cost most of
    the app's start-up.
    """

    def __init__(self, document: ConfigDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.sections = QListWidget()
        self.sections.setObjectName("sectionList")
        self.sections.setFixedWidth(170)
        self.sections.setIconSize(QSize(14, 14))
        self.pages = QStackedWidget()
        self.rows: dict[tuple[str, ...], _FieldRow] = {}
        self._specs = list(document.sections)
        self._pages: list[_SectionPage | None] = [None] * len(self._specs)
        for section in self._specs:
            self.pages.addWidget(QWidget())  # replaced by the page when first shown
            QListWidgetItem(section.title, self.sections)
        self.sections.currentRowChanged.connect(self._show_page)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sections)
        layout.addWidget(self.pages, 1)
        document.changed.connect(self._document_changed)
        self.sections.setCurrentRow(0)
        self._document_changed("load")

    def page(self, index: int) -> _SectionPage:
        """The page of section `index`, built now if it was not yet."""
        page = self._pages[index]
        if page is None:
            page = _SectionPage(self._specs[index])
            placeholder = self.pages.widget(index)
            self.pages.insertWidget(index, page)
            self.pages.removeWidget(placeholder)
            placeholder.deleteLater()
            self._pages[index] = page
            for path, row in page.rows.items():
                self.rows[path] = row
                row.edited.connect(self._edited)
                row.show_value(self.document.value(path))
                row.show_error(self.document.errors.get(path))
            self._show_section_error(index)
        return page

    def row(self, key: str) -> _FieldRow:
        """The row of a field by its dotted key, e.g. `"train.epochs"`."""
        path = tuple(key.split("."))
        if path not in self.rows:
            for index, section in enumerate(self._specs):
                if any(f.path == path for f in section.fields):
                    self.page(index)
        return self.rows[path]

    def show_section(self, key: str) -> None:
        for index, section in enumerate(self._specs):
            if section.key == key:
                self.sections.setCurrentRow(index)
                return

    def collect(self) -> dict[str, Any]:
        """The config as the editors show it now (every field, nested)."""
        for index in range(len(self._specs)):
            self.page(index)
        data: dict[str, Any] = {}
        for path, row in self.rows.items():
            value = row.value()
            if value is None or value is UNSET:
                continue
            node = data
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        return data

    def _show_page(self, index: int) -> None:
        if 0 <= index < len(self._specs):
            self.page(index)
            self.pages.setCurrentIndex(index)

    def _edited(self, path: tuple[str, ...], value: Any) -> None:
        self.document.set_value(path, value)

    def _show_section_error(self, index: int) -> None:
        doc = self.document
        section = self._specs[index]
        own = doc.errors.get(section.path)
        page = self._pages[index]
        if page is not None:
            page.error.setText(own or "")
            page.error.setVisible(bool(own))
        bad = bool(own) or any(f.path in doc.errors for f in section.fields)
        item = self.sections.item(index)
        item.setIcon(icons.status_icon("failed") if bad else icons.blank_icon())
        item.setToolTip("this section has a problem" if bad else "")

    def _document_changed(self, origin: str) -> None:
        doc = self.document
        if origin != FORM:
            for path, row in self.rows.items():
                row.show_value(doc.value(path))
        for path, row in self.rows.items():
            row.show_error(doc.errors.get(path))
        for index in range(len(self._specs)):
            self._show_section_error(index)


class TomlView(QWidget):
    """The config as TOML text, editable, kept in sync with the form."""

    def __init__(self, document: ConfigDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        title = QLabel("TOML")
        title.setObjectName("paneTitle")
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("tomlEditor")
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.editor.setFont(font)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.error = QLabel()
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(title)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.error)
        # Parse after a short pause in typing, not on every key.
        self._timer = QTimer(self, singleShot=True, interval=300)
        self._timer.timeout.connect(self.commit)
        self.editor.textChanged.connect(self._timer.start)
        document.changed.connect(self._document_changed)
        self._document_changed("load")

    def has_pending_edit(self) -> bool:
        """Whether typed text waits for the pause that hands it to the document."""
        return self._timer.isActive()

    def flush_pending(self) -> None:
        """Hand typed text that waits for the pause to the document now; nothing if none waits."""
        if self.has_pending_edit():
            self.commit()

    def commit(self) -> None:
        """Hand the typed text to the document now."""
        self._timer.stop()
        self.document.set_text(self.editor.toPlainText())

    def _document_changed(self, origin: str) -> None:
        if origin != "text" and self.editor.toPlainText() != self.document.text:
            blocker = QSignalBlocker(self.editor)
            self.editor.setPlainText(self.document.text)
            del blocker
        message = self.document.toml_error
        self.error.setText(f"Not valid TOML: {message}" if message else "")
        self.error.setVisible(bool(message))


class ConfigEditor(QWidget):
    """The config tab: the form, the TOML beside it and a one-line verdict."""

    def __init__(self, document: ConfigDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.form = ConfigForm(document)
        self.toml = TomlView(document)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.form)
        self.splitter.addWidget(self.toml)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(True)
        self.splitter.setSizes([780, 420])
        self.verdict = QLabel()
        self.verdict.setObjectName("verdict")
        self.verdict.setWordWrap(True)
        self.verdict.linkActivated.connect(self._go_to)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.verdict)
        document.changed.connect(self._update_verdict)
        self._update_verdict()

    def _update_verdict(self, *_: Any) -> None:
        doc = self.document
        if doc.valid:
            self.verdict.setProperty("ok", True)
            cfg = doc.config
            summary = ""
            if cfg is not None:
                summary = (f" — {cfg.data.source}, {cfg.model.kind}, {cfg.optimizer.name} "
                           f"lr {cfg.optimizer.learning_rate}, {cfg.train.epochs} epochs")
            self.verdict.setText(f"✔ Valid config{summary}")
        else:
            self.verdict.setProperty("ok", False)
            problems = doc.error_messages()
            links = []
            for path in doc.errors:
                key = ".".join(path) or "config"
                links.append(f'<a href="{key}">{key}</a>: {doc.errors[path]}')
            if doc.toml_error:
                links.insert(0, f"TOML: {doc.toml_error}")
            noun = "problem" if len(problems) == 1 else "problems"
            self.verdict.setText(f"✖ {len(problems)} {noun} — Run is disabled until fixed. "
                                 + " · ".join(links[:4]))
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)

    def _go_to(self, key: str) -> None:
        parts = tuple(key.split("."))
        for section in self.document.sections:
            if parts[: len(section.path)] == section.path and (
                parts in {f.path for f in section.fields} or parts == section.path
            ):
                self.form.show_section(section.key)
                row = self.form.rows.get(parts)
                if row is not None:
                    row.editor.setFocus()
                return
