"""The bundled example configs in `resources/configs/` (shipped inside the package)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["resources_dir", "preset_names", "preset_path"]


def resources_dir() -> Path:
    """The folder of bundled resources, installed or in a source checkout."""
    try:
        path = Path(str(files("kerasguide.resources")))
        if (path / "configs").is_dir():
            return path
    except (ImportError, ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "resources"


def preset_names() -> list[str]:
    folder = resources_dir() / "configs"
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def preset_path(name: str) -> Path:
    return resources_dir() / "configs" / f"{name}.toml"
