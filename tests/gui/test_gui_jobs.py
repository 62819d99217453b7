"""Jobs driven by a fake CLI replaying recorded output: progress, log, errors, cancel, the queue."""

from __future__ import annotations

import json
from pathlib import Path

from gui_support import FAKE_CLI, python_children
from kerasguide_gui.jobs import CANCELLED, COMPLETED, FAILED, Job

from kerasguide.rundir import read_run


def _finished(job: Job):
    return lambda: job.finished_state


def test_a_replayed_run_streams_progress_and_lands_in_the_runs_browser(make_window, qtbot, fake_mode, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("FAKE_CLI_LOG", str(tmp_path / "argv.log"))
    window = make_window()
    seen = []
    window.queue.jobChanged.connect(lambda job: seen.append(job.progress.fraction))
    job = window.start_job("run")
    assert job is not None and window.tabs.tabText(window.tabs.currentIndex()) == "Jobs"
    qtbot.waitUntil(_finished(job), timeout=20000)
    assert job.state == COMPLETED and job.exit_code == 0
    # the argv the app built: the config snapshot, the workspace, JSON progress
    argv = json.loads((tmp_path / "argv.log").read_text().splitlines()[0])
    assert argv[0] == "run" and argv[2:] == ["--out", str(window.workspace), "--json-progress"]
    assert Path(argv[1]).is_file() and Path(argv[1]).suffix == ".toml"
    # progress went up to 100 % through intermediate values, with the epoch metrics
    values = [v for v in seen if v is not None]
    assert any(0.0 < v < 1.0 for v in values) and max(values) == 1.0 and values == sorted(values)
    view = window.jobs_view
    assert view.bar.value() == 1000
    assert "epoch 4/4" in view.bar.format()
    assert "val_accuracy" in view.detail.text()
    log = view.log.toPlainText()
    assert "epoch 3/4" in log and "kerasguide: run directory" in log and "[completed, exit code 0]" in log
    assert view.error_panel.isHidden()
    # the run shows in the runs browser, selected, with its metrics
    assert job.run_dir and Path(job.run_dir).is_dir()
    runs = window.runs
    assert [p.resolve() for p in runs.selected_paths()] == [Path(job.run_dir).resolve()]
    row = runs.model.row_of(job.run_dir)
    headers = runs.model.headers
    status = runs.model.index(row, headers.index("Status")).data()
    val_acc = runs.model.index(row, headers.index("val_accuracy")).data()
    assert status == "completed" and val_acc == "0.5917"
    assert window.tabs.tabText(window.tabs.currentIndex()) in ("Jobs", "Runs")


def test_a_failing_child_shows_its_error(make_window, qtbot, fake_mode):
    fake_mode("fail")
    window = make_window()
    job = window.start_job("run")
    qtbot.waitUntil(_finished(job), timeout=20000)
    assert job.state == FAILED and job.exit_code == 1
    view = window.jobs_view
    assert view.current_job() is job
    assert not view.error_panel.isHidden()
    assert "exit code 1" in view.error_title.text()
    assert "planted failure: the loss became NaN" in view.error_text.toPlainText()
    assert "failed" in window.statusBar().currentMessage()
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Jobs"
    assert read_run(job.run_dir).status == "failed"


def test_bad_input_and_a_program_that_does_not_start(make_window, qtbot, fake_mode):
    fake_mode("bad_input")
    window = make_window()
    job = window.start_job("run")
    qtbot.waitUntil(_finished(job), timeout=20000)
    assert job.state == FAILED and job.exit_code == 2
    assert "bad input" in window.jobs_view.error_title.text()
    assert "Input should be greater than 0" in window.jobs_view.error_text.toPlainText()
    window2 = make_window(program=["/nonexistent/kerasguide-python"])
    job2 = window2.start_job("run")
    qtbot.waitUntil(_finished(job2), timeout=10000)
    assert job2.state == FAILED and "could not start" in job2.error
    assert not window2.jobs_view.error_panel.isHidden()


def test_cancel_terminates_the_child_and_the_run_is_interrupted(make_window, qtbot, fake_mode):
    fake_mode("hang")
    window = make_window()
    job = window.start_job("run")
    qtbot.waitUntil(lambda: job.run_dir is not None, timeout=20000)
    assert window.cancel_action.isEnabled()
    window.jobs_view.cancel_button.click()
    qtbot.waitUntil(_finished(job), timeout=20000)
    assert job.state == CANCELLED
    assert read_run(job.run_dir).status == "interrupted"
    assert "SIGTERM" in window.jobs_view.log.toPlainText()
    assert not window.cancel_action.isEnabled()
    assert window.jobs_view.error_panel.isHidden()


def test_jobs_run_one_at_a_time_in_order(make_window, qtbot, fake_mode):
    fake_mode("ok", delay=0.01)
    window = make_window()
    first = window.start_job("run")
    second = window.start_job("run")
    qtbot.waitUntil(lambda: first.state == "running", timeout=10000)
    assert second.state == "queued"
    qtbot.waitUntil(_finished(second), timeout=30000)
    assert first.state == second.state == COMPLETED
    assert first.ended <= second.started
    assert window.jobs_view.model.rowCount() == 2
    window.jobs_view.clear_button.click()
    assert window.jobs_view.model.rowCount() == 0


def test_cancelling_a_queued_job_never_starts_it(make_window, qtbot, fake_mode):
    fake_mode("hang")
    window = make_window()
    first = window.start_job("run")
    second = window.start_job("run")
    second.cancel()
    assert second.state == CANCELLED and second.process is None
    qtbot.waitUntil(lambda: first.run_dir is not None, timeout=20000)
    first.cancel()
    qtbot.waitUntil(_finished(first), timeout=20000)
    assert second.process is None


def test_job_buttons_follow_the_commands_the_cli_has(make_window):
    window = make_window(commands={"run": ("--out", "--json-progress")})
    assert window.job_actions["run"].isEnabled()
    assert not window.job_actions["check"].isEnabled()
    assert "no `check` command" in window.job_actions["check"].toolTip()
    assert not window.job_actions["tune"].isVisible()
    assert window.start_job("lr-find") is None
    assert window.runs.diagnose_button.isHidden()


def test_the_command_probe_reads_the_real_cli(qtbot):
    from kerasguide_gui.commands import CommandProbe, job_args

    probe = CommandProbe()
    with qtbot.waitSignal(probe.ready, timeout=30000) as blocker:
        probe.start()
    commands = blocker.args[0]
    assert commands.has("run") and commands.accepts("run", "--json-progress")
    assert not commands.has("no-such-command")
    args = job_args(commands, "run", "c.toml", "/ws")
    assert args == ["c.toml", "--out", "/ws", "--json-progress"]
    # Check and Find LR report their progress too (a determinate bar with an ETA).
    for command in ("check", "lr-find"):
        assert job_args(commands, command, "c.toml", "/ws") == ["c.toml", "--out", "/ws", "--json-progress"]
    # The probe asks a child process; that the GUI process itself never imports TensorFlow is
    # tested in a fresh interpreter (test_gui_real.py): pytest's own process has imported it
    # while collecting the core's tests.


def test_closing_the_window_stops_running_jobs(make_window, qtbot, fake_mode):
    fake_mode("hang")
    window = make_window()
    job = window.start_job("run")
    qtbot.waitUntil(lambda: job.run_dir is not None, timeout=20000)
    assert any("fake_cli.py" in cmd for _, cmd in python_children())
    window.close()
    assert job.state == CANCELLED
    assert not any("fake_cli.py" in cmd for _, cmd in python_children())
    assert read_run(job.run_dir).status == "interrupted"
    assert FAKE_CLI  # the fake is what ran
