"""Icons: the app icon from `resources/icons/`, and small status glyphs drawn with QPainter.

Status and severity glyphs are drawn rather than taken from the platform
theme so they look the same on every desktop (and offscreen).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from kerasguide.presets import resources_dir

__all__ = ["app_icon", "icon_dir", "status_icon", "status_color", "severity_icon", "blank_icon", "glyph"]

STATUS_COLORS = {
    "completed": "#2e7d32",
    "completed_with_errors": "#ef8f00",
    "killed": "#c62828",
    "passed": "#2e7d32",
    "running": "#1565c0",
    "queued": "#78909c",
    "failed": "#c62828",
    "checks_failed": "#c62828",
    "interrupted": "#ef6c00",
    "cancelled": "#ef6c00",
    "diverged": "#6a1b9a",
    "pruned": "#6a1b9a",
    "stopped": "#ef6c00",
    "unknown": "#9e9e9e",
    "info": "#1565c0",
    "warning": "#ef8f00",
    "error": "#c62828",
}

# status -> the glyph drawn inside the disc
_GLYPHS = {
    "completed": "check", "completed_with_errors": "bang", "killed": "cross", "passed": "check", "running": "play", "queued": "dots",
    "failed": "cross", "checks_failed": "cross", "error": "cross", "interrupted": "pause",
    "cancelled": "pause", "stopped": "pause", "diverged": "bang", "pruned": "bang", "warning": "bang", "info": "i", "unknown": "dots",
}


def icon_dir() -> Path:
    return resources_dir() / "icons"


@lru_cache(maxsize=1)
def app_icon() -> QIcon:
    """The app's icon (SVG when Qt can render it, plus the PNG)."""
    icon = QIcon()
    folder = icon_dir()
    for name in ("kerasguide.svg", "kerasguide.png"):
        if (folder / name).is_file():
            icon.addFile(str(folder / name))
    return icon


def status_color(status: str) -> QColor:
    return QColor(STATUS_COLORS.get(status, STATUS_COLORS["unknown"]))


def glyph(status: str, size: int = 16) -> QPixmap:
    """A filled disc in the status colour with a white mark (check, cross, ...)."""
    scale = 4  # drawn large then scaled: crisp at any device pixel ratio
    pix = QPixmap(size * scale, size * scale)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size * scale
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(status_color(status))
    if status == "warning":
        path = QPainterPath()
        path.moveTo(s / 2, s * 0.06)
        path.lineTo(s * 0.97, s * 0.92)
        path.lineTo(s * 0.03, s * 0.92)
        path.closeSubpath()
        painter.drawPath(path)
    else:
        painter.drawEllipse(QRectF(s * 0.06, s * 0.06, s * 0.88, s * 0.88))
    pen = QPen(QColor("white"), s * 0.12, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
               Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    mark = _GLYPHS.get(status, "dots")
    if mark == "check":
        painter.drawPolyline([QPointF(s * 0.3, s * 0.52), QPointF(s * 0.44, s * 0.66), QPointF(s * 0.7, s * 0.36)])
    elif mark == "cross":
        painter.drawLine(QPointF(s * 0.34, s * 0.34), QPointF(s * 0.66, s * 0.66))
        painter.drawLine(QPointF(s * 0.66, s * 0.34), QPointF(s * 0.34, s * 0.66))
    elif mark == "play":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("white"))
        tri = QPainterPath()
        tri.moveTo(s * 0.4, s * 0.3)
        tri.lineTo(s * 0.72, s * 0.5)
        tri.lineTo(s * 0.4, s * 0.7)
        tri.closeSubpath()
        painter.drawPath(tri)
    elif mark == "pause":
        painter.drawLine(QPointF(s * 0.4, s * 0.33), QPointF(s * 0.4, s * 0.67))
        painter.drawLine(QPointF(s * 0.6, s * 0.33), QPointF(s * 0.6, s * 0.67))
    elif mark == "bang":
        top = 0.38 if status == "warning" else 0.28
        painter.drawLine(QPointF(s * 0.5, s * top), QPointF(s * 0.5, s * 0.6))
        painter.drawPoint(QPointF(s * 0.5, s * 0.76))
    elif mark == "i":
        painter.drawPoint(QPointF(s * 0.5, s * 0.3))
        painter.drawLine(QPointF(s * 0.5, s * 0.46), QPointF(s * 0.5, s * 0.72))
    else:
        for x in (0.32, 0.5, 0.68):
            painter.drawPoint(QPointF(s * x, s * 0.5))
    painter.end()
    return pix.scaled(size * 2, size * 2, Qt.AspectRatioMode.KeepAspectRatio,
                      Qt.TransformationMode.SmoothTransformation)


@lru_cache(maxsize=64)
def status_icon(status: str) -> QIcon:
    return QIcon(glyph(status))


def severity_icon(severity: str) -> QIcon:
    return status_icon(severity if severity in ("info", "warning", "error") else "info")


@lru_cache(maxsize=1)
def blank_icon() -> QIcon:
    pix = QPixmap(32, 32)
    pix.fill(Qt.GlobalColor.transparent)
    return QIcon(pix)
