"""A run SIGKILLed at six moments keeps what it finished, and every reader knows it was killed (issue 15).

Each moment is a real `kerasguide run` child process killed with SIGKILL when its progress events reach
that moment; then the readers (`list_runs`, `kerasguide runs`, the diagnosis, `kerasguide diagnose`) and
a new run of the same config into the same folder, which leaves the killed directory as it was.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from kerasguide.config import save_config
from kerasguide.rundir import RunDir, list_runs, read_run
from tests.conftest import ROOT, cli_in_process, tiny_digits

EPOCHS = 6

# moment -> the first progress event at which the child is killed
MOMENTS = {
    "started": lambda e: e["event"] == "start",
    "after_first_check": lambda e: e["event"] == "check",
    "fit_begins": lambda e: e["event"] == "stage" and e.get("stage") == "fit",
    "after_epoch_2": lambda e: e["event"] == "epoch" and e["epoch"] == 2,
    "after_epoch_5": lambda e: e["event"] == "epoch" and e["epoch"] == 5,
    "in_the_report": lambda e: e["event"] == "stage" and e.get("stage") == "report",
}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    cfg = tiny_digits("killed", epochs=EPOCHS)
    cfg.checks.enabled = True  # the checks are one of the moments
    cfg.checks.overfit_steps = 60
    cfg.checks.stop_on_failure = False  # a check that fails on so few steps must not end the run
    cfg.train.backup_after = 0.0  # backups from the first epoch: the resume after each kill restores one
    path = tmp_path_factory.mktemp("config") / "killed.toml"
    save_config(cfg, path)
    return path


def _kill_at(config_file: Path, out: Path, until) -> tuple[Path, int]:
    """Start `kerasguide run`, SIGKILL it at the first event `until` accepts; the run directory and the pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerasguide.cli", "run", str(config_file), "--out", str(out), "--json-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    run_dir = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"the run ended before the moment: {proc.stderr.read()[-2000:]}")
            event = json.loads(line)
            run_dir = event.get("run_dir", run_dir)
            if until(event):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run_dir is not None
    return Path(run_dir), proc.pid


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_run_killed_keeps_what_it_finished_and_every_reader_says_killed(moment, config_file, tmp_path, capsys):
    out = tmp_path / "runs"
    path, pid = _kill_at(config_file, out, MOMENTS[moment])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # nothing left behind (a run has no children)
    record = json.loads((path / "run.json").read_text())  # whole JSON, whatever the moment
    assert record["status"] == "running" if moment != "in_the_report" else record["status"] == "completed"
    info = read_run(path)
    rows = RunDir(path).read_metrics()
    epochs = len(rows)

    if moment == "in_the_report":
        # Trained, recorded, then killed in the report: not a plain `completed` for any reader.
        assert epochs == EPOCHS
        assert info.status == "completed_with_errors"
        assert any("final stages" in e for e in info.record["errors"])
    else:
        assert info.status == "killed" and info.is_stale()
        listed = cli_in_process(capsys, "runs", str(out))
        assert re.search(rf"{path.name}\s+killed\s", listed.stdout), listed.stdout  # killed, not killed?
        shown = cli_in_process(capsys, "diagnose", str(path))
        assert "killed" in shown.stdout, shown.stdout
        from kerasguide.diagnosis import diagnose_run

        killed = [f for f in diagnose_run(path) if f.code == "killed"]
        assert killed and killed[0].severity == "error" and killed[0].evidence["epochs"] == epochs

    checks = json.loads((path / "checks.json").read_text()) if (path / "checks.json").exists() else None
    if moment == "after_first_check":
        assert checks and len(checks) >= 1  # the check it finished is on disk
    if moment in ("fit_begins", "after_epoch_2", "after_epoch_5", "in_the_report"):
        assert checks and len(checks) >= 5  # every check

    if moment in ("after_epoch_2", "after_epoch_5", "in_the_report"):
        expected = {"after_epoch_2": 2, "after_epoch_5": 5, "in_the_report": EPOCHS}[moment]
        assert epochs >= expected
        # Every monitor's record has every epoch but (at most) the two its background work may be behind.
        for name in ("loss.jsonl", "update_ratio.jsonl"):
            assert len(_lines(path / "monitor" / name)) >= expected - 2, name
        # The best checkpoint of the epochs before the last one the kill could interrupt is on disk, whole.
        best = sorted((path / "checkpoints").glob("best-epoch=*.keras"))
        assert best, "no best checkpoint on disk"
        saved_epoch = max(int(re.search(r"best-epoch=(\d+)", b.name).group(1)) for b in best)
        scores = [r["val_accuracy"] for r in rows[: expected - 1]]
        assert saved_epoch >= 1 + scores.index(max(scores))
        with zipfile.ZipFile(max(best)) as archive:
            assert archive.testzip() is None

    if moment == "after_epoch_5":
        # A new run of the same config into the same folder: the killed run stays as it was.
        before = {p.name: p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}
        again = cli_in_process(capsys, "run", str(config_file), "--out", str(out), "--quiet")
        assert again.returncode == 0, again.stdout + again.stderr
        after = {p.name: p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}
        assert after == before
        statuses = sorted(i.status for i in list_runs(out))
        assert statuses == ["completed", "killed"]

    _resume_keeps_what_it_finished(path, moment, rows, capsys)


def _resume_keeps_what_it_finished(path: Path, moment: str, rows: list[dict], capsys) -> None:
    """`kerasguide run --resume` continues the killed run in its own directory: the epochs its backup had are
    kept as they were, the others run again, the checks done are not re-run, the optimizer continues."""
    resumed = cli_in_process(capsys, "run", "--resume", str(path), "--quiet")
    if moment == "in_the_report":  # trained and recorded: nothing to resume, one line, exit 2
        assert resumed.returncode == 2 and "nothing to resume" in resumed.stderr, resumed.stderr
        assert resumed.stderr.count("\n") == 1, resumed.stderr
        return
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    record = json.loads((path / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == EPOCHS
    (entry,) = record["resumed"]
    assert entry["status_before"] == "killed" and entry["epoch"] <= len(rows)
    after = RunDir(path).read_metrics()
    assert [int(r["epoch"]) for r in after] == list(range(1, EPOCHS + 1))
    assert after[: entry["epoch"]] == rows[: entry["epoch"]]  # nothing finished and backed up is lost
    for name in ("loss.jsonl", "update_ratio.jsonl"):
        assert [r["epoch"] for r in _lines(path / "monitor" / name)] == list(range(1, EPOCHS + 1)), name
    if moment in ("fit_begins", "after_epoch_2", "after_epoch_5"):
        assert "checks" in record and "sanity checks: done before" in resumed.stderr  # not run again
    import keras

    steps = -(-json.loads((path / "run.json").read_text())["data"]["train"] // 128)  # batches an epoch
    last = keras.models.load_model(path / "checkpoints" / "last.keras")
    # The optimizer's step counter went on from the backup's (a fresh optimizer would count fewer steps).
    assert int(last.optimizer.iterations) == EPOCHS * steps
    assert not (path / "backup").exists() and (path / "report.md").exists()


def test_sigterm_in_the_report_or_a_checkpoint_that_cannot_be_written_is_completed_with_errors(
        config_file, tmp_path, capsys, monkeypatch):
    from tests.conftest import sigterm_cli_midway

    code, _, err, run_dir = sigterm_cli_midway(
        "run", str(config_file), "--out", str(tmp_path / "a"),
        until=lambda e: e["event"] == "stage" and e.get("stage") == "report")
    record = json.loads((Path(run_dir) / "run.json").read_text())
    assert code == 1 and record["status"] == "completed_with_errors", (code, record, err[-1500:])
    assert any("report" in e for e in record["errors"]) and not record["finishing"]

    # A full disk when the last checkpoint is saved: trained, but not `completed`, exit 1, and it says why.
    import kerasguide.spine.loop as loop

    def full_disk(model, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loop, "save_model_atomic", full_disk)
    done = cli_in_process(capsys, "run", str(config_file), "--out", str(tmp_path / "b"), "--quiet")
    (path,) = (tmp_path / "b").iterdir()
    record = json.loads((path / "run.json").read_text())
    assert done.returncode == 1 and record["status"] == "completed_with_errors"
    assert "last checkpoint not written" in record["errors"][0] and "No space left" in record["errors"][0]
    assert "completed_with_errors" in done.stdout and "No space left" in done.stdout


def test_the_best_checkpoint_is_on_disk_by_the_next_improvement_and_a_model_without_twin_still_gets_one(tmp_path):
    import keras
    import numpy as np

    from kerasguide.callbacks import BestCheckpoint

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    seen: list[tuple[int, list[str]]] = []

    class Look(keras.callbacks.Callback):  # after BestCheckpoint: what is on disk as each epoch ends
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch + 1, sorted(p.name for p in (tmp_path / "a").glob("best-*"))))

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    best = BestCheckpoint(tmp_path / "a", monitor="val_loss")
    model.fit(x, y, validation_split=0.25, epochs=6, verbose=0, callbacks=[best, Look()])
    # Each epoch that improved val_loss (it falls every epoch here) finds the previous one's file written.
    for (epoch, _), (_, later) in itertools.pairwise(seen):
        assert any(f"best-epoch={epoch:03d}-" in n for n in later), (epoch, later)
    (final,) = (tmp_path / "a").glob("best-*.keras")
    loaded = keras.models.load_model(final)  # whole, compiled, with the optimizer's state of that epoch
    assert loaded.compiled and int(loaded.optimizer.iterations) > 0

    class NoConfig(keras.Model):  # subclassed, no get_config: no twin, written on the training thread
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2, activation="softmax")

        def call(self, inputs):
            return self.dense(inputs)

    sub = NoConfig()
    sub.compile("adam", "sparse_categorical_crossentropy")
    best = BestCheckpoint(tmp_path / "b", monitor="val_loss")
    sub.fit(x, y, validation_split=0.25, epochs=2, verbose=0, callbacks=[best])
    assert best.best_path is not None and best.best_path.exists() and best.best_epoch == 2
