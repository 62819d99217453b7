"""The config form's blueprint, read from the pydantic schema (no Qt here).

The form is generated, never hand-written: `form_sections(RunConfig)` walks
`model_fields` and returns one `SectionSpec` per section (nested models
become their own sections), each with a `FieldSpec` per field saying which
editor fits it (checkbox, combo box, number, list, text). Fields that other
parts of kerasguide add to the schema appear in the form without any change
here.

Text typed into an editor is turned into a value by `parse_text` loosely
(numbers become numbers, lists are split on commas) and then judged by the
schema itself (`validate`), so the messages shown are pydantic's own.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from pydantic import BaseModel, ValidationError

__all__ = [
    "FieldSpec",
    "SectionSpec",
    "UNSET",
    "form_sections",
    "parse_text",
    "format_value",
    "format_field",
    "validate",
    "humanize",
    "flatten",
    "config_diff",
]


class _Unset:
    """The value of an optional field left empty: its key is removed from the config."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()

# Editor kinds.
BOOL, CHOICE, NUMBER, NUMBER_OR_CHOICE, TEXT, LIST, JSON = (
    "bool", "choice", "number", "number_or_choice", "text", "list", "json",
)


@dataclass(frozen=True)
class FieldSpec:
    """One field of the form: where it lives and which editor fits it."""

    path: tuple[str, ...]
    kind: str
    default: Any = None
    description: str = ""
    optional: bool = False
    choices: tuple[str, ...] = ()
    item_kind: str = TEXT  # lists: the kind of each item
    integer: bool = False  # numbers: an int field

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def label(self) -> str:
        return humanize(self.name)


@dataclass
class SectionSpec:
    """A page of the form: a pydantic sub-model (or the top-level scalars)."""

    path: tuple[str, ...]
    title: str
    description: str = ""
    fields: list[FieldSpec] = field(default_factory=list)

    @property
    def key(self) -> str:
        return ".".join(self.path)


_ACRONYMS = {"lr": "LR", "pca": "PCA", "ema": "EMA", "l1": "L1", "l2": "L2", "jit": "JIT", "k": "k"}


def humanize(name: str) -> str:
    """`"learning_rate"` -> `"Learning rate"`; `"lr_find"` -> `"LR find"`."""
    words = [_ACRONYMS.get(w, w) for w in name.split("_")]
    if words and words[0] == words[0].lower():
        words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def _classify(tp: Any) -> dict[str, Any]:
    """The editor kind (and its details) for one annotation."""
    tp = _strip_annotated(tp)
    optional = False
    args = _union_args(tp)
    if args is not None:
        rest = [_strip_annotated(a) for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) == 1:
            info = _classify(rest[0])
            info["optional"] = info.get("optional", False) or optional
            return info
        literals = [a for a in rest if typing.get_origin(a) is Literal]
        numbers = [a for a in rest if a in (int, float)]
        if numbers and literals and len(numbers) + len(literals) == len(rest):
            choices = tuple(str(v) for lit in literals for v in typing.get_args(lit))
            return {"kind": NUMBER_OR_CHOICE, "choices": choices, "optional": optional,
                    "integer": float not in numbers}
        return {"kind": JSON, "optional": optional}
    if tp is bool:
        return {"kind": BOOL}
    if typing.get_origin(tp) is Literal:
        return {"kind": CHOICE, "choices": tuple(str(v) for v in typing.get_args(tp))}
    if tp in (int, float):
        return {"kind": NUMBER, "integer": tp is int}
    if tp is str:
        return {"kind": TEXT}
    origin = typing.get_origin(tp)
    if origin in (list, tuple, set, frozenset):
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]
        item = _classify(items[0]) if items else {"kind": TEXT}
        if item["kind"] in (NUMBER, CHOICE, TEXT):
            return {"kind": LIST, "item_kind": item["kind"], "choices": item.get("choices", ())}
    return {"kind": JSON}


def _default(info: Any) -> Any:
    if info.default_factory is not None:
        return info.default_factory()
    return None if info.is_required() else info.default


def form_sections(model: type[BaseModel]) -> list[SectionSpec]:
    """One `SectionSpec` per page of the form, in schema order.

    The top-level scalar fields form the "General" page; every sub-model is
    a page of its own (nested sub-models follow their parent).

    Args:
        model: The pydantic model class, e.g. `RunConfig`.

    Example:

    ```python
    from kerasguide.config import RunConfig
    pages = form_sections(RunConfig)
    [p.key for p in pages][:3]        # ['', 'data', 'model']
    ```
    """
    sections: list[SectionSpec] = []

    def walk(cls: type[BaseModel], path: tuple[str, ...], title: str) -> None:
        doc = (cls.__doc__ or "").strip().splitlines()
        section = SectionSpec(path, title, doc[0] if doc and path else "")
        sections.append(section)
        children = []
        for name, info in cls.model_fields.items():
            tp = _strip_annotated(info.annotation)
            if _is_model(tp):
                children.append((name, tp))
                continue
            kind = _classify(info.annotation)
            section.fields.append(
                FieldSpec(
                    path=path + (name,),
                    kind=kind["kind"],
                    default=_default(info),
                    description=info.description or "",
                    optional=kind.get("optional", False),
                    choices=tuple(kind.get("choices", ())),
                    item_kind=kind.get("item_kind", TEXT),
                    integer=kind.get("integer", False),
                )
            )
        for name, sub in children:
            walk(sub, path + (name,), humanize(name))

    walk(model, (), "General")
    if not sections[0].fields:
        sections.pop(0)
    return sections


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # the schema will say what is wrong with it


def parse_text(spec: FieldSpec, text: str) -> Any:
    """The value typed into a text editor, loosely parsed; the schema judges it.

    Args:
        spec: The field.
        text: What the user typed.

    Returns:
        The value, or `UNSET` for an optional field left empty.
    """
    text = text.strip()
    if spec.kind == NUMBER:
        if not text:
            return UNSET if spec.optional else ""
        return _number(text)
    if spec.kind == NUMBER_OR_CHOICE:
        if not text:
            return UNSET if spec.optional else ""
        return text if text in spec.choices else _number(text)
    if spec.kind == LIST:
        if not text and spec.optional:
            return UNSET
        inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        items = [item.strip().strip("'\"") for item in inner.split(",")]
        items = [item for item in items if item]
        if spec.item_kind == NUMBER:
            return [_number(item) for item in items]
        return items
    if spec.kind == JSON:
        if not text:
            return UNSET  # back to the schema's default
        try:
            return json.loads(text)
        except ValueError:
            return text
    if spec.kind == TEXT and spec.optional and not text:
        return UNSET
    return text


def format_value(value: Any) -> str:
    """A value as the text its editor shows (the inverse of `parse_text`)."""
    if value is None or value is UNSET:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return f"{value:.1f}"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def format_field(spec: FieldSpec, value: Any) -> str:
    """The text a field's editor shows for `value` (JSON for structured fields)."""
    if spec.kind == JSON and value is not None and value is not UNSET:
        return json.dumps(value, default=str)
    return format_value(value)


def validate(model: type[BaseModel], data: dict[str, Any], known: set[tuple[str, ...]]) -> tuple[Any, dict]:
    """Validate `data`; returns `(model_instance_or_None, errors)`.

    `errors` maps a field path (or a section path, for a section's own rules
    and unknown keys) to its message. Union branches and list indices in
    pydantic's locations are folded into the field they belong to.

    Args:
        model: The pydantic model class.
        data: The config as a plain dict.
        known: The paths of every form field and section.
    """
    try:
        return model.model_validate(data), {}
    except ValidationError as error:
        errors: dict[tuple[str, ...], list[str]] = {}
        for item in error.errors():
            loc = tuple(str(p) for p in item["loc"] if not isinstance(p, int))
            if item["type"] == "extra_forbidden":
                target, msg = loc[:-1], f"unknown key `{'.'.join(loc)}`"
            else:
                target = loc
                while target and target not in known:
                    target = target[:-1]
                msg = item["msg"]
                if msg.startswith("Value error, "):
                    msg = msg[len("Value error, "):]
            bucket = errors.setdefault(target, [])
            if msg not in bucket:
                bucket.append(msg)
        return None, {k: "; ".join(v) for k, v in errors.items()}


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (lists stay values)."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The keys whose values differ between two configs: `[(key, a_value, b_value)]`.

    A key missing on one side is reported with `None` there.
    """
    fa, fb = flatten(a), flatten(b)
    keys = list(fa) + [k for k in fb if k not in fa]
    return [(k, fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)]
