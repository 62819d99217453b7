"""Atomic writes of every file kind, and JSON-safe numbers.

A reader (the desktop app, `kerasguide runs`, TensorBoard, a user's script)
sees a file's old content or its new one, never a torn one, even when the
writer is killed mid-write: everything is written to a temporary file
beside its target and renamed over it. This module imports no TensorFlow
(the desktop app uses it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_path",
    "save_figure",
    "json_safe",
    "json_default",
    "to_json",
]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a torn one."""
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as handle:
            handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically, indented; NaN and Inf become null, NumPy values plain numbers."""
    atomic_write_text(path, to_json(data, indent=2) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path`, with its suffix, renamed over `path` when the block ends without error.

    For writers that want a file name rather than bytes (`model.save`, which
    picks its format from the suffix). On an error the temporary file is
    removed and `path` keeps its old content.

    ```python
    with atomic_path("checkpoints/last.keras") as tmp:
        model.save(tmp)
    ```
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not created here: the writer creates it, with the umask's permissions like any file it writes.
    # Keras reads the format from the whole ending (`.weights.h5`), not the last suffix alone.
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    tmp = path.with_name(f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}")
    try:
        yield tmp
        with contextlib.suppress(FileNotFoundError):  # a new file keeps the umask's mode
            # Replacing a file keeps its permissions: a user's 0644 config saved by the app stays 0644.
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        # No fsync: the rename alone guarantees that a killed process leaves the old
        # or the new file; fsync on every epoch's record costs more than a small epoch.
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside `path`, moved to `path` (replacing an old one) when the block ends without error.

    The writer creates the folder (as `model.export` does) or its contents. On an error nothing changes at
    `path`; the old folder is gone only for the instant between the two renames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = path.with_name(f".{path.name}.{token}.tmp")
    old = path.with_name(f".{path.name}.{token}.old")
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)  # a folder cannot be renamed over a non-empty one
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            shutil.rmtree(leftover, ignore_errors=True)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically, its format from the suffix. Returns `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` for NumPy scalars and arrays and paths."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def json_safe(value: Any) -> Any:
    """`value` with every NaN and Inf replaced by None: JSON has neither, and every reader must parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def to_json(data: Any, indent: int | None = None) -> str:
    """JSON text of `data`: NumPy values as plain numbers, NaN and Inf as null."""
    return json.dumps(json_safe(json.loads(json.dumps(data, default=json_default))), indent=indent)
