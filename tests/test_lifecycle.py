"""One lifecycle for every command's run directory (`kerasguide.spine.lifecycle`): run, check and lr-find.

Whatever happens inside, run.json ends with the outcome (never `running`):
an interruption is `interrupted`, a `StopRun` its status, an error `failed`
with its message and error.txt, bad input `failed` and re-raised.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kerasguide.cli import EXIT_FAILED, main
from kerasguide.config import ConfigError, RunConfig, save_config
from kerasguide.interrupts import StopRun
from kerasguide.progress import Progress
from kerasguide.rundir import RunDir, new_run_dir, read_json
from kerasguide.spine import CommandFailed, check_config, command_run, lr_find_config
from kerasguide.spine import commands as spine_commands


def _events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _open(tmp_path: Path):
    config = RunConfig()
    stream = io.StringIO()
    return config, new_run_dir(tmp_path, config), Progress(True, stream), stream


def assert_recorded(run_dir: RunDir | Path, status: str, error_part: str | None = None) -> dict:
    """run.json of a command that ended: its status, an end time, the error's text."""
    record = read_json(Path(getattr(run_dir, "path", run_dir)) / "run.json")
    assert record["status"] == status, record
    assert record["ended"] and record["seconds"] is not None
    if error_part is not None:
        assert error_part in (record["error"] or ""), record["error"]
    return record


def test_a_completed_block_is_recorded_with_its_final_stages_and_events(tmp_path):
    config, run_dir, progress, stream = _open(tmp_path)
    seen = []
    with command_run(run_dir, config, "c.toml", progress, kind="check", header={"extra": 1},
                     final_stages=[("one", lambda: seen.append(1)), ("two", lambda: seen.append(2))]):
        assert read_json(run_dir.run_json)["status"] == "running"
    record = assert_recorded(run_dir, "completed")
    assert record["kind"] == "check" and record["extra"] == 1 and record["config_path"] == "c.toml"
    assert (run_dir.path / "config.toml").read_text().startswith("# The resolved run config")
    assert seen == [1, 2]
    events = _events(stream)
    assert [e["event"] for e in events] == ["start", "stage", "stage", "end"]
    assert events[0]["kind"] == "check" and events[-1]["status"] == "completed"


def test_an_error_is_failed_with_its_message_and_traceback_and_reraised(tmp_path):
    config, run_dir, progress, stream = _open(tmp_path)
    with pytest.raises(CommandFailed, match="boom") as caught:
        with command_run(run_dir, config, None, progress, what="check",
                         final_stages=[("report", lambda: (run_dir.path / "report.md").write_text("r"))]):
            raise RuntimeError("boom")
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert_recorded(run_dir, "failed", "RuntimeError: boom")
    assert "Traceback" in (run_dir.path / "error.txt").read_text()
    assert (run_dir.path / "report.md").exists()  # the final stages still ran
    assert _events(stream)[-1] == {"event": "end", "status": "failed", "run_dir": str(run_dir.path),
                                   "error": "RuntimeError: boom"}


def test_without_reraise_the_outcome_is_only_recorded(tmp_path):
    config, run_dir, progress, _ = _open(tmp_path)
    with command_run(run_dir, config, None, progress, reraise=False) as command:
        raise RuntimeError("boom")
    assert command.status == "failed"
    assert_recorded(run_dir, "failed", "boom")
    _, run_dir, progress, _ = _open(tmp_path / "b")
    with command_run(run_dir, config, None, progress, reraise=False):
        raise KeyboardInterrupt
    assert_recorded(run_dir, "interrupted", "Ctrl-C")


def test_an_interrupt_also_wrapped_by_tensorflow_is_interrupted_and_reraised(tmp_path):
    config, run_dir, progress, _ = _open(tmp_path)
    wrapped = RuntimeError("pybind11::error_already_set: MISMATCH ... REPLACED BY KeyboardInterrupt")
    with pytest.raises(KeyboardInterrupt):
        with command_run(run_dir, config, None, progress):
            raise wrapped
    record = assert_recorded(run_dir, "interrupted")
    assert record["stop_reason"] == "interrupted"


def test_stop_run_gives_its_status_and_a_set_outcome_its_fields(tmp_path):
    config, run_dir, progress, _ = _open(tmp_path)
    with command_run(run_dir, config, None, progress):
        raise StopRun("checks_failed", "sanity checks failed: overfit")
    record = assert_recorded(run_dir, "checks_failed", "overfit")
    assert record["stop_reason"] == "sanity checks failed: overfit"
    _, run_dir, progress, _ = _open(tmp_path / "b")
    with command_run(run_dir, config, None, progress) as command:
        command.finish("failed", "no rate found", lr_find={"chosen": 1e-3})
    assert assert_recorded(run_dir, "failed", "no rate")["lr_find"] == {"chosen": 1e-3}


def test_bad_input_is_failed_and_reraised_without_final_stages(tmp_path):
    config, run_dir, progress, stream = _open(tmp_path)
    ran = []
    with pytest.raises(ConfigError):
        with command_run(run_dir, config, None, progress, final_stages=[("report", lambda: ran.append(1))]):
            raise ConfigError("data.source: no such file")
    assert_recorded(run_dir, "failed", "no such file")
    assert ran == [] and _events(stream)[-1]["event"] == "start"


def test_a_failing_final_stage_is_a_warning_the_next_still_runs_and_the_run_completed_with_errors(tmp_path, caplog):
    config, run_dir, progress, _ = _open(tmp_path)
    ran = []

    def broken():
        raise OSError("disk full")

    with command_run(run_dir, config, None, progress, final_stages=[("report", broken),
                                                                  ("mlflow", lambda: ran.append(1))]):
        pass
    assert ran == [1]
    assert "report stage failed: OSError: disk full" in caplog.text
    assert_recorded(run_dir, "completed_with_errors")  # trained, but something is missing: not `completed`
    assert run_dir.read_run()["errors"] == ["report stage failed: OSError: disk full"]


# ---------------------------------------------------------------- the commands
@pytest.fixture
def check_crash(monkeypatch):
    """`run_checks` that finishes one check and then crashes (a bug in a check, say)."""
    real = spine_commands.run_checks

    def crash_after_one(model, data, **kwargs):
        real(model, data, **kwargs, skip=("initialization", "initial_loss", "regularization", "overfit",
                                          "gradients"))
        raise RuntimeError("a check crashed")

    monkeypatch.setattr(spine_commands, "run_checks", crash_after_one)


def test_a_crash_inside_check_is_recorded_failed_not_left_running(tiny_config, tmp_path, check_crash):
    with pytest.raises(CommandFailed, match="a check crashed"):
        check_config(tiny_config, out=tmp_path)
    (run_dir,) = tmp_path.iterdir()
    assert_recorded(run_dir, "failed", "RuntimeError: a check crashed")
    assert [c["name"] for c in read_json(run_dir / "checks.json")] == ["data"]  # the check done is kept
    assert (run_dir / "report.md").exists() and "Traceback" in (run_dir / "error.txt").read_text()


def test_the_cli_says_a_crashed_check_in_one_line_exit_1(tiny_config, tmp_path, check_crash, capsys):
    path = tmp_path / "c.toml"
    save_config(tiny_config, path)
    assert main(["check", str(path), "--out", str(tmp_path / "runs")]) == EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("kerasguide: check failed: RuntimeError: a check crashed (traceback in ")
    assert not any(line.startswith("Traceback") for line in err)


def test_a_crash_inside_lr_find_is_recorded_failed(tiny_config, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise ValueError("the sweep crashed")

    monkeypatch.setattr(spine_commands, "find_on_config", crash)
    with pytest.raises(CommandFailed, match="the sweep crashed"):
        lr_find_config(tiny_config, out=tmp_path)
    (run_dir,) = tmp_path.iterdir()
    record = assert_recorded(run_dir, "failed", "ValueError: the sweep crashed")
    assert record["kind"] == "lr_find"


def test_planted_a_lifecycle_that_forgets_the_error_leaves_running_and_is_caught(tiny_config, tmp_path,
                                                                                  check_crash, monkeypatch):
    # The bug the one lifecycle fixes: a command that opens its run directory and lets an error escape.
    import contextlib

    @contextlib.contextmanager
    def naive(run_dir, config, config_path, progress, **kwargs):
        run_dir.update_run(status="running", ended=None)
        yield None

    monkeypatch.setattr(spine_commands, "command_run", naive)
    with pytest.raises(RuntimeError):
        check_config(tiny_config, out=tmp_path)
    (run_dir,) = tmp_path.iterdir()
    with pytest.raises(AssertionError):
        assert_recorded(run_dir, "failed")


def test_any_error_after_the_user_asked_to_stop_is_the_interruption(tmp_path):
    # Seen when the app cancelled a run mid-trace: the KeyboardInterrupt raised inside TensorFlow's tracing
    # broke it, and an AttributeError from tf.while_loop came out instead.
    from kerasguide.interrupts import clear_interrupt_request, request_interrupt

    config, run_dir, progress, _ = _open(tmp_path / "a")
    with command_run(run_dir, config, None, progress, reraise=False):
        request_interrupt()
        raise AttributeError("'OptionalSpec' object has no attribute 'most_specific_common_supertype'")
    assert_recorded(run_dir, "interrupted")
    # The planted bug: without the request noted, the same error reads as a failed run.
    config, run_dir, progress, _ = _open(tmp_path / "b")
    with command_run(run_dir, config, None, progress, reraise=False):
        raise AttributeError("'OptionalSpec' object has no attribute 'most_specific_common_supertype'")
    assert_recorded(run_dir, "failed", "AttributeError")
    clear_interrupt_request()


def test_a_run_directory_is_locked_by_its_owner_while_it_runs_and_read_as_killed_when_it_is_gone(tmp_path):
    import os

    from kerasguide import locks
    from kerasguide.rundir import read_run

    config, run_dir, progress, _ = _open(tmp_path)
    with command_run(run_dir, config, None, progress):
        assert locks.owner(run_dir.path)["pid"] == os.getpid()
        with pytest.raises(locks.Busy, match=str(os.getpid())):
            locks.acquire(run_dir.path, "resume")
        assert read_run(run_dir.path).status == "running"  # its owner lives: not killed
    assert locks.owner(run_dir.path) is None
    # The same record with an owner that is gone (a pid's start time that is not this process's): killed.
    record = run_dir.read_run()
    run_dir.update_run(status="running", pid_start="1")
    assert read_run(run_dir.path).status == "killed" and read_run(run_dir.path).is_stale()
    run_dir.update_run(status="running", host="another-host", pid_start=record["pid_start"])
    assert read_run(run_dir.path).status == "running"  # another host's run: this host cannot tell
