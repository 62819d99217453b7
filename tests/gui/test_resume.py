"""Resume from the runs browser (`kerasguide run --resume RUN_DIR`): enabled for one killed, interrupted or
failed run, the argv, the `resumed` event in the job's line and log, the CLI's refusal shown, run.json's
`resumed` in the run's title, and a real interrupted run resumed from the app to completion."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from gui_support import ALL_COMMANDS, FAKE_CLI, write_run
from kerasguide_gui.commands import probe_commands
from kerasguide_gui.jobs import COMPLETED, FAILED, RUNNING, Progress, _summarize, cli_program
from kerasguide_gui.runs_view import RESUMABLE, resume_unavailable, resumed_text

import kerasguide
from kerasguide.cli_args import build_parser
from kerasguide.procs import hostname, process_start
from kerasguide.rundir import owner_fields, read_run

# The real parser's options for `run` (with --resume): what the app builds its argv from.
REAL_RUN = tuple(probe_commands()["run"])
COMMANDS = {**ALL_COMMANDS, "run": REAL_RUN}
ENABLED_TIP = "continue from its last backup (weights, optimizer, epoch) in its own directory"

TINY = """
name = "tiny"
checks = false
[model]
hidden = [16]
dropout = 0.0
[optimizer]
learning_rate = 0.01
[train]
epochs = 30
batch_size = 128
backup_after = 0.0  # a backup from the first epoch (the default waits for 10 s of training)
[monitor]
enabled = false
"""


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    return root


def _window(make_window, settings, workspace, commands=COMMANDS, program=None):
    settings.set_workspace(workspace)
    window = make_window(commands=commands, program=program)
    window.tabs.setCurrentIndex(window.TABS.index("Runs"))
    return window


def _set_record(run: Path, **fields) -> None:
    record = json.loads((run / "run.json").read_text())
    record.update(fields)
    (run / "run.json").write_text(json.dumps(record))


def _dead_owner() -> dict:
    # A process that ran and ended: its pid and start name no live process (a reused pid has another start).
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = process_start(child.pid)
    child.kill()
    child.wait()
    return {"pid": child.pid, "pid_start": start, "host": hostname()}


def _search(root: Path) -> tuple[Path, Path]:
    search = root / "20260106-000000-tiny-search"
    trial = write_run(search / "trials", "t0", status="interrupted")
    record = {"stage": 1, "trial_id": "1-0", "status": "interrupted", "run_dir": f"trials/{trial.name}"}
    (search / "search.json").write_text(json.dumps({
        "format_version": 1, "kind": "search", "name": "tiny", "status": "interrupted",
        "objective": {"metric": "val_accuracy", "direction": "max"},
        "stages": [{"index": 1, "trials": [record], "best": None}], "best": None}))
    return search, trial


def _resume_action(runs):
    return next(a for a in runs.context_menu().actions() if a.text() == "Resume")


def test_the_apps_resumable_statuses_are_the_clis():
    # kerasguide.spine imports TensorFlow, which this process never does: its source is read instead.
    source = (Path(kerasguide.__file__).parent / "spine" / "reopen.py").read_text(encoding="utf-8")
    (value,) = [node.value for node in ast.parse(source).body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "RESUMABLE" for t in node.targets)]
    assert ast.literal_eval(value) == RESUMABLE == ("killed", "interrupted", "failed")
    assert "--resume" in REAL_RUN


def test_resume_is_enabled_only_for_one_killed_interrupted_or_failed_run(make_window, settings, workspace):
    interrupted = write_run(workspace, "interrupted", status="interrupted")
    failed = write_run(workspace, "failed", status="failed")
    killed = write_run(workspace, "killed", status="running")
    _set_record(killed, **_dead_owner())
    completed = write_run(workspace, "completed")
    running = write_run(workspace, "running", status="running")
    _set_record(running, **owner_fields())  # this process: alive
    diverged = write_run(workspace, "diverged", status="diverged")
    check = write_run(workspace, "check", status="interrupted", kind="check", checkpoint=False)
    lr_test = write_run(workspace, "lrtest", status="failed", kind="lr_find", checkpoint=False)
    search, trial = _search(workspace)
    window = _window(make_window, settings, workspace)
    runs = window.runs
    button = runs.resume_button
    assert not button.isHidden()
    assert runs.model.info_of(killed).status == "killed"  # a dead owner's `running`, as readers see it
    assert runs.model.info_of(running).status == "running"
    for path in (interrupted, failed, killed):
        runs.select_paths([path])
        assert button.isEnabled(), path.name
        assert button.toolTip() == f"kerasguide run --resume {path.name}: {ENABLED_TIP}"
        action = _resume_action(runs)
        assert action.isEnabled() and action.toolTip() == button.toolTip()
    for path, why in ((completed, "completed: nothing to resume"), (running, "still running"),
                      (diverged, "diverged: nothing to resume"), (check, "sanity-checks run has nothing to resume"),
                      (lr_test, "LR range test has nothing to resume"), (search, "a search resumes with Tune"),
                      (trial, "Tune on the same config resumes the search")):
        runs.select_paths([path])
        assert not button.isEnabled(), path.name
        assert why in button.toolTip(), (path.name, button.toolTip())
        action = _resume_action(runs)
        assert not action.isEnabled() and why in action.toolTip()
    runs.select_paths([interrupted, failed])
    assert not button.isEnabled() and "select one run" in button.toolTip()
    runs.select_paths([])
    assert not button.isEnabled()
    # The app refuses too, whatever asks it (a stale menu, a script): no job, the reason in the status bar.
    assert window.resume(completed) is None and not window.queue.jobs
    assert "completed: nothing to resume" in window.statusBar().currentMessage()
    assert window.resume(workspace / "nowhere") is None and not window.queue.jobs
    assert "not a run directory" in window.statusBar().currentMessage()
    # The button follows the selected run's status as the browser re-reads it.
    runs.select_paths([completed])
    _set_record(completed, status="interrupted")
    runs.refresh()
    assert button.isEnabled()


def test_resume_is_hidden_when_the_clis_run_has_no_resume(make_window, settings, workspace):
    run = write_run(workspace, "interrupted", status="interrupted")
    window = _window(make_window, settings, workspace, commands=ALL_COMMANDS)
    window.runs.select_paths([run])
    assert window.runs.resume_button.isHidden()
    assert "Resume" not in [a.text() for a in window.runs.context_menu().actions()]
    assert window.resume(run) is None and not window.queue.jobs


def test_clicking_resume_starts_a_run_job_on_the_run(make_window, settings, workspace, qtbot, fake_mode,
                                                     tmp_path, monkeypatch):
    fake_mode("hang")  # the fake replays a run of its own: its directory lands in ./runs, the workspace
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_CLI_LOG", str(tmp_path / "argv.log"))
    run = write_run(workspace, "interrupted", status="interrupted")
    window = _window(make_window, settings, workspace)
    window.runs.select_paths([run])
    window.runs.resume_button.click()
    (job,) = window.queue.jobs
    assert job.kind == "run" and job.title == f"Resume {run.name}" and job.source == run.name
    assert job.argv == [*FAKE_CLI, "run", "--resume", str(run), "--json-progress"]
    assert build_parser().parse_args(job.argv[len(FAKE_CLI):]).resume == str(run)  # what the real CLI takes
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Jobs"
    assert window.jobs_view.current_job() is job
    qtbot.waitUntil(lambda: job.state == RUNNING and job.progress.runs == 1, timeout=20000)  # its start event
    # A second Resume of the same run while the first is queued or running: refused, said why.
    window.runs.select_paths([run])
    window.runs.resume_button.click()
    assert window.queue.jobs == [job]
    assert "a job already resumes it" in window.statusBar().currentMessage()
    job.cancel()
    qtbot.waitUntil(lambda: job.finished_state, timeout=20000)
    argv = json.loads((tmp_path / "argv.log").read_text().splitlines()[0])
    assert argv == ["run", "--resume", str(run), "--json-progress"]


def test_a_resumed_runs_progress_says_where_it_resumed():
    progress = Progress()
    progress.apply({"event": "start", "run_dir": "/r", "name": "tiny", "epochs": 30, "resumed": True})
    progress.apply({"event": "stage", "stage": "resume"})
    progress.apply({"event": "resumed", "epoch": 2, "source": "backup"})
    assert progress.describe() == "epoch 2/30 · resume · resumed after epoch 2"
    assert progress.fraction == pytest.approx(2 / 30)  # the epochs the backup had done count as done
    progress.apply({"event": "stage", "stage": "fit"})
    progress.apply({"event": "epoch", "epoch": 3, "total": 30, "metrics": {"loss": 0.5}, "eta": 27.0})
    assert progress.describe() == "epoch 3/30 · ETA 0:27 · resumed after epoch 2"
    assert progress.fraction == pytest.approx(3 / 30)
    fresh = Progress()  # killed before its first backup: the epochs start again
    fresh.apply({"event": "start", "run_dir": "/r", "epochs": 30, "resumed": True})
    fresh.apply({"event": "resumed", "epoch": 0, "source": "start"})
    assert fresh.describe().endswith("resumed from the start (no backup yet)")
    assert "resumed" not in Progress().describe()


def test_the_runs_title_says_it_was_resumed(make_window, settings, workspace):
    once = write_run(workspace, "once")
    _set_record(once, resumed=[{"at": "2026-12-03T08:04:22+00:00", "epoch": 3, "from": "backup",
                                "status_before": "killed", "epochs_done_before": 4}])
    twice = write_run(workspace, "twice")
    _set_record(twice, resumed=[{"epoch": 0, "from": "start", "status_before": "interrupted"},
                                {"epoch": 7, "from": "backup", "status_before": "failed"}])
    never = write_run(workspace, "never")
    window = _window(make_window, settings, workspace)
    runs = window.runs
    runs.select_paths([once])
    assert runs.title.text().endswith("— completed · resumed after epoch 3 (from killed)")
    runs.select_paths([twice])
    assert runs.title.text().endswith(
        "· resumed from the start, no backup yet (from interrupted), then after epoch 7 (from failed)")
    runs.select_paths([never])
    assert "resumed" not in runs.title.text()
    assert resumed_text({}) == resumed_text({"resumed": None}) == ""
    assert resume_unavailable(None) == "select one run to resume it"


def test_a_refused_resume_shows_the_clis_one_line(make_window, settings, workspace, qtbot):
    # The app cannot see everything the CLI refuses: a failed run without its recorded config, say.
    run = write_run(workspace, "lost", status="failed")
    (run / "config.toml").unlink()
    window = _window(make_window, settings, workspace, program=cli_program())
    job = window.resume(run)
    assert job is not None
    qtbot.waitUntil(lambda: job.finished_state, timeout=180000)
    assert job.state == FAILED and job.exit_code == 2, "\n".join(job.log)
    line = f"kerasguide: error: --resume {str(run)!r}: not a run directory (no run.json and config.toml)"
    assert job.cli_message == line and [t for t in job.stderr_tail if t.strip()] == [line]
    view = window.jobs_view
    assert not view.error_panel.isHidden() and line in view.error_title.text()
    assert "bad input" in view.error_title.text()
    assert line in window.statusBar().currentMessage()
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Jobs"
    assert read_run(run).status == "failed"  # a refusal writes nothing


def _interrupted_run(config: Path, out: Path, after_epoch: int = 3) -> Path:
    """A real run (the CLI in a child) sent SIGTERM after its `after_epoch`th epoch event: recorded interrupted."""
    child = subprocess.Popen([*cli_program(), "run", str(config), "--out", str(out), "--json-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    run_dir = None
    try:
        for line in child.stdout:
            event = json.loads(line) if line.startswith("{") else {}
            run_dir = event.get("run_dir") or run_dir
            if event.get("event") == "epoch" and event.get("epoch") == after_epoch:
                child.send_signal(signal.SIGTERM)
        err = child.stderr.read()
        assert child.wait(timeout=120) == 1, err[-2000:]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert run_dir is not None, err[-2000:]
    return Path(run_dir)


def test_a_real_interrupted_run_resumed_from_the_app_completes(make_window, settings, workspace, qtbot, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    run = _interrupted_run(config, workspace)
    before = json.loads((run / "run.json").read_text())
    assert before["status"] == "interrupted" and (run / "backup").is_dir(), before
    window = _window(make_window, settings, workspace, program=cli_program())
    runs = window.runs
    runs.select_paths([run])
    assert runs.model.info_of(run).status == "interrupted"
    assert runs.resume_button.isEnabled(), runs.resume_button.toolTip()
    runs.resume_button.click()
    (job,) = window.queue.jobs
    assert job.argv == [*cli_program(), "run", "--resume", str(run), "--json-progress"]
    seen: list[str] = []

    def done() -> bool:
        info = runs.model.info_of(run)
        if info is not None and (not seen or seen[-1] != info.status):
            seen.append(info.status)  # the row as the browser re-reads it while the job runs
        return job.finished_state

    qtbot.waitUntil(done, timeout=240000)
    assert job.state == COMPLETED, "\n".join(job.log)[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 30
    (resumed,) = record["resumed"]
    assert resumed["status_before"] == "interrupted" and resumed["from"] == "backup"
    assert 1 <= resumed["epoch"] <= before["epochs_done"]
    # The job's line and log say where it resumed; its bar ends full.
    words = f"resumed after epoch {resumed['epoch']}"
    assert job.progress.resumed_after == resumed["epoch"] and words in job.progress.describe()
    assert any(line.startswith(f"· {words}") for line in job.log)
    assert job.progress.fraction == 1.0 and job.run_dir == str(run)
    # The run's row went back to running, then completed; its title says it resumed.
    qtbot.waitUntil(lambda: runs.model.info_of(run).status == "completed", timeout=10000)
    assert seen[0] == "interrupted" and "running" in seen, seen
    assert runs.selected_paths() == [run]
    window.tabs.setCurrentIndex(window.TABS.index("Runs"))  # a hidden browser redraws when shown
    assert runs.title.text().endswith(f"— completed · {words} (from interrupted)")
    assert not runs.resume_button.isEnabled() and "completed: nothing to resume" in runs.resume_button.toolTip()
    assert "tensorflow" not in sys.modules and "keras" not in sys.modules


def test_a_job_log_names_a_resumption():
    assert _summarize({"event": "resumed", "epoch": 4, "source": "backup"}) == (
        "· resumed after epoch 4 from backup/ (weights, optimizer state)")
    assert _summarize({"event": "resumed", "epoch": 0, "source": "start"}) == (
        "· resumed from the start (no backup yet)")
