"""`kerasguide run --resume RUN_DIR`: a killed or interrupted run continues in its own directory (issue 16).

Every run's fit carries Keras' `BackupAndRestore` (`callbacks.RunBackup`, in `backup/`); a resumed run
restores it (weights, optimizer state, epoch), skips what its record says was done (the sanity checks,
the LR range test) and drops the records of the epochs after its backup. The kill tests
(tests/test_kills.py) resume a run killed at each of their moments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kerasguide.config import save_config
from kerasguide.rundir import RunDir, owner_fields
from tests.conftest import cli_in_process, sigterm_cli_midway, tiny_digits


def _one_line_error(result, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_resume_refuses_what_it_cannot_continue_in_one_line(tmp_path, capsys):
    cfg = tiny_digits("done", epochs=1, monitors=False)
    save_config(cfg, tmp_path / "done.toml")
    done = cli_in_process(capsys, "run", str(tmp_path / "done.toml"), "--out", str(tmp_path / "runs"), "--quiet")
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (run_dir / "backup").exists()  # a completed fit deletes its backup (nothing will resume it)
    before = (run_dir / "run.json").read_text()

    _one_line_error(cli_in_process(capsys, "run", "--resume", str(run_dir)), "completed", "nothing to resume")
    _one_line_error(cli_in_process(capsys, "run", "--resume", str(tmp_path / "nope")), "no such run directory")
    (tmp_path / "empty").mkdir()
    _one_line_error(cli_in_process(capsys, "run", "--resume", str(tmp_path / "empty")), "not a run directory")
    _one_line_error(cli_in_process(capsys, "run", "--resume", str(run_dir), "--epochs", "3"), "--epochs")
    _one_line_error(cli_in_process(capsys, "run", str(tmp_path / "done.toml"), "--resume", str(run_dir)),
                    "--resume")
    assert (run_dir / "run.json").read_text() == before  # a refusal writes nothing

    # A run whose owner is alive (this process) is running, not killed: no second owner.
    live = json.loads(before) | {"status": "running", **owner_fields()}
    (run_dir / "run.json").write_text(json.dumps(live))
    _one_line_error(cli_in_process(capsys, "run", "--resume", str(run_dir)), "still running", str(os.getpid()))


def test_an_interrupted_run_resumes_without_running_its_checks_and_lr_test_again(tmp_path, capsys):
    cfg = tiny_digits("interrupted", epochs=30)  # epochs left when the signal lands (they take 50 ms each)
    cfg.checks.enabled = True
    cfg.checks.overfit_steps = 30
    cfg.checks.stop_on_failure = False
    cfg.optimizer.learning_rate = "auto"
    cfg.lr_find.steps = 40
    cfg.train.backup_after = 0.0  # a backup from the first epoch (the default waits for 10 s of training)
    save_config(cfg, tmp_path / "c.toml")
    code, _, err, run_dir = sigterm_cli_midway(
        "run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "runs"),
        until=lambda e: e["event"] == "epoch" and e["epoch"] == 3)
    run_dir = Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted", err[-1500:]
    backup = run_dir / "backup"
    # Keras' file names, which RunBackup.restore reads: a Keras that renames them fails here first.
    assert (backup / "latest.weights.h5").is_file() and (backup / "training_metadata.json").is_file()
    backed_up = json.loads((backup / "training_metadata.json").read_text())["epoch"]
    assert 1 <= backed_up <= record["epochs_done"]
    checks_before = (run_dir / "checks.json").read_text()
    config_before = (run_dir / "config.toml").read_text()

    resumed = cli_in_process(capsys, "run", "--resume", str(run_dir), "--json-progress")
    assert resumed.returncode == 0, resumed.stderr
    events = [json.loads(line) for line in resumed.stdout.splitlines() if line.startswith("{")]
    kinds = {e["event"] for e in events}
    assert "check" not in kinds and not any(e.get("stage") == "lr_find" and e["event"] == "step" for e in events)
    (said,) = [e for e in events if e["event"] == "resumed"]
    assert said["epoch"] == backed_up and said["source"] == "backup"
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == list(range(backed_up + 1, 31))

    after = json.loads((run_dir / "run.json").read_text())
    assert after["status"] == "completed" and after["started"] == record["started"]
    assert after["lr_find"] == record["lr_find"] and after["resumed"][0]["status_before"] == "interrupted"
    assert (run_dir / "checks.json").read_text() == checks_before
    assert (run_dir / "config.toml").read_text() == config_before
    rows = RunDir(run_dir).read_metrics()
    assert [int(r["epoch"]) for r in rows] == list(range(1, 31))
    assert after["train_seconds"] >= sum(r["seconds"] for r in rows[:backed_up])  # the earlier session counts
    assert not backup.exists() and (run_dir / "diagnosis.json").exists()


def test_a_run_killed_before_its_first_backup_starts_its_epochs_again(tmp_path, capsys):
    cfg = tiny_digits("early", epochs=2, monitors=False)
    save_config(cfg, tmp_path / "c.toml")
    code, _, err, run_dir = sigterm_cli_midway(
        "run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "runs"),
        until=lambda e: e["event"] == "stage" and e.get("stage") == "fit")
    run_dir = Path(run_dir)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted", err[-1500:]
    resumed = cli_in_process(capsys, "run", "--resume", str(run_dir), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((run_dir / "run.json").read_text())
    assert record["resumed"][0]["from"] == "start" and record["resumed"][0]["epoch"] == 0
    assert record["epochs_done"] == 2 and record["status"] == "completed"


def test_run_backup_saves_at_most_a_bounded_share_of_the_time(tmp_path):
    """RunBackup saves every epoch of a slow epoch, and skips epochs while the saves would cost more than ~5%."""
    import time

    import keras
    import numpy as np

    from kerasguide.callbacks import RunBackup

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    x, y = np.zeros((32, 8), "float32"), np.zeros((32, 2), "float32")

    class Slow(keras.callbacks.Callback):
        def __init__(self, seconds):
            super().__init__()
            self.seconds = seconds

        def on_epoch_end(self, epoch, logs=None):
            time.sleep(self.seconds)

    fast = RunBackup(tmp_path / "fast")
    model.fit(x, y, epochs=30, verbose=0, callbacks=[fast])
    assert 2 <= fast._saves < 30  # fast epochs: saved now and then, not at each
    slow = RunBackup(tmp_path / "slow")
    model.fit(x, y, epochs=4, verbose=0, callbacks=[Slow(0.6), slow])
    assert slow._saves == 4  # an epoch much longer than a save: every epoch


@pytest.mark.parametrize("kind", ["check"])
def test_a_check_run_is_not_resumed(kind, tmp_path, capsys):
    cfg = tiny_digits("c", epochs=1, monitors=False)
    cfg.checks.enabled = True
    cfg.checks.overfit_steps = 20
    save_config(cfg, tmp_path / "c.toml")
    done = cli_in_process(capsys, kind, str(tmp_path / "c.toml"), "--out", str(tmp_path / "runs"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert done.returncode in (0, 3)
    _one_line_error(cli_in_process(capsys, "run", "--resume", str(run_dir)), "check")
