"""Fix from the Diagnosis tab (`kerasguide fix`): the button, the argv, the job, causes and repairs shown."""

from __future__ import annotations

import json

import pytest
from gui_support import ALL_COMMANDS, write_run
from kerasguide_gui.commands import CommandSet, fix_args, probe_commands
from kerasguide_gui.jobs import COMPLETED

from kerasguide.cli_args import build_parser
from kerasguide.rundir import RunDir

REAL = probe_commands()
COMMANDS = {**ALL_COMMANDS, "fix": tuple(REAL["fix"])}
DIAGNOSIS = {"format_version": 1, "findings": [
    {"code": "lr_too_high", "severity": "error", "evidence": {"update_ratio": 0.2}, "advice": "Divide it by 10.",
     "recipe": "E16", "caused_by": None},
    {"code": "dead_units", "severity": "warning", "evidence": {"dead_fraction": 0.9},
     "advice": "A consequence of `lr_too_high` (fix that first): ...", "recipe": "E19", "caused_by": "lr_too_high"},
]}


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    return root


def _window(make_window, settings, workspace, commands=COMMANDS):
    settings.set_workspace(workspace)
    window = make_window(commands=commands)
    window.tabs.setCurrentIndex(window.TABS.index("Runs"))
    return window


def _diagnosed(workspace, name="sick", diagnosis=DIAGNOSIS, **record):
    run = write_run(workspace, name)
    rd = RunDir(run)
    rd.write_json("diagnosis.json", diagnosis)
    if record:
        rd.update_run(**record)
    return run


def test_fix_args_are_what_the_real_parser_takes(tmp_path):
    commands = CommandSet({"fix": COMMANDS["fix"]})
    args = fix_args(commands, tmp_path / "run", tmp_path / "ws")
    assert args == [str(tmp_path / "run"), "--out", str(tmp_path / "ws"), "--json-progress"]
    parsed = build_parser().parse_args(["fix", *args])
    assert (parsed.run_dir, parsed.out, parsed.json_progress, parsed.rounds) == (str(tmp_path / "run"),
                                                                                 str(tmp_path / "ws"), True, 2)


def test_the_diagnosis_tab_shows_causes_and_offers_fix_only_with_a_warning(make_window, settings, workspace):
    sick = _diagnosed(workspace)
    healthy = _diagnosed(workspace, "healthy", {"findings": [
        {"code": "plateau", "severity": "info", "evidence": {}, "advice": "", "recipe": "G22"}]})
    window = _window(make_window, settings, workspace)
    panel = window.runs.diagnosis
    window.runs.show_run(sick, "Diagnosis")
    assert not panel.fix_button.isHidden() and panel.fix_button.isEnabled()
    consequence = panel.tree.topLevelItem(1)
    assert consequence.text(0) == "dead_units"
    assert (consequence.child(0).text(0), consequence.child(0).text(1)) == ("caused by", "lr_too_high")
    assert panel.tree.topLevelItem(0).child(0).text(0) != "caused by"  # a primary cause names none
    window.runs.show_run(healthy, "Diagnosis")
    assert not panel.fix_button.isEnabled() and "nothing to fix" in panel.fix_button.toolTip()
    # A CLI without `fix`: no button.
    old = _window(make_window, settings, workspace, commands=ALL_COMMANDS)
    old.runs.show_run(sick, "Diagnosis")
    assert old.runs.diagnosis.fix_button.isHidden()


def test_a_repaired_run_says_what_changed_from_which_run(make_window, settings, workspace):
    parent = _diagnosed(workspace, "planted")
    child = _diagnosed(workspace, "repaired", {"findings": []}, parent=str(parent), repair={
        "round": 1, "changes": {"optimizer.learning_rate": [5.0, "auto"]}, "reasons": [], "cannot": []})
    window = _window(make_window, settings, workspace)
    panel = window.runs.diagnosis
    window.runs.show_run(child, "Diagnosis")
    assert not panel.repair_note.isHidden()
    text = panel.repair_note.text()
    assert parent.name in text and "optimizer.learning_rate 5 → auto" in text and "round 1" in text
    window.runs.show_run(parent, "Diagnosis")
    assert panel.repair_note.isHidden()


def test_fix_runs_kerasguide_fix_as_a_job_and_shows_the_repaired_run(make_window, settings, workspace, qtbot,
                                                                     fake_mode, tmp_path, monkeypatch):
    fake_mode("ok", delay=0.005)
    monkeypatch.setenv("FAKE_CLI_LOG", str(tmp_path / "argv.log"))
    sick = _diagnosed(workspace)
    window = _window(make_window, settings, workspace)
    window.runs.show_run(sick, "Diagnosis")
    window.runs.diagnosis.fix_button.click()
    job = window.queue.jobs[-1]
    assert job.kind == "fix" and job.title == f"Fix {sick.name}"
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Jobs"
    qtbot.waitUntil(lambda: job.finished_state, timeout=20000)
    assert job.state == COMPLETED, "\n".join(job.stderr_tail)
    argv = json.loads((tmp_path / "argv.log").read_text().splitlines()[0])
    assert argv == ["fix", str(sick), "--out", str(workspace), "--json-progress"]
    # The repaired run (the fake replays one) is selected in the runs browser.
    assert job.run_dir and window.tabs.tabText(window.tabs.currentIndex()) == "Runs"
    assert [p.resolve() for p in window.runs.selected_paths()] == [RunDir(job.run_dir).path.resolve()]
