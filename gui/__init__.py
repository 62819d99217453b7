"""kerasguide's desktop app (PySide6), installed as `kerasguide_gui`.

The app edits run configs with the core's schema, runs the `kerasguide` CLI
in child processes (`QProcess`), follows their `--json-progress` lines and
reads their run directories. It never imports TensorFlow: every module here
imports only Qt, the standard library and the TensorFlow-free parts of the
core (`kerasguide.config`, `kerasguide.rundir`, `kerasguide.presets`,
`kerasguide.board`). Importing this package itself imports nothing heavy.

Start it with `kerasguide gui [CONFIG]` or `kerasguide-gui`.
"""

from ._compat import immortalize_none

# Before any Qt call: see `_compat` (PySide6 6.12 on CPython 3.11 drops references to None).
immortalize_none()

__all__ = ["main"]


def main(config_path: str | None = None) -> int:
    """Start the desktop app; returns its exit code. See `kerasguide_gui.app.main`."""
    from .app import main as _main

    return _main(config_path)
