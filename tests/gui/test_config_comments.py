"""Form edits keep the user's comments and layout (issue 16, "Comments lost").

The form changes the config's TOML in place (a tomlkit document of the text): the key it sets is
rewritten, added or removed, every other line stays byte for byte, and the text still loads as the
config a plain dict edit gives. Saving keeps the file's mode.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import stat
import tomllib

import pytest
import tomli_w
from kerasguide_gui.config_doc import ConfigDocument
from kerasguide_gui.schema import UNSET

from kerasguide.config import config_from_dict
from kerasguide.presets import preset_names, preset_path

# A few edits as the form makes them: a number changed, a key removed, a key of a section the file
# lacks (a new table), a key of a nested section (a new sub-table), a float.
EDITS = [
    (("train", "epochs"), 3),
    (("model", "kernel_initializer"), UNSET),
    (("monitor", "images_every_epochs"), 2),
    (("data", "augment", "noise"), 0.05),
    (("optimizer", "learning_rate"), 0.003),
]


def _apply(data: dict, edits) -> dict:
    """The edits on a plain dict: what the text must load as."""
    data = copy.deepcopy(data)
    for path, value in edits:
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if value is UNSET:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return data


def _changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def _comments(text: str) -> list[str]:
    """Every comment of a TOML text, whole lines and those after a value (no preset puts `#` in a string)."""
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def _doc(text: str) -> ConfigDocument:
    doc = ConfigDocument()
    doc._load_text(text)
    assert doc.text == text and doc.toml_error is None
    return doc


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_keeps_its_comments_through_form_edits(preset):
    original = preset_path(preset).read_text(encoding="utf-8")
    assert _comments(original), "every preset has comments; this test needs them"
    doc = ConfigDocument()
    doc.load_preset(preset)
    for path, value in EDITS:
        doc.set_value(path, value)
    assert doc.valid, doc.error_messages()

    # Every comment is still there, in the same order ...
    assert _comments(doc.text) == _comments(original)
    # ... and the only lines gone are those of the keys set or removed; every other line is byte-identical.
    removed, added = _changed_lines(original, doc.text)
    touched = {path[-1] for path, _ in EDITS}
    assert all(line.split("=")[0].strip() in touched for line in removed), removed
    assert not any(line.strip().startswith("kernel_initializer") for line in doc.text.splitlines())
    assert "[monitor]" in added and "[data.augment]" in added
    assert "images_every_epochs = 2" in added and "noise = 0.05" in added
    # A changed value keeps the comment after it, in its column.
    for old in (line for line in removed if "#" in line):
        new = next(line for line in added if line.split("=")[0] == old.split("=")[0])
        assert new.index("#") == old.index("#") and new[new.index("#"):] == old[old.index("#"):]

    # The text loads as the dict edit does, and as the tomli_w text of that dict did before.
    expected = _apply(tomllib.loads(original), EDITS)
    assert tomllib.loads(doc.text) == expected
    assert tomllib.loads(tomli_w.dumps(expected)) == expected
    assert config_from_dict(tomllib.loads(doc.text)) == config_from_dict(expected) == doc.config

    # Setting a key back to the value the file holds leaves its line as written (`1e-3` is not rewritten `0.001`).
    doc.set_value(("data", "validation_fraction"), 0.2)
    assert "validation_fraction = 0.2" in doc.text.splitlines()


USER_FILE = """\
# my own config
#   (hand-written: odd spacing, single quotes, dotted keys, an inline table)
name='mine'        # the name of the runs
train.epochs   = 3 # dotted, as short as I like it
model = { kind = "mlp", hidden = [64,32] }   # inline table

[optimizer]
  name   =   'adam'          # indented, spaced
  learning_rate=1e-3         # aligned comments
  # EMA off: it cost accuracy at 3 epochs
  ema = false                # aligned comments


# two blank lines above, on purpose
[data]
source = "digits"   # the bundled data
"""


def test_a_user_file_keeps_its_inline_comments_and_odd_layout():
    doc = _doc(USER_FILE)
    doc.set_value(("optimizer", "learning_rate"), 0.003)
    doc.set_value(("optimizer", "ema_momentum"), 0.99)
    doc.set_value(("train", "batch_size"), 16)
    doc.set_value(("model", "dropout"), 0.25)
    doc.set_value(("name",), UNSET)
    doc.set_value(("lr_find", "rule"), "valley")
    assert doc.text == """\
# my own config
#   (hand-written: odd spacing, single quotes, dotted keys, an inline table)
train.epochs   = 3 # dotted, as short as I like it
train.batch_size = 16
model = { kind = "mlp", hidden = [64,32], dropout = 0.25}   # inline table

[optimizer]
  name   =   'adam'          # indented, spaced
  learning_rate=0.003        # aligned comments
  # EMA off: it cost accuracy at 3 epochs
  ema = false                # aligned comments
  ema_momentum = 0.99


# two blank lines above, on purpose
[data]
source = "digits"   # the bundled data

[lr_find]
rule = "valley"
"""
    assert doc.valid, doc.error_messages()
    assert tomllib.loads(doc.text) == _apply(tomllib.loads(USER_FILE), [
        (("optimizer", "learning_rate"), 0.003), (("optimizer", "ema_momentum"), 0.99),
        (("train", "batch_size"), 16), (("model", "dropout"), 0.25), (("name",), UNSET),
        (("lr_find", "rule"), "valley")])


def test_removing_a_key_removes_its_line_and_keeps_the_comments_around_it():
    text = "[train]\n# how long\nepochs = 3  # short\n# how big\nbatch_size = 8\n\n# the end\n[data]\nsource = 'digits'\n"
    doc = _doc(text)
    doc.set_value(("train", "epochs"), UNSET)
    assert doc.text == "[train]\n# how long\n# how big\nbatch_size = 8\n\n# the end\n[data]\nsource = 'digits'\n"
    doc.set_value(("train", "batch_size"), None)  # None, as UNSET: the key goes
    assert doc.text == "[train]\n# how long\n# how big\n\n# the end\n[data]\nsource = 'digits'\n"
    # A key added to a table goes after its last value, not under the comment that belongs to the next header.
    doc.set_value(("train", "seed"), 1)
    assert doc.text == "[train]\n# how long\n# how big\nseed = 1\n\n# the end\n[data]\nsource = 'digits'\n"


def test_search_space_and_stages_edits_keep_the_comments():
    """The JSON fields (search.space, search.stages) are diffed into their tables: one bound changes one line."""
    original = preset_path("digits_search").read_text(encoding="utf-8")
    doc = _doc(original)
    space = copy.deepcopy(doc.data["search"]["space"])
    space["model.dropout"]["high"] = 0.5
    del space["optimizer.learning_rate"]
    doc.set_value(("search", "space"), space)
    stages = copy.deepcopy(doc.data["search"]["stages"])
    stages[1]["trials"] = 8
    doc.set_value(("search", "stages"), stages[:2])
    assert doc.valid, doc.error_messages()
    assert _comments(doc.text) == _comments(original)  # the first space table's comment moved on to the next one
    assert doc.text == (original.replace('[search.space."optimizer.learning_rate"]\nlow = 1e-5\nhigh = 1e-1\nlog = true\n\n', "")
                        .replace("high = 0.6", "high = 0.5")
                        .replace("trials = 6\n\n[[search.stages]]\nepochs = 20\ntrials = 3\n", "trials = 8\n"))
    assert tomllib.loads(doc.text)["search"] == {**doc.data["search"], "space": space, "stages": stages[:2]}
    # a stage added goes after the others, as its own [[search.stages]]
    doc.set_value(("search", "stages"), [*stages[:2], {"epochs": 40, "trials": 1}])
    assert doc.text.endswith("trials = 8\n\n[[search.stages]]\nepochs = 40\ntrials = 1\n")


def test_a_shorthand_becomes_its_table_and_the_rest_stays():
    text = "# mine\nname = 'x'\nchecks = false   # not today\n\n[train]\nepochs = 2  # quick\n"
    doc = _doc(text)
    doc.set_value(("checks", "skip"), ["overfit"])
    assert doc.text == "# mine\nname = 'x'\n\n[train]\nepochs = 2  # quick\n\n[checks]\nenabled = false\nskip = [\"overfit\"]\n"
    assert doc.config.checks.enabled is False and doc.config.checks.skip == ["overfit"]


def test_long_arrays_set_by_the_form_are_one_item_a_line_short_ones_inline():
    doc = _doc("[model]\nkind = 'mlp'\n")
    doc.set_value(("model", "hidden"), [64, 32])
    assert "hidden = [64, 32]\n" in doc.text
    doc.set_value(("model", "hidden"), [1024] * 20)
    assert re.search(r"hidden = \[\n(    1024,\n){20}\]\n", doc.text), doc.text
    assert doc.config.model.hidden == [1024] * 20


def test_raw_text_edits_reparse_and_bad_text_is_reported_as_before():
    doc = _doc("[train]\nepochs = 3\n")
    typed = "[train]\nepochs = 4   # typed in the raw view\n"
    doc.set_text(typed)
    assert doc.text == typed and doc.config.train.epochs == 4
    doc.set_value(("train", "batch_size"), 32)  # the typed comment survives a form edit after it
    assert doc.text == typed + "batch_size = 32\n"
    doc.set_text("[train\nepochs = 4\n")
    assert doc.toml_error and not doc.valid and doc.text == "[train\nepochs = 4\n"
    assert doc.error_messages()[0].startswith("TOML: ")
    doc.set_text(typed)
    assert doc.toml_error is None and doc.valid


def test_a_document_started_from_a_dict_is_written_tidy():
    """A new config (no user text yet) is written as before: tomli_w's layout, short arrays inline."""
    doc = ConfigDocument()
    doc.load_dict({"name": "n", "model": {"hidden": [8, 4]}, "train": {"epochs": 2}})
    assert doc.text == 'name = "n"\n\n[model]\nhidden = [8, 4]\n\n[train]\nepochs = 2\n'
    doc.set_value(("train", "epochs"), 5)
    assert doc.text == 'name = "n"\n\n[model]\nhidden = [8, 4]\n\n[train]\nepochs = 5\n'


@pytest.fixture
def private_umask():
    old = os.umask(0o077)  # the umask that turned shared configs into 0600
    yield
    os.umask(old)


def test_saving_keeps_the_file_mode_and_the_comments(tmp_path, private_umask):
    path = tmp_path / "mine.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    path.chmod(0o644)
    doc = ConfigDocument()
    doc.load_file(path)
    doc.set_value(("train", "epochs"), 9)
    doc.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    saved = path.read_text(encoding="utf-8")
    assert saved == doc.text and _comments(saved) == _comments(USER_FILE)
    assert "train.epochs   = 9 # dotted, as short as I like it" in saved
    # "Save as" a new file: the umask's mode, as any new file
    other = doc.save(tmp_path / "copy.toml")
    assert stat.S_IMODE(other.stat().st_mode) == 0o600 and other.read_text(encoding="utf-8") == saved


def test_the_app_saves_a_form_edit_with_the_comments_and_the_mode(make_window, qtbot, tmp_path, private_umask):
    from test_gui_config_editor import _type

    path = tmp_path / "digits.toml"
    original = preset_path("digits").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    path.chmod(0o644)
    window = make_window()
    assert window.open_config(path)
    _type(qtbot, window.editor.form.row("train.epochs"), "7")
    assert window.document.config.train.epochs == 7
    assert window.editor.toml.editor.toPlainText() == window.document.text
    assert window.save()
    saved = path.read_text(encoding="utf-8")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert saved == original.replace("epochs = 20                 #", "epochs = 7                  #")


def test_a_section_added_inside_a_commented_table_goes_after_its_keys():
    text = "name = 'x'\n\n# my data, with spaces\n[data]\nsource = 'digits'\n\n# the model\n[model]\nkind = 'mlp'\n"
    doc = _doc(text)
    doc.set_value(("data", "augment", "flip"), "horizontal")
    doc.set_value(("model", "dropout"), 0.1)
    assert doc.text == ("name = 'x'\n\n# my data, with spaces\n[data]\nsource = 'digits'\n\n"
                        '[data.augment]\nflip = "horizontal"\n\n# the model\n[model]\nkind = \'mlp\'\ndropout = 0.1\n')


def test_an_inline_array_of_tables_stays_inline():
    text = "[search]\nstages = [{epochs = 1, trials = 4}, {epochs = 3, trials = 2}]  # two stages\n"
    doc = _doc(text)
    doc.set_value(("search", "stages"), [{"epochs": 1, "trials": 4}, {"epochs": 5, "trials": 1}])
    assert doc.text == ("[search]\nstages = [{epochs = 1, trials = 4}, {epochs = 5, trials = 1}]  # two stages\n")


def test_a_misplaced_edit_falls_back_to_a_regenerated_text(monkeypatch):
    """The text is checked against the config after every form edit: a wrong one is never shown or saved."""
    import kerasguide_gui.config_doc as config_doc

    monkeypatch.setattr(config_doc, "_edit", lambda doc, path, value, data: None)  # an edit that goes nowhere
    doc = _doc("# mine\n[train]\nepochs = 3\n")
    doc.set_value(("train", "epochs"), 4)
    assert doc.text == "[train]\nepochs = 4\n" and doc.config.train.epochs == 4
