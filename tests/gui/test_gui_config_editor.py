"""The config editor: the generated form round-trips configs, shows the schema's errors, blocks Run."""

from __future__ import annotations

import re
import tomllib

import pytest
from PySide6.QtCore import Qt

from kerasguide.config import RunConfig, config_from_dict, dump_config, load_config
from kerasguide.presets import preset_names, preset_path


def _type(qtbot, row, text: str) -> None:
    editor = row.editor.lineEdit() if hasattr(row.editor, "lineEdit") and row.editor.lineEdit() else row.editor
    editor.selectAll()
    qtbot.keyClick(editor, Qt.Key.Key_Backspace)
    qtbot.keyClicks(editor, text)


@pytest.mark.parametrize("preset", preset_names())
def test_form_round_trips_every_preset(make_window, preset):
    window = make_window()
    window.load_preset(preset)
    expected = load_config(preset_path(preset))
    # What the editors show, parsed back and validated, is the preset itself ...
    assert config_from_dict(window.editor.form.collect()) == expected
    # ... and so is what the TOML view holds.
    assert config_from_dict(tomllib.loads(window.editor.toml.editor.toPlainText())) == expected
    assert window.document.valid and window.job_actions["run"].isEnabled()


def test_form_round_trips_a_config_with_every_kind_of_field(make_window, tmp_path):
    cfg = RunConfig()
    cfg.name = "every-kind"
    cfg.data.subset = 500                       # optional int
    cfg.data.image_size = (28, 28)              # tuple
    cfg.model.hidden = [64, 32, 16]             # list of ints
    cfg.model.batch_norm = True                 # bool
    cfg.model.activation = "tanh"               # Literal
    cfg.model.max_norm = 3.0                    # optional float
    cfg.optimizer.learning_rate = "auto"        # float | Literal
    cfg.optimizer.name = "sgd"
    cfg.schedule.boundaries_epochs = [5.0, 10.0]  # list of floats
    cfg.schedule.values = [1e-2, 1e-3, 1e-4]
    cfg.schedule.kind = "piecewise"
    cfg.train.metrics = ["accuracy", "top3_accuracy"]  # list of Literals
    cfg.train.early_stopping_patience = 4
    path = tmp_path / "every.toml"
    path.write_text(dump_config(cfg))
    window = make_window()
    assert window.open_config(path)
    assert config_from_dict(window.editor.form.collect()) == cfg
    form = window.editor.form
    assert form.row("model.hidden").text() == "64, 32, 16"
    assert form.row("optimizer.learning_rate").text() == "auto"
    assert form.row("model.batch_norm").editor.isChecked()
    assert form.row("model.activation").text() == "tanh"
    # Saved as it was opened: the file round-trips exactly.
    window.save()
    assert load_config(path) == cfg


def test_editing_the_form_updates_the_config_and_the_toml(make_window, qtbot):
    window = make_window()
    form = window.editor.form
    _type(qtbot, form.row("train.epochs"), "7")
    form.row("optimizer.name").editor.textActivated.emit("sgd")
    form.row("model.batch_norm").editor.setChecked(True)
    _type(qtbot, form.row("model.hidden"), "32, 16")
    cfg = window.document.config
    assert (cfg.train.epochs, cfg.optimizer.name, cfg.model.batch_norm, cfg.model.hidden) == (7, "sgd", True, [32, 16])
    text = tomllib.loads(window.editor.toml.editor.toPlainText())
    assert text["train"]["epochs"] == 7 and text["model"]["hidden"] == [32, 16]
    assert window.document.dirty and window.windowTitle().startswith("untitled (digits)*")
    # an optional field emptied goes back to unset (its key disappears)
    _type(qtbot, form.row("data.subset"), "100")
    assert window.document.config.data.subset == 100
    _type(qtbot, form.row("data.subset"), "")
    assert window.document.config.data.subset is None
    assert "subset" not in window.document.data.get("data", {})


def test_invalid_input_is_shown_and_blocks_run(make_window, qtbot):
    window = make_window()
    form = window.editor.form
    row = form.row("train.epochs")
    run = window.job_actions["run"]
    assert run.isEnabled()
    _type(qtbot, row, "-3")
    assert not row.error.isHidden()
    assert "greater than 0" in row.error.text()
    assert row.editor.property("invalid") is True
    assert not run.isEnabled() and not window.job_actions["check"].isEnabled()
    assert "problem" in window.editor.verdict.text()
    # the section holding the problem is marked in the list
    index = [s.key for s in window.document.sections].index("train")
    assert form.sections.item(index).toolTip() == "this section has a problem"
    # Run refuses even when triggered directly (a shortcut, a menu)
    assert window.start_job("run") is None
    assert window.queue.jobs == []
    # a second, different problem: text in a number field, a learning rate of zero
    _type(qtbot, form.row("optimizer.learning_rate"), "0")
    assert "positive" in form.row("optimizer.learning_rate").error.text()
    _type(qtbot, row, "5")
    _type(qtbot, form.row("optimizer.learning_rate"), "0.01")
    assert row.error.isHidden() and row.editor.property("invalid") is False
    assert run.isEnabled()
    assert window.document.config.train.epochs == 5


def test_a_rule_across_fields_is_shown_on_its_section(make_window, qtbot):
    window = make_window()
    form = window.editor.form
    _type(qtbot, form.row("lr_find.end_lr"), "1e-9")
    page = form.page([s.key for s in window.document.sections].index("lr_find"))
    assert not page.error.isHidden() and "end_lr" in page.error.text()
    assert not window.job_actions["run"].isEnabled()


def test_reduce_on_plateau_with_a_schedule_is_shown_before_a_run(make_window, qtbot):
    """Keras' ReduceLROnPlateau cannot change a scheduled rate: the schema says so, the form shows it."""
    window = make_window()
    form = window.editor.form
    form.row("schedule.kind").editor.textActivated.emit("constant")
    form.row("schedule.reduce_on_plateau").editor.setChecked(True)
    assert window.job_actions["run"].isEnabled()  # on a constant rate it is fine
    form.row("schedule.kind").editor.textActivated.emit("cosine")
    page = form.page([s.key for s in window.document.sections].index("schedule"))
    assert not page.error.isHidden()
    assert "schedule.reduce_on_plateau" in page.error.text() and "schedule.kind" in page.error.text()
    assert not window.job_actions["run"].isEnabled() and window.start_job("run") is None
    form.row("schedule.kind").editor.textActivated.emit("constant")
    assert page.error.isHidden() and window.job_actions["run"].isEnabled()


def test_raw_toml_edits_reach_the_form_and_bad_toml_blocks_run(make_window, qtbot):
    window = make_window()
    toml = window.editor.toml
    text = re.sub(r"(?m)^epochs = .*$", "epochs = 12  # a comment kept", toml.editor.toPlainText())
    assert "epochs = 12" in text
    toml.editor.setPlainText(text)
    qtbot.waitUntil(lambda: window.document.config is not None and window.document.config.train.epochs == 12)
    assert window.editor.form.row("train.epochs").text() == "12"
    assert "# a comment kept" in window.document.text  # the typed text is kept as is
    toml.editor.setPlainText("[train\nepochs = 3")
    qtbot.waitUntil(lambda: window.document.toml_error is not None)
    assert not toml.error.isHidden() and "TOML" in toml.error.text()
    assert not window.job_actions["run"].isEnabled()
    toml.editor.setPlainText("[train]\nepoch = 3\n")
    qtbot.waitUntil(lambda: window.document.toml_error is None)
    assert "unknown key `train.epoch`" in window.document.errors[("train",)]
    assert not window.job_actions["run"].isEnabled()


def test_open_save_and_recent_configs(make_window, tmp_path, settings):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[train]\nepochs = 3\n')
    window = make_window()
    assert window.open_config(path)
    assert window.document.path == path.resolve()
    assert window.windowTitle().startswith("mine.toml")
    assert settings.recent_configs() == [path.resolve()]
    window.document.set_value(("train", "epochs"), 9)
    assert window.save()
    assert load_config(path).train.epochs == 9
    assert not window.document.dirty
    # a missing file is reported, not raised
    assert not window.open_config(tmp_path / "missing.toml")
    assert "Cannot open config" in window.statusBar().currentMessage()
    # an invalid config opens, with its problems marked
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 0\n")
    assert window.open_config(bad)
    assert not window.document.valid
    assert "greater than 0" in window.editor.form.row("train.epochs").error.text()


def test_checks_shorthand_opens_as_its_table(make_window, tmp_path):
    path = tmp_path / "short.toml"
    path.write_text("checks = false\n")
    window = make_window()
    window.open_config(path)
    assert window.document.valid
    assert not window.editor.form.row("checks.enabled").editor.isChecked()
    window.document.set_value(("checks", "overfit_steps"), 50)
    cfg = window.document.config
    assert cfg.checks.enabled is False and cfg.checks.overfit_steps == 50


def test_browse_sets_model_kind_from_a_builder_file_or_a_saved_model(make_window, qtbot, tmp_path, monkeypatch):
    from kerasguide_gui import config_form
    from PySide6.QtWidgets import QFileDialog

    builder = tmp_path / "my_model.py"
    builder.write_text("import keras\n\ndef helper():\n    pass\n\ndef build(hp, input_shape, num_classes):\n    pass\n")
    other = tmp_path / "net.py"
    other.write_text("class MyHyperModel:\n    pass\n")
    window = make_window()
    row = window.editor.form.row("model.kind")
    assert row.browse is not None and row.browse.objectName() == "browse:model.kind"
    for picked, expected in ((builder, f"python:{builder}:build"), (other, f"python:{other}:MyHyperModel"),
                             (tmp_path / "saved.keras", f"keras:{tmp_path / 'saved.keras'}")):
        monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, p=picked: (str(p), "")))
        qtbot.mouseClick(row.browse, config_form.Qt.MouseButton.LeftButton)
        assert row.editor.text() == expected
        assert window.document.config.model.kind == expected
    # Cancelled: nothing changes.
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a: ("", "")))
    assert row.pick() is None and window.document.config.model.kind == expected


def test_browse_sets_data_source_from_a_file_or_an_image_folder(make_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    window = make_window()
    row = window.editor.form.row("data.source")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a: (str(tmp_path / "d.csv"), "")))
    assert row.pick() == f"csv:{tmp_path / 'd.csv'}"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a: (str(tmp_path / "d.npz"), "")))
    assert row.pick() == f"npz:{tmp_path / 'd.npz'}"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a: str(tmp_path)))
    assert row.pick(folder=True) == f"images:{tmp_path}"
    assert window.document.config.data.source == f"images:{tmp_path}"
    # The Browse menu says which kind is picked: a file, a folder of images, a Python function.
    menu = row.browse.menu().actions()
    assert [a.text() for a in menu] == ["Data file (npz, csv)…", "Folder of images (one subfolder per class)…",
                                        "Python function returning the splits (.py)…"]
    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a: asked.append("folder") or str(tmp_path / "imgs")))
    menu[1].trigger()
    assert asked == ["folder"] and window.document.config.data.source == f"images:{tmp_path / 'imgs'}"


def test_browse_sets_data_source_from_a_python_function(make_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog, QInputDialog

    with_load = tmp_path / "my_data.py"
    with_load.write_text("import numpy as np\n\ndef _scale(x):\n    return x\n\ndef helper():\n    pass\n\n"
                         "def load(seed):\n    pass\n\nclass Loader:\n    pass\n")
    single = tmp_path / "one.py"
    single.write_text("def _private():\n    pass\n\ndef get_splits(seed):\n    pass\n")
    several = tmp_path / "several.py"
    several.write_text("def digits_splits():\n    pass\n\ndef mnist_splits():\n    pass\n")
    window = make_window()
    row = window.editor.form.row("data.source")
    questions = []

    def ask(parent, title, label, items, current, editable):
        questions.append((title, label, list(items)))
        return answer

    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(ask))
    filters = []
    for picked, expected in ((with_load, f"python:{with_load}:load"), (single, f"python:{single}:get_splits")):
        monkeypatch.setattr(QFileDialog, "getOpenFileName",
                            staticmethod(lambda *a, p=picked: filters.append(a[3]) or (str(p), "")))
        row.browse.menu().actions()[2].trigger()
        assert row.editor.text() == expected and window.document.config.data.source == expected
    assert questions == [] and filters == ["Python (*.py)"] * 2  # `load`, or the one public function: no question
    # Several functions and no `load`: which one is asked, among the public functions only.
    answer = ("mnist_splits", True)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a: (str(several), "")))
    assert row.pick(kind="python") == f"python:{several}:mnist_splits"
    assert questions[0][2] == ["digits_splits", "mnist_splits"] and "no `load`" in questions[0][1]
    assert window.document.valid and window.document.config.data.source == f"python:{several}:mnist_splits"
    # Cancelled: nothing changes.
    answer = ("", False)
    assert row.pick(kind="python") is None
    assert window.document.config.data.source == f"python:{several}:mnist_splits"
    # A .py picked through the data-file dialog is a python: source too.
    answer = ("digits_splits", True)
    assert row.pick() == f"python:{several}:digits_splits"


def test_data_source_of_and_python_names(tmp_path):
    from kerasguide_gui.config_form import data_source_of, model_kind_of, python_names

    code = tmp_path / "m.py"
    code.write_text("def _x():\n    pass\n\nclass Net:\n    pass\n\ndef make():\n    pass\n")
    assert python_names(str(code)) == ["Net", "make"]
    assert python_names(str(code), classes=False) == ["make"]
    assert python_names(str(tmp_path / "missing.py")) == []
    assert data_source_of(str(code)) == f"python:{code}:make"
    assert data_source_of(str(code), function="other") == f"python:{code}:other"
    assert data_source_of(str(tmp_path / "missing.py")) == f"python:{tmp_path / 'missing.py'}:load"
    assert data_source_of("/d/x.TSV") == "csv:/d/x.TSV" and data_source_of("/d/x.npz") == "npz:/d/x.npz"
    assert data_source_of("/d/imgs", folder=True) == "images:/d/imgs"
    assert model_kind_of(str(code)) == f"python:{code}:Net" and model_kind_of(str(code), "make").endswith(":make")
