"""The Ensemble dialog's modes and the argv they build; Tune's resume or start afresh (`tune --new`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gui_support import ALL_COMMANDS, write_run
from kerasguide_gui.commands import (
    CommandSet,
    EnsembleSpec,
    ensemble_args,
    existing_search,
    probe_commands,
    tune_args,
)
from kerasguide_gui.ensemble_dialog import EnsembleDialog
from kerasguide_gui.jobs import COMPLETED, FAILED, cli_program
from PySide6.QtWidgets import QMessageBox

from kerasguide.cli_args import build_parser
from kerasguide.config import RunConfig, dump_config

# The real parser's options: the argv is built from what the CLI declares.
REAL = probe_commands()
# Tune's budget preview (`--dry-run`) has its own tests (test_gui_search_status.py); here Tune starts at once.
COMMANDS = {**ALL_COMMANDS, "ensemble": tuple(REAL["ensemble"]),
            "tune": tuple(o for o in REAL["tune"] if o != "--dry-run")}


def _parse(command: str, args: list[str]):
    return build_parser().parse_args([command, *args])


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def quick_fake(fake_mode, monkeypatch):
    fake_mode("ok", delay=0.002)
    monkeypatch.setenv("FAKE_CLI_MEMBERS", "1")


def _window(make_window, settings, workspace, commands=COMMANDS):
    settings.set_workspace(workspace)
    return make_window(commands=commands)


# ------------------------------------------------------------ ensemble: the argv of each mode
def test_each_mode_builds_an_argv_the_real_parser_takes(tmp_path):
    commands = CommandSet({"ensemble": tuple(REAL["ensemble"])})
    ws = tmp_path / "ws"
    seeds = ensemble_args(commands, EnsembleSpec("seeds", members=4), "c.toml", ws)
    assert seeds == ["c.toml", "--members", "4", "--out", str(ws), "--json-progress"]
    parsed = _parse("ensemble", seeds)
    assert (parsed.config, parsed.members, parsed.runs, parsed.snapshots) == ("c.toml", 4, None, None)
    runs = ensemble_args(commands, EnsembleSpec("runs", runs=("/r/a", "/r/b")), "c.toml", ws)
    assert runs == ["--runs", "/r/a", "/r/b", "--out", str(ws), "--json-progress"]  # no config: the members' own
    parsed = _parse("ensemble", runs)
    assert (parsed.config, parsed.runs, parsed.out) == (None, ["/r/a", "/r/b"], str(ws))
    top = ensemble_args(commands, EnsembleSpec("runs", runs=("/r/search",), members=3), None, ws)
    assert _parse("ensemble", top).members == 3
    snaps = ensemble_args(commands, EnsembleSpec("snapshots", snapshots="/r/a", distill=True, temperature=2.5,
                                                 alpha=0.3), None, ws)
    assert snaps == ["--snapshots", "/r/a", "--distill", "--temperature", "2.5", "--alpha", "0.3", "--out", str(ws),
                     "--json-progress"]
    parsed = _parse("ensemble", snaps)
    assert (parsed.snapshots, parsed.distill, parsed.temperature, parsed.alpha) == ("/r/a", True, 2.5, 0.3)
    distill = ensemble_args(commands, EnsembleSpec("seeds", distill=True), "c.toml", ws)
    assert distill == ["c.toml", "--distill", "--out", str(ws), "--json-progress"]  # T and alpha: the config's
    for spec, message in ((EnsembleSpec("runs"), "needs run or search directories"),
                          (EnsembleSpec("snapshots"), "needs a run directory"),
                          (EnsembleSpec("seeds", temperature=2.0), "need --distill"),
                          (EnsembleSpec("bagging"), "Received: mode='bagging'")):
        with pytest.raises(ValueError, match=message):
            ensemble_args(commands, spec, "c.toml", ws)
    older = CommandSet({"ensemble": ("--members", "--out", "--json-progress")})  # a CLI of seeds only
    with pytest.raises(ValueError, match="has no --snapshots"):
        ensemble_args(older, EnsembleSpec("snapshots", snapshots="/r/a"), None, ws)


def test_the_dialog_offers_only_what_the_cli_and_the_config_allow(qtbot, tmp_path):
    older = CommandSet({"ensemble": ("--members", "--out", "--json-progress")})
    dialog = EnsembleDialog(older, RunConfig())
    qtbot.addWidget(dialog)
    assert dialog.mode() == "seeds"
    assert not dialog.mode_buttons["runs"].isEnabled() and "no --runs" in dialog.mode_buttons["runs"].toolTip()
    assert not dialog.distill.isEnabled()
    no_config = EnsembleDialog(CommandSet(COMMANDS), None)  # the config is invalid: no seeds of it
    qtbot.addWidget(no_config)
    assert not no_config.mode_buttons["seeds"].isEnabled() and no_config.mode() == "runs"
    assert "fix the config first" in no_config.mode_buttons["seeds"].toolTip()
    assert not no_config.start_button.isEnabled() and "add two runs" in no_config.start_button.toolTip()


def test_seeds_with_distillation_from_the_dialog(make_window, settings, workspace, qtbot, quick_fake):
    window = _window(make_window, settings, workspace)
    window.document.set_value(("ensemble", "members"), 3)
    window.job_actions["ensemble"].trigger()  # the toolbar's Ensemble asks first
    dialog = window.ensemble_choice
    assert dialog.isVisible() and dialog.mode() == "seeds" and window.queue.jobs == []
    assert dialog.members.value() == 3  # the config's ensemble.members
    dialog.members.setValue(4)
    dialog.distill.setChecked(True)
    dialog.temperature_on.setChecked(True)
    dialog.temperature.setValue(3.0)
    assert dialog.preview.text().startswith("kerasguide ensemble CONFIG --members 4 --distill --temperature 3 ")
    assert "--alpha" not in dialog.preview.text()  # unticked: the config's value
    dialog.start_button.click()
    job = window.queue.jobs[-1]
    config = job.args[0]
    assert Path(config).is_file() and job.args[1:] == ["--members", "4", "--distill", "--temperature", "3", "--out",
                                                       str(window.workspace), "--json-progress"]
    assert job.progress.runs_total == 4 and job.title == f"Ensemble {window.document.config.name} (4 seeds) + student"
    qtbot.waitUntil(lambda: job.finished_state, timeout=30000)
    assert job.state == COMPLETED


def test_an_ensemble_of_the_runs_selected_in_the_browser(make_window, settings, workspace, qtbot, quick_fake):
    a, b = write_run(workspace, "a"), write_run(workspace, "b")
    check = write_run(workspace, "c", checkpoint=False, kind="check")
    window = _window(make_window, settings, workspace)
    window.document.set_value(("train", "epochs"), 0)  # an invalid config: runs need none
    assert not window.document.valid and window.job_actions["ensemble"].isEnabled()
    runs = window.runs
    runs.select_paths([a, b, check])
    assert runs.ensemble_runs_action.isEnabled() and runs.ensemble_runs_action in runs.context_menu().actions()
    runs.ensemble_runs_action.trigger()  # the context menu's "Ensemble of the selected runs…"
    dialog = window.ensemble_choice
    assert dialog.mode() == "runs" and sorted(dialog.runs()) == sorted([str(a), str(b)])  # not the check run
    assert not dialog.trials.isEnabled()  # no search among them
    dialog.start_button.click()
    job = window.queue.jobs[-1]
    assert job.args[0] == "--runs" and sorted(job.args[1:3]) == sorted([str(a), str(b)])
    assert job.args[3:] == ["--out", str(window.workspace), "--json-progress"]
    assert job.title == "Ensemble of 2 runs" and job.progress.runs_total == 0
    qtbot.waitUntil(lambda: job.finished_state, timeout=30000)
    # One run is no ensemble: Start is disabled until there are two (or a search).
    runs.select_paths([a])
    assert not runs.ensemble_runs_action.isEnabled()
    dialog = window.ensemble_dialog("runs")
    assert dialog.runs() == [str(a)] and not dialog.start_button.isEnabled()
    dialog.reject()


def test_an_ensemble_of_one_runs_snapshots(make_window, settings, workspace, qtbot, quick_fake, tmp_path,
                                           monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    snapped = write_run(workspace, "snapped", snapshots=3)
    plain = write_run(workspace, "plain")
    window = _window(make_window, settings, workspace)
    runs = window.runs
    runs.select_paths([plain])
    assert not runs.ensemble_snapshots_action.isEnabled()  # no snapshot checkpoints
    runs.select_paths([snapped])
    assert runs.ensemble_snapshots_action.isEnabled()
    runs.ensemble_snapshots_action.trigger()
    dialog = window.ensemble_choice
    assert dialog.mode() == "snapshots" and dialog.snapshot_dir.text() == str(snapped)
    assert dialog.snapshot_note.text() == "3 snapshot checkpoints"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a: str(plain)))
    dialog._pick_snapshots()
    assert not dialog.start_button.isEnabled() and "no snapshot checkpoints" in dialog.start_button.toolTip()
    dialog.snapshot_dir.setText(str(snapped))
    dialog.distill.setChecked(True)
    dialog.alpha_on.setChecked(True)
    dialog.alpha.setValue(0.25)
    dialog.start_button.click()
    job = window.queue.jobs[-1]
    assert job.args == ["--snapshots", str(snapped), "--distill", "--alpha", "0.25", "--out", str(window.workspace),
                        "--json-progress"]
    assert _parse("ensemble", job.args).snapshots == str(snapped)
    qtbot.waitUntil(lambda: job.finished_state, timeout=30000)


def test_the_real_cli_takes_the_dialogs_argv_and_its_error_is_one_line(make_window, settings, workspace, qtbot,
                                                                         tmp_path):
    # Cheap: `kerasguide ensemble` checks its directories before TensorFlow loads.
    a, b = tmp_path / "not-a-run", tmp_path / "nor-this"
    a.mkdir()
    b.mkdir()
    settings.set_workspace(workspace)
    window = make_window(program=cli_program(), commands=COMMANDS)
    job = window.start_ensemble(EnsembleSpec("runs", runs=(str(a), str(b))))
    qtbot.waitUntil(lambda: job.finished_state, timeout=60000)
    assert job.state == FAILED and job.exit_code == 2
    assert job.cli_message == f"kerasguide: error: {a}: not a kerasguide run or search directory (no run.json or " \
                              "search.json)"
    assert job.cli_message in window.jobs_view.error_title.text()
    assert job.cli_message in window.statusBar().currentMessage()


# ------------------------------------------------------------ tune: resume or start afresh
def _search_of(workspace: Path, config: RunConfig, name: str = "20260108-000000-digits-search",
               status: str = "interrupted") -> Path:
    search = workspace / name
    search.mkdir()
    (search / "config.toml").write_text("# The config searched, resolved.\n" + dump_config(config))
    (search / "search.json").write_text(json.dumps({
        "format_version": 1, "kind": "search", "name": config.name, "status": status,
        "objective": {"metric": "val_accuracy", "direction": "max"}, "stages": [], "best": None}))
    return search


def test_tune_argv_and_the_search_it_would_resume(tmp_path):
    commands = CommandSet({"tune": tuple(REAL["tune"])})
    assert tune_args(commands, "c.toml", "/ws") == ["c.toml", "--out", "/ws", "--json-progress"]
    afresh = tune_args(commands, "c.toml", "/ws", new=True)
    assert afresh[-1] == "--new" and _parse("tune", afresh).new is True
    with pytest.raises(ValueError, match="no --new"):
        tune_args(CommandSet({"tune": ("--out",)}), "c.toml", "/ws", new=True)
    config = RunConfig(name="digits")
    assert existing_search(tmp_path, config) is None and existing_search(tmp_path / "missing", config) is None
    older = _search_of(tmp_path, config, "20260101-000000-digits-search")
    newer = _search_of(tmp_path, config, "20260102-000000-digits-search")
    other = config.model_copy(deep=True)
    other.train.epochs += 1
    _search_of(tmp_path, other, "20260103-000000-digits-search")
    (tmp_path / "20260104-000000-junk-search").mkdir()  # no search.json: not a search
    assert existing_search(tmp_path, config) == newer != older


def test_tune_asks_when_a_search_of_this_config_exists(make_window, settings, workspace, qtbot, quick_fake):
    window = _window(make_window, settings, workspace)
    assert window.tune_new_action.isVisible() and window.tune_new_action.isEnabled()
    # No search of this config yet: Tune starts at once, resuming nothing.
    first = window.launch_tune()
    assert first.kind == "tune" and "--new" not in first.args
    qtbot.waitUntil(lambda: first.finished_state, timeout=30000)
    search = _search_of(window.workspace, window.document.config)
    window.runs.refresh()
    window.job_actions["tune"].trigger()  # the toolbar's Tune
    box = window.tune_choice
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert search.name in box.text() and "interrupted" in box.text()
    assert box.defaultButton() is box.resume_button  # resume is the default
    jobs = len(window.queue.jobs)
    box.afresh_button.click()
    job = window.queue.jobs[-1]
    assert len(window.queue.jobs) == jobs + 1 and job.args[-1] == "--new" and "(new search)" in job.title
    assert _parse("tune", job.args).new is True
    qtbot.waitUntil(lambda: job.finished_state, timeout=30000)
    box = window.launch_tune()
    box.resume_button.click()
    resumed = window.queue.jobs[-1]
    assert "--new" not in resumed.args and not _parse("tune", resumed.args).new
    qtbot.waitUntil(lambda: resumed.finished_state, timeout=30000)
    box = window.launch_tune()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window.queue.jobs[-1] is resumed  # cancelled: nothing started
    # Always an option, from the Jobs menu: Tune afresh.
    window.tune_new_action.trigger()
    assert window.queue.jobs[-1].args[-1] == "--new"
    qtbot.waitUntil(lambda: window.queue.jobs[-1].finished_state, timeout=30000)
    # Another config's search is not this config's: no question.
    window.document.set_value(("train", "epochs"), 7)
    job = window.launch_tune()
    assert job.kind == "tune" and "--new" not in job.args
    qtbot.waitUntil(lambda: job.finished_state, timeout=30000)


def test_a_cli_without_tune_new_never_asks(make_window, settings, workspace, qtbot, quick_fake):
    window = _window(make_window, settings, workspace, commands={**COMMANDS, "tune": ("--out", "--json-progress")})
    assert not window.tune_new_action.isVisible()
    _search_of(window.workspace, window.document.config)
    job = window.launch_tune()
    assert job.kind == "tune" and "--new" not in job.args
    assert window.start_tune(new=True).args[-1] != "--new"  # the old CLI resumes, always
    qtbot.waitUntil(lambda: window.queue.active() == [], timeout=30000)
