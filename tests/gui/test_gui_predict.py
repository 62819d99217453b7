"""Predict from the runs browser: enabled only with a checkpoint, the argv, the CSV shown afterwards, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gui_support import ALL_COMMANDS, write_run
from kerasguide_gui.commands import CommandSet, predict_args, probe_commands
from kerasguide_gui.jobs import CANCELLED, COMPLETED, FAILED
from kerasguide_gui.predict import checkpoint_of, predict_unavailable, predictions_path, read_csv_head
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog

from kerasguide.cli_args import build_parser
from kerasguide.rundir import read_search

# The real parser's options: what the app builds its argv from.
REAL = probe_commands()
COMMANDS = {**ALL_COMMANDS, "predict": tuple(REAL["predict"])}


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


def _search(root: Path, with_checkpoint: bool) -> Path:
    search = root / "20260106-000000-tiny-search"
    trial = write_run(search / "trials", "t0", checkpoint=with_checkpoint)
    record = {"stage": 1, "trial_id": "1-0", "status": "completed", "score": 0.9, "metric": "val_accuracy",
              "run_dir": f"trials/{trial.name}"}
    (search / "search.json").write_text(json.dumps({
        "format_version": 1, "kind": "search", "name": "tiny", "status": "completed",
        "objective": {"metric": "val_accuracy", "direction": "max"},
        "stages": [{"index": 1, "trials": [record], "best": record}], "best": record}))
    return search


def test_predict_is_enabled_only_for_a_run_with_a_checkpoint(make_window, settings, workspace):
    trained = write_run(workspace, "trained")
    untrained = write_run(workspace, "untrained", checkpoint=False)
    checks = write_run(workspace, "checks", checkpoint=False, kind="check")
    running = write_run(workspace, "running", status="running")
    window = _window(make_window, settings, workspace)
    runs = window.runs
    button = runs.predict_button
    assert not button.isHidden()
    runs.select_paths([trained])
    assert button.isEnabled() and "kerasguide predict" in button.toolTip()
    for path, why in ((untrained, "no checkpoint"), (checks, "sanity-checks run trains no model"),
                      (running, "still running")):
        runs.select_paths([path])
        assert not button.isEnabled(), path.name
        assert why in button.toolTip()
        # the context menu says the same: its Predict submenu is disabled, with the reason
        predict = next(a for a in runs.context_menu().actions() if a.text() == "Predict")
        assert not predict.isEnabled() and why in predict.toolTip()
        assert runs.pick_predict_input() is None  # not even through the menu's actions
    runs.select_paths([trained, untrained])
    assert not button.isEnabled() and "select one run" in button.toolTip()
    runs.select_paths([trained])
    assert next(a for a in runs.context_menu().actions() if a.text() == "Predict").isEnabled()


def test_a_search_predicts_with_its_best_trial_an_ensemble_not_at_all(make_window, settings, workspace, tmp_path):
    good = _search(workspace, with_checkpoint=True)
    assert predict_unavailable(read_search(good)[0]) is None
    bad = _search(tmp_path / "other", with_checkpoint=False)
    assert "best trial has no checkpoint" in predict_unavailable(read_search(bad)[0])
    ensemble = workspace / "20260107-000000-tiny-ensemble-abcdef"
    member = write_run(ensemble / "members", "m0")
    (ensemble / "ensemble.json").write_text(json.dumps({
        "format_version": 1, "kind": "seeds", "name": "e", "members": [{"run_dir": f"members/{member.name}"}],
        "validation": {"ensemble": {"accuracy": 0.9}}}))
    window = _window(make_window, settings, workspace)
    window.runs.select_paths([good])
    assert window.runs.predict_button.isEnabled()
    window.runs.select_paths([ensemble])
    assert "not an ensemble" in window.runs.predict_button.toolTip()
    window.runs.select_paths([member])  # a member is a run like any other
    assert window.runs.predict_button.isEnabled()


def test_predict_is_hidden_when_the_cli_has_no_predict(make_window, settings, workspace):
    run = write_run(workspace, "trained")
    window = _window(make_window, settings, workspace, commands=ALL_COMMANDS)
    window.runs.select_paths([run])
    assert window.runs.predict_button.isHidden()
    assert "Predict" not in [a.text() for a in window.runs.context_menu().actions()]
    assert window.predict(run, str(run / "config.toml")) is None


def test_predict_argv_is_what_the_real_parser_takes(tmp_path):
    commands = CommandSet({"predict": tuple(REAL["predict"])})
    out = predictions_path(tmp_path / "run", tmp_path / "new digits.npz")
    assert out == tmp_path / "run" / "predictions-new digits.csv"
    assert predictions_path("/r", "/data/images/") == Path("/r/predictions-images.csv")
    args = predict_args(commands, tmp_path / "run", tmp_path / "new digits.npz", out)
    assert args == [str(tmp_path / "run"), str(tmp_path / "new digits.npz"), "--out", str(out)]
    parsed = build_parser().parse_args(["predict", *args])
    assert (parsed.run_dir, parsed.input, parsed.out) == (str(tmp_path / "run"), str(tmp_path / "new digits.npz"),
                                                          str(out))


def test_a_predict_job_shows_its_csv(make_window, settings, workspace, qtbot, fake_mode, tmp_path, monkeypatch):
    fake_mode("ok", delay=0.01)
    monkeypatch.setenv("FAKE_CLI_LOG", str(tmp_path / "argv.log"))
    run = write_run(workspace, "trained")
    data = tmp_path / "new.npz"
    data.write_bytes(b"x")
    window = _window(make_window, settings, workspace)
    runs = window.runs
    runs.select_paths([run])
    assert not runs.tabs.isTabEnabled(runs.TABS.index("Predictions"))  # nothing predicted yet
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a: (str(data), "")))
    runs.predict_file_action.trigger()
    job = window.queue.jobs[-1]
    assert job.kind == "predict" and window.tabs.tabText(window.tabs.currentIndex()) == "Jobs"
    qtbot.waitUntil(lambda: job.finished_state, timeout=20000)
    assert job.state == COMPLETED, "\n".join(job.stderr_tail)
    csv_path = run / "predictions-new.csv"
    argv = json.loads((tmp_path / "argv.log").read_text().splitlines()[0])
    assert argv == ["predict", str(run), str(data), "--out", str(csv_path)]
    # The runs browser shows it: the run selected, the Predictions tab, the first rows.
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Runs"
    assert runs.selected_paths() == [run]
    assert runs.TABS[runs.tabs.currentIndex()] == "Predictions"
    panel = runs.predictions
    assert panel.path == csv_path
    table = panel.table
    assert table.rowCount() == panel.ROWS == 200 and table.columnCount() == 12
    assert [table.horizontalHeaderItem(c).text() for c in range(3)] == ["index", "predicted", "p_0"]
    assert table.item(3, 1).text() == "3" and table.item(3, 5).text() == "0.91"
    assert "the first 200 of 300 rows, 12 columns" in panel.summary.text()
    assert str(csv_path) in window.statusBar().currentMessage()
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url.toLocalFile())))
    panel.open_button.click()
    assert opened == [str(csv_path)]
    # A second prediction, on a folder of images: listed beside the first, shown.
    images = tmp_path / "more images"
    images.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a: str(images)))
    monkeypatch.setenv("FAKE_CLI_ROWS", "7")
    assert runs.pick_predict_input(folder=True) == str(images)
    second = window.queue.jobs[-1]
    qtbot.waitUntil(lambda: second.finished_state, timeout=20000)
    assert second.args == [str(run), str(images), "--out", str(run / "predictions-more images.csv")]
    assert panel.path == run / "predictions-more images.csv"
    assert panel.table.rowCount() == 7 and panel.summary.text().startswith("7 rows")
    assert sorted(panel.files.itemText(i) for i in range(panel.files.count())) == [
        "predictions-more images.csv", "predictions-new.csv"]
    panel.files.setCurrentIndex([panel.files.itemText(i) for i in range(2)].index("predictions-new.csv"))
    assert panel.path == csv_path and panel.table.rowCount() == 200


def test_a_failed_predict_shows_the_clis_one_line(make_window, settings, workspace, qtbot, fake_mode, tmp_path):
    run = write_run(workspace, "trained")
    window = _window(make_window, settings, workspace)
    job = window.predict(run, tmp_path / "missing.npz")
    qtbot.waitUntil(lambda: job.finished_state, timeout=20000)
    assert job.state == FAILED and job.exit_code == 2
    line = f"kerasguide: error: {tmp_path / 'missing.npz'}: no such file or folder"
    assert job.cli_message.startswith(line)
    view = window.jobs_view
    assert not view.error_panel.isHidden() and line in view.error_title.text()
    assert "bad input" in view.error_title.text()
    assert line in window.statusBar().currentMessage()
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Jobs"
    assert not (run / "predictions-missing.csv").exists()


def test_a_predict_job_can_be_cancelled(make_window, settings, workspace, qtbot, fake_mode, tmp_path):
    fake_mode("hang")
    run = write_run(workspace, "trained")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    window = _window(make_window, settings, workspace)
    job = window.predict(run, tmp_path / "x.csv")
    qtbot.waitUntil(lambda: job.state == "running", timeout=10000)
    assert window.jobs_view.bar.maximum() == 0  # no progress events: a busy bar
    assert f"writes: {run / 'predictions-x.csv'}" in window.jobs_view.detail.text()
    window.jobs_view.cancel_button.click()
    qtbot.waitUntil(lambda: job.finished_state, timeout=20000)
    assert job.state == CANCELLED


def test_pure_helpers(tmp_path):
    assert checkpoint_of(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.weights.h5").write_bytes(b"")
    assert checkpoint_of(tmp_path).name == "last.weights.h5"  # weights only: still a checkpoint
    (tmp_path / "checkpoints" / "best-epoch=002-val_loss=0.1.keras").write_bytes(b"")
    assert checkpoint_of(tmp_path).name.startswith("best-epoch=002")
    path = tmp_path / "p.csv"
    path.write_text("index,value\n0,1.5\n\n1,2.5\n2,3.5\n")
    assert read_csv_head(path, limit=2) == (["index", "value"], [["0", "1.5"], ["1", "2.5"]], 3)
    assert read_csv_head(tmp_path / "missing.csv") == ([], [], 0)
