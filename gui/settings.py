"""The app's persisted settings (`QSettings`): workspace, recent configs, window layout."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

__all__ = ["AppSettings", "ORGANIZATION", "APPLICATION", "MAX_RECENT"]

ORGANIZATION = "kerasguide"
APPLICATION = "kerasguide-gui"
MAX_RECENT = 8


class AppSettings:
    """Typed access to the app's `QSettings`.

    Args:
        settings: The store. Defaults to the user's native settings for
            kerasguide; tests pass an INI file in a temp folder.
    """

    def __init__(self, settings: QSettings | None = None):
        self.store = settings if settings is not None else QSettings(ORGANIZATION, APPLICATION)

    # workspace: the folder of run directories
    def workspace(self) -> Path:
        value = self.store.value("workspace")
        return Path(str(value)) if value else Path.cwd() / "runs"

    def set_workspace(self, path: str | Path) -> None:
        self.store.setValue("workspace", str(Path(path)))

    # recent configs, newest first, existing files only
    def recent_configs(self) -> list[Path]:
        value = self.store.value("recent_configs") or []
        if isinstance(value, str):
            value = [value]
        return [Path(p) for p in value if p and Path(p).is_file()]

    def add_recent(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        items = [str(p) for p in self.recent_configs() if str(p) != path]
        self.store.setValue("recent_configs", [path, *items][:MAX_RECENT])

    # window layout
    def geometry(self, key: str) -> QByteArray | None:
        value = self.store.value(f"window/{key}")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_geometry(self, key: str, value: QByteArray) -> None:
        self.store.setValue(f"window/{key}", value)

    def value(self, key: str, default=None):
        return self.store.value(key, default)

    def set_value(self, key: str, value) -> None:
        self.store.setValue(key, value)

    def sync(self) -> None:
        self.store.sync()
