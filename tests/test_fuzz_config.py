"""Fuzzing the config reader (issue 15's quality bar): whatever a config file holds, `kerasguide config` answers
with exit 0 (and TOML that reads back the same) or exit 2 and one line of at most 300 characters; never a
traceback, never another exit code.

Two sources of inputs: dicts over the whole schema (the real sections and keys, some misspelt, with values of
every type: wrong types, nan and inf, huge numbers, long strings, deep nesting), and byte mutations of the
bundled presets. `benchmarks/fuzz_config.py` runs the same for longer and prints a table.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import tempfile
import traceback
import typing
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from kerasguide.cli import main
from kerasguide.config import RunConfig, loads_config
from kerasguide.errors import MAX_MESSAGE
from kerasguide.presets import preset_names, preset_path

PRESETS = [preset_path(name).read_bytes() for name in preset_names()]


# ------------------------------------------------------------------ the schema, read from RunConfig itself
def _sections() -> dict[str, dict[str, typing.Any]]:
    """section -> {key: annotation}, nested sections (data.augment) flattened under their own name."""
    found: dict[str, dict[str, typing.Any]] = {"": {}}

    def walk(prefix: str, model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found[f"{prefix}{name}"] = {}
                walk(f"{prefix}{name}.", annotation)
            else:
                found.setdefault(prefix.rstrip("."), {})[name] = annotation

    walk("", RunConfig)
    return found


SECTIONS = _sections()


def _defaults() -> dict[str, typing.Any]:
    """`section.key` -> its default, as TOML holds it (a plausible value for a key)."""
    found: dict[str, typing.Any] = {}

    def walk(prefix: str, value: typing.Any) -> None:
        for name, item in value.items():
            if isinstance(item, dict) and f"{prefix}{name}" in SECTIONS:
                walk(f"{prefix}{name}.", item)
            else:
                found[f"{prefix}{name}"] = item

    walk("", RunConfig().to_dict())
    return found


DEFAULTS = _defaults()


def _choices(annotation: typing.Any) -> list[typing.Any]:
    """The Literal values inside an annotation (`Literal["a", "b"] | None` -> ["a", "b"])."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [v for arg in typing.get_args(annotation) for v in _choices(arg)]


_NUMBERS = st.one_of(
    st.integers(-3, 300),
    st.integers(),  # huge too
    st.sampled_from([0, -1, 2**31, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-7, 0.5, 1.0, 1e308, -1e308, math.inf, -math.inf, math.nan]),
)
_SCALARS = st.one_of(
    _NUMBERS,
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(["", "3", "yes", "true", "nan", "auto", "val_loss", "val_acc", "x" * 5000, "a\nb", "python:x.py:f"]),
)
# Any TOML value: scalars, lists and tables, a few levels deep (deeper ones come from `deep_text`).
ANY_VALUE = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


@st.composite
def schema_values(draw, annotation: typing.Any, key: str = "") -> typing.Any:
    """Mostly plausible values for `annotation` (so the deeper rules run), sometimes anything at all."""
    if key in DEFAULTS and draw(st.integers(0, 2)) == 0:
        return DEFAULTS[key]  # a valid value, so that the other keys' rules are what decides
    choices = _choices(annotation)
    plausible = [st.sampled_from(choices)] if choices else []
    text = str(annotation)
    if "float" in text or "int" in text:
        plausible.append(_NUMBERS)
    if "bool" in text:
        plausible.append(st.booleans())
    if "list" in text:
        plausible.append(st.lists(st.one_of(_NUMBERS, *(st.sampled_from(choices),) if choices else ()), max_size=4))
    if "str" in text and not choices:
        plausible.append(st.text(max_size=30))
    return draw(st.one_of(*plausible, ANY_VALUE) if plausible else ANY_VALUE)


@st.composite
def schema_dicts(draw) -> dict[str, typing.Any]:
    """A config as a dict: real sections and keys (and a misspelt or unknown one now and then)."""
    config: dict[str, typing.Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=5, unique=True)):
        fields = SECTIONS[section]
        names = draw(st.lists(st.sampled_from(sorted(fields)), max_size=4, unique=True)) if fields else []
        table = {name: draw(schema_values(fields[name], f"{section}.{name}".lstrip("."))) for name in names}
        if draw(st.integers(0, 9)) == 0:
            table[draw(st.text(min_size=1, max_size=12))] = draw(ANY_VALUE)
        target = config
        for part in [p for p in section.split(".") if p]:
            existing = target.get(part)
            target = target.setdefault(part, {}) if existing is None or isinstance(existing, dict) else {}
        target.update(table)
    return config


def schema_texts() -> st.SearchStrategy[bytes]:
    def dump(config: dict) -> bytes:
        try:
            return tomli_w.dumps(config).encode("utf-8")
        except (TypeError, ValueError):  # a key or value TOML cannot hold: write what tomli_w can
            return repr(config).encode("utf-8", "surrogatepass")
    return schema_dicts().map(dump)


def _annotation(key: str) -> typing.Any:
    section, _, name = key.rpartition(".")
    return SECTIONS[section][name]


@st.composite
def one_key_texts(draw) -> bytes:
    """The default config with one key set to any value: each key's own rules, one at a time."""
    key = draw(st.sampled_from(sorted(DEFAULTS)))
    config = RunConfig().to_dict()
    target = config
    *sections, name = key.split(".")
    for part in sections:
        target = target[part]
    target[name] = draw(st.one_of(schema_values(_annotation(key)), ANY_VALUE))
    try:
        return tomli_w.dumps(config).encode("utf-8")
    except (TypeError, ValueError):
        return repr(config).encode("utf-8", "surrogatepass")


@st.composite
def deep_texts(draw) -> bytes:
    """Arrays and inline tables nested up to 3000 deep, closed or not."""
    depth = draw(st.integers(1, 3000))
    opening = draw(st.sampled_from(["[", "{a=", "[{b=", "{c=["]))
    body = opening * (depth // len(opening) + 1)
    close = "".join({"[": "]", "{": "}"}[c] for c in reversed(body) if c in "[{")
    key = draw(st.sampled_from(["x", "name", "model.hidden", "[model]\nhidden"]))
    return f"{key} = {body}1{close if draw(st.booleans()) else ''}\n".encode()


@st.composite
def mutated_presets(draw) -> bytes:
    """A bundled preset with a few byte-level changes: flipped, dropped, inserted or repeated bytes."""
    data = bytearray(draw(st.sampled_from(PRESETS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.integers(0, 4))
        if kind == 0:
            data[at] = draw(st.integers(0, 255))
        elif kind == 1:
            del data[at: at + draw(st.integers(1, 40))]
        elif kind == 2:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == 3:
            data[at:at] = draw(st.sampled_from([b"nan", b"inf", b"1e308", b"-", b"9" * 30, b'"', b"[", b"{", b"\n",
                                                b"true", b'"3"', b"\n[x]\n", b"=", b"#"]))
        else:
            data[at:at] = data[at: at + draw(st.integers(1, 200))]
    return bytes(data)


# ------------------------------------------------------------------ one input, judged
@dataclass
class Outcome:
    code: int | None
    message: str
    traceback: str | None = None

    def problem(self) -> str | None:
        """What breaks the rule, or None."""
        if self.traceback:
            return f"traceback: {self.traceback.strip().splitlines()[-1]}"
        if self.code not in (0, 2):
            return f"exit code {self.code}"
        if self.code == 2:
            lines = self.message.strip().splitlines()
            if len(lines) != 1:
                return f"{len(lines)} lines"
            if len(lines[0]) > MAX_MESSAGE:
                return f"a line of {len(lines[0])} characters"
        return None


def try_config(data: bytes, folder: Path) -> Outcome:
    """`kerasguide config FILE` in this process on `data`; an accepted config must read back the same."""
    path = folder / "fuzz.toml"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["config", str(path)])
        if code == 0:  # what it printed is a config that reads back to the same
            again = loads_config(out.getvalue())
            if again != loads_config(data.decode("utf-8")):
                return Outcome(code, "", "read back differs")
    except SystemExit as exit_:  # argparse's own exits
        return Outcome(exit_.code if isinstance(exit_.code, int) else 1, err.getvalue())
    except BaseException:  # noqa: BLE001 - the thing counted
        return Outcome(None, err.getvalue(), traceback.format_exc())
    return Outcome(code, err.getvalue())


_FOLDER = Path(tempfile.mkdtemp(prefix="kerasguide-fuzz-"))
_FUZZ = settings(max_examples=int(os.environ.get("KERASGUIDE_FUZZ_EXAMPLES", "150")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _assert_ok(data: bytes) -> None:
    outcome = try_config(data, _FOLDER)
    assert outcome.problem() is None, (outcome.problem(), data[:300], outcome.traceback or outcome.message[:400])


@_FUZZ
@given(schema_texts())
def test_fuzz_schema(data):
    _assert_ok(data)


@_FUZZ
@given(one_key_texts())
def test_fuzz_one_key(data):
    _assert_ok(data)


@_FUZZ
@given(mutated_presets())
def test_fuzz_mutated_presets(data):
    _assert_ok(data)


@settings(_FUZZ, max_examples=30)
@given(deep_texts())
def test_fuzz_deep_nesting(data):
    _assert_ok(data)


def test_the_presets_themselves_pass():
    for data in PRESETS:
        outcome = try_config(data, _FOLDER)
        assert outcome.code == 0 and outcome.problem() is None, outcome


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run with pytest, or benchmarks/fuzz_config.py for a longer run")
