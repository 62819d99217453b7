"""The app's look: Fusion with a light palette and a small stylesheet (same on every desktop)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

__all__ = ["STYLESHEET", "apply_palette", "ACCENT"]

ACCENT = "#1f5fbf"

STYLESHEET = """
QMainWindow, QWidget#formPage { background: #ffffff; }
QToolBar#mainToolbar { background: #f6f8fb; border: none; border-bottom: 1px solid #dde3ea; spacing: 4px; padding: 3px 6px; }
QToolBar#mainToolbar QToolButton { padding: 4px 8px; border-radius: 4px; }
QToolBar#mainToolbar QToolButton:hover { background: #e6edf7; }
QToolBar#mainToolbar QToolButton:disabled { color: #9aa3ad; }
QTabWidget#mainTabs QTabBar::tab { padding: 7px 18px; font-weight: 600; color: #4b5563; border: none; border-bottom: 2px solid transparent; background: transparent; }
QTabWidget#mainTabs QTabBar::tab:selected { color: #1f5fbf; border-bottom: 2px solid #1f5fbf; }
QTabWidget#mainTabs QTabBar::tab:hover:!selected { color: #1f2937; border-bottom: 2px solid #c9d6ea; }
QTabWidget#mainTabs QTabBar { border-bottom: 1px solid #dde3ea; }
QTabWidget#runTabs QTabBar::tab { padding: 5px 14px; border: none; border-bottom: 2px solid transparent; background: transparent; color: #4b5563; }
QTabWidget#runTabs QTabBar::tab:selected { color: #1f5fbf; border-bottom: 2px solid #1f5fbf; }
QTabWidget#runTabs QTabBar::tab:disabled { color: #b0b7bf; }
QListWidget#sectionList { background: #f6f8fb; border: none; border-right: 1px solid #dde3ea; outline: 0; padding-top: 6px; }
QListWidget#sectionList::item { padding: 7px 10px; color: #374151; }
QListWidget#sectionList::item:selected { background: #e3ecfa; color: #0d47a1; border-left: 3px solid #1f5fbf; }
QLabel#pageTitle { font-size: 17px; font-weight: 600; color: #1f2937; }
QLabel#pageAbout { color: #4b5563; margin-bottom: 10px; }
QLabel#fieldLabel { color: #374151; padding-top: 4px; }
QLabel#hint { color: #7b8490; font-size: 11px; }
QLabel#fieldError, QLabel#sectionError { color: #c62828; font-size: 11px; font-weight: 600; }
QLineEdit[invalid="true"], QComboBox[invalid="true"] { border: 1px solid #d32f2f; border-radius: 3px; background: #fff5f5; padding: 2px 4px; }
QLabel#verdict { padding: 6px 12px; border-top: 1px solid #dde3ea; }
QLabel#verdict[ok="true"] { background: #eef7ef; color: #1b5e20; }
QLabel#verdict[ok="false"] { background: #fdecea; color: #b71c1c; }
QLabel#paneTitle { font-weight: 600; color: #374151; }
QLabel#runTitle, QLabel#jobTitle { font-size: 13px; color: #1f2937; }
QLabel#panelSummary { font-weight: 600; color: #374151; padding: 2px 0 6px 0; }
QLabel#placeholder { color: #6b7280; font-size: 14px; }
QLabel#workspaceLabel { color: #374151; font-family: monospace; }
QFrame#errorPanel { background: #fdecea; border: 1px solid #f1b0ab; border-radius: 4px; }
QLabel#errorTitle { color: #b71c1c; font-weight: 600; }
QPlainTextEdit#errorText { background: #fff8f7; border: 1px solid #f1c6c2; }
QPlainTextEdit#jobLog, QPlainTextEdit#tomlEditor { background: #fbfcfd; border: 1px solid #dde3ea; }
QProgressBar#jobProgress { min-height: 20px; border: 1px solid #cfd6de; border-radius: 4px; text-align: center; background: #f3f5f8; }
QProgressBar#jobProgress::chunk { background: #4f8fe6; border-radius: 3px; }
QStatusBar QLabel { padding: 0 8px; color: #4b5563; }
QStatusBar QLabel[ok="false"] { color: #c62828; font-weight: 600; }
QHeaderView::section { background: #f6f8fb; border: none; border-bottom: 1px solid #dde3ea; padding: 4px 6px; font-weight: 600; color: #374151; }
QTableView, QTreeWidget { border: 1px solid #dde3ea; selection-background-color: #d6e4fb; selection-color: #0d2a57; alternate-background-color: #f8fafc; }
"""


def apply_palette(app) -> None:
    """A light palette: the app looks the same under any desktop theme."""
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#ffffff",
        QPalette.ColorRole.WindowText: "#1f2937",
        QPalette.ColorRole.Base: "#ffffff",
        QPalette.ColorRole.AlternateBase: "#f8fafc",
        QPalette.ColorRole.Text: "#1f2937",
        QPalette.ColorRole.Button: "#f3f5f8",
        QPalette.ColorRole.ButtonText: "#1f2937",
        QPalette.ColorRole.Highlight: "#d6e4fb",
        QPalette.ColorRole.HighlightedText: "#0d2a57",
        QPalette.ColorRole.ToolTipBase: "#ffffe8",
        QPalette.ColorRole.ToolTipText: "#1f2937",
        QPalette.ColorRole.PlaceholderText: "#9aa3ad",
        QPalette.ColorRole.Link: ACCENT,
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#9aa3ad"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#9aa3ad"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#9aa3ad"))
    app.setPalette(palette)
