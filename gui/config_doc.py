"""The config being edited: a plain object with signals (the form and TOML views observe it).

The document keeps what the user wrote (a sparse dict: only the keys set in
the file or in the form; the schema fills in the rest) and the TOML text.
An edit in the form changes the text in place (a tomlkit document of it):
the key set is rewritten, added or removed, and every comment, blank line,
key order and spelling of the other keys stays as the user wrote it. An
edit of the text re-parses the dict and leaves the text exactly as typed.
Every change is validated by the schema itself, giving per-field messages.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
import tomlkit
from PySide6.QtCore import QObject, Signal
from tomlkit.container import Container, OutOfOrderTableProxy
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Comment, InlineTable, Item, Null, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

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
_WIDTH = 88


def _inline_arrays(text: str, width: int = _WIDTH) -> str:
    # tomli_w writes every array one item a line; short ones read better inline.
    def join(match: re.Match) -> str:
        items = [line.strip().rstrip(",") for line in match.group(1).splitlines()]
        inline = "= [" + ", ".join(items) + "]"
        return inline if len(inline) <= width and not any("[" in i or "{" in i for i in items) else match.group(0)

    return _MULTILINE_ARRAY.sub(join, text)


# ------------------------------------------------------------------ the TOML document, edited in place
# The form's edits go into a tomlkit document of the user's text, so that every comment, blank line,
# key order and spelling of the keys it does not touch survive. tomllib stays the parser of record
# (its messages, its plain values); tomlkit only carries the layout.


def _parse_layout(text: str) -> TOMLDocument | None:
    """The tomlkit document of `text`, comments above a header owned by that header; None if tomlkit fails."""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError:
        return None  # tomllib accepted it: the form's edits regenerate the text, as before tomlkit
    _attach_comments(doc)
    if doc.as_string() != text:  # moving the comments must not change a byte; were it to, they stay put
        doc = tomlkit.parse(text)
    return doc


def _emits_header(table: Any) -> bool:
    return isinstance(table, Table) and (table.is_aot_element() or not table.is_super_table())


def _attach_comments(doc: TOMLDocument) -> None:
    # tomlkit files the comment lines above `[model]` under the table before it, so a key appended to
    # that table would land between the comment and the header it describes. Move them into the
    # header's own indent (rendered just before it, byte for byte the same text).
    pending: list[tuple[Container, int]] = []

    def claim(table: Table) -> None:
        if any(isinstance(c.body[i][1], Comment) for c, i in pending):
            table.trivia.indent = "".join(c.body[i][1].as_string() for c, i in pending) + table.trivia.indent
            for container, index in pending:
                container.body[index] = (None, Null())
        pending.clear()

    def walk(container: Container) -> None:
        for index, (key, item) in enumerate(container.body):
            if key is None:
                if isinstance(item, (Comment, Whitespace)):
                    pending.append((container, index))
            elif isinstance(item, AoT):
                for table in item.body:
                    claim(table)
                    walk(table.value)
            elif isinstance(item, Table) and not (key.is_dotted() and item.is_super_table()):
                if _emits_header(item):
                    claim(item)
                walk(item.value)
            else:
                pending.clear()  # a key between: the comments are that table's own

    walk(doc)


def _headers(doc: TOMLDocument) -> list[Table]:
    """Every table that writes a header line, in the order of the text."""
    found: list[Table] = []

    def walk(container: Container) -> None:
        for key, item in container.body:
            if isinstance(item, AoT):
                for table in item.body:
                    found.append(table)
                    walk(table.value)
            elif key is not None and isinstance(item, Table):
                if _emits_header(item):
                    found.append(item)
                walk(item.value)

    walk(doc)
    return found


def _same(a: Any, b: Any) -> bool:
    # Strict: `1 == True == 1.0` in Python, but not in a config file.
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _is_table(item: Any) -> bool:
    return isinstance(item, (Table, InlineTable, OutOfOrderTableProxy))


def _tidy(key: str, value: Any, inline: bool = False) -> Item:
    """A value the form sets, written as a new file would be: short arrays inline, long ones one item a line."""
    if inline and isinstance(value, dict):
        item: Item = tomlkit.inline_table()
        for k, v in value.items():
            item[k] = _tidy(k, v, inline=True)
        return item
    if inline and isinstance(value, list):
        item = tomlkit.array()
        item.extend(_tidy("", v, inline=True) for v in value)
        return item
    item = tomlkit.item(value)
    if isinstance(item, Table):
        for k in list(item):
            item[k] = _tidy(k, value[k])
    elif isinstance(item, AoT):
        for table, element in zip(item.body, value, strict=True):
            for k in list(table):
                table[k] = _tidy(k, element[k])
    elif isinstance(item, Array):
        nested = any(isinstance(v, (list, dict)) for v in value)
        item.multiline(nested or len(f"{key} = {item.as_string()}") > _WIDTH)
    return item


def _set(node: Any, key: str, value: Any, doc: TOMLDocument) -> None:
    """`node[key] = value`, touching no more of the text than the change needs."""
    inline = isinstance(node, InlineTable)
    if key not in node:
        _add(node, key, _tidy(key, value, inline), doc)
        return
    current = _item_of(node, key)
    if isinstance(value, dict) and _is_table(current):
        for old in [k for k in current if k not in value]:
            _remove(current, old, doc)
        for k, v in value.items():
            _set(current, k, v, doc)
        return
    if isinstance(current, AoT) and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        if len(current) > len(value):  # stages dropped from the end; the others keep their comments
            while len(current) > len(value):
                del current[len(current) - 1]
            if current.body[-1] is _headers(doc)[-1]:
                _strip_trailing_blank(current.body[-1])
        for table, element in zip(list(current), value, strict=False):
            _set_table(table, element, doc)
        for element in value[len(current):]:
            table = _tidy(key, [element])[0]
            if current.body and not _ends_blank(current.body[-1]):
                table.trivia.indent = "\n"  # a blank line between stages, as between the others
            current.append(table)
        return
    if _same(current.unwrap(), value):
        return  # the same value: keep the user's spelling of it (1e-3, 'single quotes', its alignment)
    # An array of tables the user wrote inline (`stages = [{...}]`) stays an inline array.
    nested_inline = isinstance(current, Array) and any(isinstance(v, dict) for v in value)
    tidy = _tidy(key, value, inline or nested_inline)
    if isinstance(tidy, (Table, AoT)) != isinstance(current, (Table, AoT)) and not inline:
        # A key becoming a table (`checks = false` -> `[checks]`) or back moves: in place it would
        # take the keys after it into the table.
        _remove(node, key, doc)
        _add(node, key, tidy, doc)
        return
    width, comment_ws = len(current.as_string()), current.trivia.comment_ws
    node[key] = tidy
    if current.trivia.comment and "\n" not in tidy.as_string():
        # The comment stays in its column where it can (comments aligned down a table stay aligned).
        tidy.trivia.comment_ws = " " * max(len(comment_ws) - (len(tidy.as_string()) - width), 1)


def _add(node: Any, key: str, item: Item, doc: TOMLDocument) -> None:
    """A new key: a value after the table's last value, indented as its neighbours; a table after the last one."""
    if not isinstance(node, Table) or node.is_super_table():
        node[key] = item
    else:
        # raw_append: tomlkit's append would take the indent from the header's, comments above it included.
        neighbours = [v for k, v in node.value.body if k is not None and not isinstance(v, (Table, AoT))]
        node.raw_append(key, item)
        if neighbours and not isinstance(item, (Table, AoT)):
            item.trivia.indent = neighbours[-1].trivia.indent
    if isinstance(item, (Table, AoT)) and node is not doc:
        # A table put inside another one ([data.augment] into [data]) may have a header right after it.
        order = _headers(doc)
        own = [t for t in order if _contains(item, t) or t is item]
        following = order[order.index(own[-1]) + 1:] if own else []
        if following and not following[0].trivia.indent.startswith("\n"):
            own[-1].add(tomlkit.nl())


def _strip_trailing_blank(table: Table) -> None:
    # The blank line that stood before a deleted last table would end the file.
    body = table.value.body
    for index in range(len(body) - 1, -1, -1):
        key, item = body[index]
        if key is not None or not isinstance(item, (Whitespace, Null)):
            break
        body[index] = (None, Null())


def _ends_blank(table: Table) -> bool:
    items = [v for _, v in table.value.body if not isinstance(v, Null)]
    return bool(items) and isinstance(items[-1], Whitespace)


def _item_of(node: Any, key: str) -> Any:
    # `node[key]` gives plain bools and ints; the item carries the spelling and the comment.
    if isinstance(node, OutOfOrderTableProxy):  # a table split in two in the file: no items to read
        value = node[key]
        return value if _is_table(value) else tomlkit.item(value)
    return node.item(key)


def _set_table(table: Table, data: dict[str, Any], doc: TOMLDocument) -> None:
    for old in [k for k in table if k not in data]:
        _remove(table, old, doc)
    for k, v in data.items():
        _set(table, k, v, doc)


def _remove(node: Any, key: str, doc: TOMLDocument) -> None:
    """Delete `key` and its line (its own trailing comment goes with it; the lines around it stay)."""
    item = node[key]
    tables = [t for t in _headers(doc) if t is item or _contains(item, t)]
    if tables:  # a table going: the comments above its header move on to the next header
        order = _headers(doc)
        comments = "".join(t.trivia.indent for t in tables if "#" in t.trivia.indent)
        following = [t for t in order[order.index(tables[-1]) + 1:] if t not in tables]
        if comments and following:
            following[0].trivia.indent = comments + following[0].trivia.indent
    del node[key]


def _contains(item: Any, table: Table) -> bool:
    if isinstance(item, AoT):
        return any(t is table or _contains(t, table) for t in item.body)
    if isinstance(item, Table):
        return any(v is table or _contains(v, table) for _, v in item.value.body)
    return False


def _edit(doc: TOMLDocument, path: tuple[str, ...], value: Any, data: dict[str, Any]) -> None:
    """One form edit (`value` UNSET or None removes the key) applied to `doc`; `data` is the config after it."""
    node: Any = doc
    for depth, part in enumerate(path[:-1]):
        child = node[part] if part in node else None
        if not _is_table(child):
            # Missing, or a shorthand (`checks = false`): write the section as the config holds it now.
            section: Any = data
            for name in path[: depth + 1]:
                section = section.get(name, {}) if isinstance(section, dict) else {}
            section = _drop_none(section)
            if section or child is not None:
                _set(node, part, section, doc)
            return
        node = child
    if value is UNSET or value is None:
        if path[-1] in node:
            _remove(node, path[-1], doc)
    else:
        _set(node, path[-1], _drop_none(value), doc)


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
        self._layout: TOMLDocument | None = None  # the text as tomlkit parsed it; the form edits it
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
        self._set_data(data, origin, edit=(path, value))
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
            self._layout = _parse_layout(text)
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
            self._layout = None
            self._validate()
            self._emit(LOAD)
            return
        self.toml_error = None
        self._layout = _parse_layout(text)
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

    def _set_data(self, data: dict[str, Any], origin: str, keep_text: bool = False,
                  edit: tuple[tuple[str, ...], Any] | None = None) -> None:
        self.data = self._normalize(data)
        if edit is not None and self._layout is not None:
            _edit(self._layout, *edit, self.data)
            text = self._layout.as_string()
            # tomlkit's work checked: were a key ever misplaced, the text is regenerated (values kept, comments not).
            keep_text = self._says_data(text)
            if keep_text:
                self.text = text
        if not keep_text:
            self.text = _inline_arrays(tomli_w.dumps(_drop_none(self.data)))
            self._layout = _parse_layout(self.text)
        self._validate()
        self._emit(origin)

    def _says_data(self, text: str) -> bool:
        """Whether `text` holds the config `self.data` holds (shorthands and None aside)."""
        try:
            parsed = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return False
        return _same(_drop_none(self._normalize(parsed)), _drop_none(self.data))

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
