"""The form's blueprint and the progress protocol: pure functions, no window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kerasguide_gui.jobs import Progress, describe_exit, format_eta, parse_event
from kerasguide_gui.schema import (
    UNSET,
    config_diff,
    flatten,
    form_sections,
    format_field,
    humanize,
    parse_text,
    validate,
)
from pydantic import BaseModel

from kerasguide.config import RunConfig

DATA = Path(__file__).resolve().parent / "data"


def _schema_leaves(model: type[BaseModel], prefix=()) -> set[tuple[str, ...]]:
    leaves = set()
    for name, info in model.model_fields.items():
        tp = info.annotation
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            leaves |= _schema_leaves(tp, prefix + (name,))
        else:
            leaves.add(prefix + (name,))
    return leaves


def test_form_has_a_field_for_every_schema_field():
    # Generated, not hand-written: whatever the schema holds today is in the form.
    sections = form_sections(RunConfig)
    fields = {f.path for s in sections for f in s.fields}
    assert fields == _schema_leaves(RunConfig)
    assert [s.key for s in sections][:4] == ["", "data", "data.augment", "model"]  # a subsection follows its section


def test_a_section_added_to_the_schema_appears_in_the_form():
    from typing import Literal

    class Extra(BaseModel):
        mode: Literal["a", "b"] = "a"
        size: int = 3

    class Bigger(BaseModel):
        name: str = "x"
        extra: Extra = Extra()

    sections = form_sections(Bigger)
    assert [s.title for s in sections] == ["General", "Extra"]
    mode = sections[1].fields[0]
    assert mode.kind == "choice" and mode.choices == ("a", "b") and mode.path == ("extra", "mode")


def test_editor_kinds_follow_the_types():
    specs = {f.key: f for s in form_sections(RunConfig) for f in s.fields}
    assert specs["model.batch_norm"].kind == "bool"
    assert specs["optimizer.name"].kind == "choice" and "adam" in specs["optimizer.name"].choices
    assert specs["train.epochs"].kind == "number" and specs["train.epochs"].integer
    assert specs["optimizer.learning_rate"].kind == "number_or_choice"
    assert specs["optimizer.learning_rate"].choices == ("auto",)
    assert specs["model.hidden"].kind == "list" and specs["model.hidden"].item_kind == "number"
    assert specs["data.subset"].optional and specs["data.subset"].default is None
    assert specs["train.metrics"].kind == "list" and specs["train.metrics"].item_kind == "choice"


def test_every_default_survives_format_then_parse():
    for section in form_sections(RunConfig):
        for spec in section.fields:
            if spec.kind == "bool":
                continue
            value = parse_text(spec, format_field(spec, spec.default))
            expected = UNSET if spec.default is None else spec.default
            if spec.kind == "json":
                expected = json.loads(json.dumps(expected, default=str))
            if isinstance(expected, tuple):
                expected = list(expected)
            assert value == expected, spec.key


def test_parse_text_is_loose_and_lets_the_schema_judge():
    specs = {f.key: f for s in form_sections(RunConfig) for f in s.fields}
    assert parse_text(specs["train.epochs"], " 12 ") == 12
    assert parse_text(specs["optimizer.learning_rate"], "3e-4") == pytest.approx(3e-4)
    assert parse_text(specs["optimizer.learning_rate"], "auto") == "auto"
    assert parse_text(specs["model.hidden"], "[64, 32]") == [64, 32]
    assert parse_text(specs["model.hidden"], "") == []
    assert parse_text(specs["data.subset"], "") is UNSET
    assert parse_text(specs["train.epochs"], "ten") == "ten"  # kept for the schema's message


def test_validate_maps_messages_to_fields_and_sections():
    known = {f.path for s in form_sections(RunConfig) for f in s.fields} | {
        s.path for s in form_sections(RunConfig)}
    config, errors = validate(RunConfig, {"train": {"epochs": -1}, "model": {"hidden": [8, "x"]}}, known)
    assert config is None
    assert "greater than 0" in errors[("train", "epochs")]
    assert ("model", "hidden") in errors  # a list item's error lands on the list's field
    _, errors = validate(RunConfig, {"optimizer": {"learning_rate": "fast"}}, known)
    assert ("optimizer", "learning_rate") in errors  # both union branches fold into one field
    _, errors = validate(RunConfig, {"lr_find": {"start_lr": 1.0, "end_lr": 0.1}}, known)
    assert "end_lr" in errors[("lr_find",)]  # a section's own rule lands on the section
    _, errors = validate(RunConfig, {"train": {"epoch": 3}}, known)
    assert errors[("train",)] == "unknown key `train.epoch`"
    config, errors = validate(RunConfig, {}, known)
    assert errors == {} and isinstance(config, RunConfig)


def test_humanize_and_diff():
    assert humanize("learning_rate") == "Learning rate"
    assert humanize("lr_find") == "LR find"
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": 2}) == {"a.b": 1, "a.c": [1, 2], "d": 2}
    diff = config_diff({"a": {"b": 1}, "n": "x"}, {"a": {"b": 2}, "n": "x", "m": 3})
    assert diff == [("a.b", 1, 2), ("m", None, 3)]


def _replay() -> list[dict]:
    lines = (DATA / "run_progress.jsonl").read_text().splitlines()
    return [parse_event(line) for line in lines]


def test_progress_over_a_recorded_run():
    progress = Progress()
    fractions = []
    for event in _replay():
        assert event is not None
        progress.apply(event)
        fractions.append(progress.fraction)
    steps = [f for f in fractions if f is not None]
    assert steps == sorted(steps), "progress never goes backwards"
    assert progress.status == "completed" and progress.fraction == 1.0
    assert progress.total == 4 and progress.epoch == 4
    assert progress.run_dir == "{run_dir}"
    assert set(progress.metrics) >= {"loss", "val_loss", "accuracy", "val_accuracy"}


def test_progress_mid_epoch_and_eta():
    progress = Progress()
    progress.apply({"event": "start", "epochs": 10, "run_dir": "r"})
    progress.apply({"event": "epoch", "epoch": 2, "total": 10, "metrics": {"loss": 1.0}, "eta": 80.0})
    assert progress.fraction == pytest.approx(0.2)
    progress.apply({"event": "step", "epoch": 3, "step": 5, "steps": 10})
    assert progress.fraction == pytest.approx(0.25)
    assert "epoch 3/10" in progress.describe() and "ETA 1:20" in progress.describe()
    progress.apply({"event": "bogus"})  # unknown events are ignored
    progress.apply({"event": "epoch"})  # so are missing keys
    assert progress.total == 10


def test_parse_event_ignores_other_lines():
    assert parse_event("run completed: val_accuracy 0.9") is None
    assert parse_event("{not json") is None
    assert parse_event(json.dumps([1, 2])) is None
    assert parse_event(json.dumps({"x": 1})) is None
    assert parse_event('{"event": "stage", "stage": "fit"}\n') == {"event": "stage", "stage": "fit"}


def test_format_eta_and_exit_codes():
    assert format_eta(83.2) == "1:23"
    assert format_eta(4000) == "1:06:40"
    assert format_eta(None) == "" and format_eta(float("nan")) == ""
    assert "bad input" in describe_exit(2)
    assert "check" in describe_exit(3)
    assert describe_exit(None).startswith("the process")
