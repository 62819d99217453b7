"""The config being edited: a plain object with signals (the form and TOML views observe it).

The document keeps what the user wrote (a sparse dict: only the keys set in
the file or in the form; the schema fills in the rest) and the TOML text.
An edit in the form rewrites the text from the dict; an edit of the text
re-parses the dict and leaves the text exactly as typed (comments kept).
Every change is validated by the schema itself, giving per-field messages.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from PySide6.QtCore import QObject, Signal

from kerasguide.config import RunConfig
from kerasguide.io import atomic_write_bytes
from kerasguide.presets import preset_path

from .schema import UNSET, FieldSpec, SectionSpec, form_sections, validate

__all__ = ["ConfigDocument"]

FORM, TEXT, LOAD = "form", "text", "load"


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value


_MULTILINE_ARRAY = re.compile(r"= \[\n((?:[ \t]+[^\n]*,\n)+)\]")


def _inline_arrays(text: str, width: int = 88) -> str:
    # tomli_w writes every array one item a line; short ones read better inline.
    def join(match: re.Match) -> str:
        items = [line.strip().rstrip(",") for line in match.group(1).splitlines()]
        inline = "= [" + ", ".join(items) + "]"
        return inline if len(inline) <= width and not any("[" in i or "{" in i for i in items) else match.group(0)

    return _MULTILINE_ARRAY.sub(join, text)


class ConfigDocument(QObject):
    """A run config under edit, validated live with the schema.

    Signals:
        changed(str): the content changed; the argument says where from
            (`"form"`, `"text"` or `"load"`), so a view does not overwrite
            what its user is typing.
        validityChanged(bool): the config became valid or invalid.
        pathChanged(object): the file it is bound to (a `Path` or None).
        dirtyChanged(bool): unsaved changes appeared or were saved.
    """

    changed = Signal(str)
    validityChanged = Signal(bool)
    pathChanged = Signal(object)
    dirtyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.sections: list[SectionSpec] = form_sections(RunConfig)
        self.fields: dict[tuple[str, ...], FieldSpec] = {
            f.path: f for s in self.sections for f in s.fields
        }
        self._known = set(self.fields) | {s.path for s in self.sections}
        self.data: dict[str, Any] = {}
        self.text = ""
        self.errors: dict[tuple[str, ...], str] = {}
        self.toml_error: str | None = None
        self.config: RunConfig | None = None
        self.path: Path | None = None
        self.origin = "new"  # "new", a preset name, or "file"
        self.dirty = False
        self._valid = True
        self._set_data({}, LOAD)

    # ----------------------------------------------------------- queries
    @property
    def valid(self) -> bool:
        return self.toml_error is None and not self.errors

    @property
    def title(self) -> str:
        if self.path is not None:
            return self.path.name
        return f"untitled ({self.origin})" if self.origin != "new" else "untitled"

    def value(self, path: tuple[str, ...]) -> Any:
        """What the field shows: the user's value if set, else the schema default."""
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                spec = self.fields.get(path)
                return spec.default if spec else None
            node = node[part]
        return node

    def is_set(self, path: tuple[str, ...]) -> bool:
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def error_messages(self) -> list[str]:
        """Every problem, one line each, `key: message`."""
        lines = [f"TOML: {self.toml_error}"] if self.toml_error else []
        for path, msg in self.errors.items():
            lines.append(f"{'.'.join(path) or 'config'}: {msg}")
        return lines

    # ----------------------------------------------------------- editing
    def set_value(self, path: tuple[str, ...], value: Any, origin: str = FORM) -> None:
        """Set one field (`UNSET` removes the key).

        Args:
            path: The field, e.g. `("train", "epochs")`.
            value: Its new value.
            origin: Who sets it; `"form"` (the default) tells the form not to
                rewrite the editor being typed in, anything else refreshes it.
        """
        data = copy.deepcopy(self.data)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        if value is UNSET:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
        self._set_data(data, origin)
        self._mark_dirty()

    def set_text(self, text: str) -> None:
        """Set the whole config from TOML text (the raw view)."""
        if text == self.text:
            return
        self.text = text
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            self.toml_error = str(error)
            self._emit(TEXT)
        else:
            self.toml_error = None
            self._set_data(data, TEXT, keep_text=True)
        self._mark_dirty()

    def load_file(self, path: str | Path, bind: bool = True) -> None:
        """Open a TOML file (an invalid config opens too: the form shows what is wrong).

        Args:
            path: A TOML file, or a run directory (its `config.toml`).
            bind: Save back to this file. Defaults to `True`; a run's
                recorded config is opened unbound, so it is never overwritten.

        Raises:
            OSError: the file cannot be read.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "config.toml"
        text = path.read_bytes().decode("utf-8", errors="replace")
        self._load_text(text)
        self.path = path.resolve() if bind else None
        self.origin = "file" if bind else path.parent.name
        self.pathChanged.emit(self.path)
        self._mark_dirty(False)

    def load_preset(self, name: str) -> None:
        """Start from a bundled preset; saving asks for a new file."""
        self._load_text(preset_path(name).read_text(encoding="utf-8"))
        self.path = None
        self.origin = name
        self.pathChanged.emit(None)
        self._mark_dirty(False)

    def load_dict(self, data: dict[str, Any], origin: str = "new") -> None:
        self.toml_error = None
        self._set_data(copy.deepcopy(data), LOAD)
        self.path = None
        self.origin = origin
        self.pathChanged.emit(None)
        self._mark_dirty(False)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the TOML text (atomically) to `path` or the bound file."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no file to save to")
        atomic_write_bytes(target, self.text.encode("utf-8"))
        if target != self.path:
            self.path = target.resolve()
            self.origin = "file"
            self.pathChanged.emit(self.path)
        self._mark_dirty(False)
        return self.path

    # ----------------------------------------------------------- internals
    def _load_text(self, text: str) -> None:
        self.text = text
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            self.toml_error = str(error)
            self.data = {}
            self._validate()
            self._emit(LOAD)
            return
        self.toml_error = None
        self._set_data(data, LOAD, keep_text=True)

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        # A section written as a shorthand (e.g. `checks = false`) becomes
        # the table it stands for, so the form can edit its other keys.
        sections = {s.path[0] for s in self.sections if len(s.path) == 1}
        for name in sections:
            if name in data and not isinstance(data[name], dict):
                try:
                    resolved = RunConfig.model_validate({name: data[name]})
                except Exception:  # noqa: BLE001 - left as is; the schema will report it
                    continue
                data[name] = getattr(resolved, name).model_dump(mode="json", exclude_defaults=True)
        return data

    def _set_data(self, data: dict[str, Any], origin: str, keep_text: bool = False) -> None:
        self.data = self._normalize(data)
        if not keep_text:
            self.text = _inline_arrays(tomli_w.dumps(_drop_none(self.data)))
        self._validate()
        self._emit(origin)

    def _validate(self) -> None:
        if self.toml_error is not None:
            self.errors = {}
            self.config = None
        else:
            self.config, self.errors = validate(RunConfig, self.data, self._known)

    def _emit(self, origin: str) -> None:
        self.changed.emit(origin)
        if self.valid != self._valid:
            self._valid = self.valid
            self.validityChanged.emit(self._valid)

    def _mark_dirty(self, dirty: bool = True) -> None:
        if dirty != self.dirty:
            self.dirty = dirty
            self.dirtyChanged.emit(dirty)
