"""Sanity checks, part 3: the pipeline stage, `kerasguide check`, checks.json and the report."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import pytest

from kerasguide._logging import get_logger
from kerasguide.cli import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, main
from kerasguide.config import RunConfig, save_config
from kerasguide.spine import run

CHECKS_KEYS = {
    "name",
    "passed",
    "measured",
    "expected",
    "tolerance",
    "advice",
    "recipe",
    "severity",
    "details",
}

# A user builder whose output layer starts with large weights (breaks D12).
BIG_HEAD = textwrap.dedent(
    """
    import keras

    def build(config, input_shape, num_classes):
        inputs = keras.Input(shape=input_shape)
        x = keras.layers.Dense(16, activation="relu")(inputs)
        outputs = keras.layers.Dense(
            num_classes, activation="softmax",
            kernel_initializer=keras.initializers.RandomNormal(stddev=5.0))(x)
        return keras.Model(inputs, outputs)
    """
)


@pytest.fixture
def small_config():
    cfg = RunConfig()
    cfg.name = "checks"
    cfg.model.hidden = [16]
    cfg.model.dropout = 0.1
    cfg.model.l2 = 1e-4
    cfg.train.epochs = 1
    cfg.train.batch_size = 128
    cfg.checks.overfit_steps = 100
    return cfg


@pytest.fixture
def broken_config(small_config, tmp_path):
    builder = tmp_path / "big_head.py"
    builder.write_text(BIG_HEAD)
    small_config.model.kind = f"python:{builder}:build"
    return small_config


def test_run_with_checks_writes_checks_json_and_report(small_config, tmp_path, capsys):
    # What `make demo` (`kerasguide run`) shows: the checks' table, logged before training.
    logger = get_logger()  # as the CLI does: INFO, to stderr
    logged: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: logged.append(record.getMessage())
    logger.addHandler(handler)
    try:
        result = run(small_config, out=tmp_path, json_progress=True, verbose=0)
    finally:
        logger.removeHandler(handler)
    assert result.status == "completed", result.error
    checks = json.loads((result.path / "checks.json").read_text())
    assert [c["name"] for c in checks] == [
        "data",
        "initialization",
        "initial_loss",
        "regularization",
        "overfit",
        "gradients",
    ]
    assert all(set(c) == CHECKS_KEYS for c in checks)
    assert all(c["passed"] for c in checks), [c["advice"] for c in checks if not c["passed"]]
    init = next(c for c in checks if c["name"] == "initialization")
    assert all(
        {"std", "dead_fraction", "saturated_fraction", "activation"} <= set(v)
        for v in init["details"]["layers"].values()
    )
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    check_events = [e for e in events if e["event"] == "check"]
    assert [e["name"] for e in check_events] == [c["name"] for c in checks]
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert stages.index("checks") == stages.index("model") + 1
    assert len(stages) == len(set(stages)), stages  # each stage announced once (the app's log shows them)
    report = (result.path / "report.md").read_text()
    assert "## Sanity checks" in report and "| initial_loss | pass |" in report
    assert result.run_dir.read_run()["checks"] == {"passed": True, "failed": []}
    heading = ["check", "result", "measured", "expected", "recipe"]
    header = next(i for i, line in enumerate(logged) if line.split() == heading)
    rows = [line.split() for line in logged[header + 1 : header + 1 + len(checks)]]
    assert [row[0] for row in rows] == [c["name"] for c in checks]
    assert all(row[1] in ("pass", "warn") for row in rows)
    assert header < next(i for i, line in enumerate(logged) if line.startswith("training "))


def test_run_stops_before_training_when_a_check_fails(broken_config, tmp_path):
    result = run(broken_config, out=tmp_path, verbose=0)
    assert result.status == "checks_failed"
    assert "initial_loss" in result.error
    record = result.run_dir.read_run()
    assert record["status"] == "checks_failed" and record["stop_reason"]
    assert not (result.path / "metrics.csv").exists()  # no epoch was trained
    checks = json.loads((result.path / "checks.json").read_text())
    failed = {c["name"]: c for c in checks if not c["passed"]}
    assert "initial_loss" in failed and failed["initial_loss"]["severity"] == "error"
    assert failed["initial_loss"]["details"]["loss"] > 4
    assert "| initial_loss | **FAIL** |" in (result.path / "report.md").read_text()


def test_run_goes_on_when_told_to(broken_config, tmp_path):
    broken_config.checks.stop_on_failure = False
    result = run(broken_config, out=tmp_path, verbose=0)
    assert result.status == "completed", result.error
    assert (result.path / "metrics.csv").exists()
    assert "initial_loss" in result.run_dir.read_run()["checks"]["failed"]


def test_checks_false_skips_the_stage(small_config, tmp_path):
    cfg = RunConfig.model_validate({**small_config.model_dump(), "checks": False})
    assert cfg.checks.enabled is False
    result = run(cfg, out=tmp_path, verbose=0)
    assert result.status == "completed"
    assert not (result.path / "checks.json").exists()


def test_cli_check_passes_on_a_healthy_config(small_config, tmp_path, capsys):
    path = tmp_path / "ok.toml"
    save_config(small_config, path)
    assert main(["check", str(path), "--out", str(tmp_path / "runs")]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["check", "result", "measured", "expected", "recipe"]
    assert "FAILED" not in out and "checks.json:" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert (run_dir / "config.toml").exists() and (run_dir / "report.md").exists()


def test_cli_check_fails_with_exit_3_and_one_line_per_failure(broken_config, tmp_path, capsys):
    path = tmp_path / "broken.toml"
    save_config(broken_config, path)
    assert main(["check", str(path), "--out", str(tmp_path / "runs")]) == EXIT_CHECK_FAILED
    out = capsys.readouterr().out
    failed_lines = [line for line in out.splitlines() if line.startswith("FAILED ")]
    assert failed_lines and failed_lines[0].startswith("FAILED initial_loss: Initial loss")
    assert all("(recipe" in line for line in failed_lines)
    (run_dir,) = (tmp_path / "runs").iterdir()
    recorded = json.loads((run_dir / "checks.json").read_text())
    # exactly one line per failed check, in order
    assert [line.split(":")[0] for line in failed_lines] == [
        f"FAILED {c['name']}" for c in recorded if not c["passed"]
    ]
    assert main(["check", str(path), "--json", "--out", str(tmp_path / "runs")]) == EXIT_CHECK_FAILED
    data = json.loads(capsys.readouterr().out)
    assert all(set(c) == CHECKS_KEYS for c in data)
    assert {c["name"] for c in data if not c["passed"]} >= {"initial_loss"}


def test_cli_check_bad_input_exits_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.toml")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("kerasguide: error:") and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[checks]\nskip = ['nope']\n")
    assert main(["check", str(bad)]) == EXIT_BAD_INPUT


# ------------------------------------------------- check --json-progress, SIGTERM
def test_cli_check_json_progress_counts_the_checks(small_config, tmp_path):
    """One `check` and one `step` event (k of n, with an ETA) per check; the table goes to stderr."""
    from tests.conftest import run_cli

    small_config.checks.skip = ["gradients"]
    path = tmp_path / "ok.toml"
    save_config(small_config, path)
    done = run_cli("check", str(path), "--out", str(tmp_path / "runs"), "--json-progress")
    assert done.returncode == EXIT_OK, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]  # stdout holds events only
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert events[0] == {"event": "start", "run_dir": str(run_dir), "name": "checks", "kind": "check",
                         "planned": ["data", "initialization", "initial_loss", "regularization", "overfit"]}
    steps = [e for e in events if e["event"] == "step"]
    assert [(e["stage"], e["step"], e["steps"]) for e in steps] == [("checks", k, 5) for k in range(1, 6)]
    assert all(e["eta"] >= 0 and e["elapsed"] >= 0 for e in steps) and steps[-1]["eta"] == 0
    assert [e["name"] for e in events if e["event"] == "check"] == [e["name"] for e in steps]
    assert events[-1] == {"event": "end", "status": "completed", "run_dir": str(run_dir), "error": None}
    assert "checks.json:" in done.stderr and "initial_loss" in done.stderr


def test_sigterm_during_check_marks_it_interrupted_and_keeps_the_checks_done(small_config, tmp_path):
    """`kerasguide check` stopped mid-way (the desktop app's Cancel) records what it did, exit 1."""
    from tests.conftest import sigterm_cli_midway

    small_config.optimizer.learning_rate = 1e-7  # the overfit check never fits: it runs all its steps
    small_config.checks.overfit_steps = 1_000_000
    path = tmp_path / "slow.toml"
    save_config(small_config, path)
    returncode, out, err, run_dir = sigterm_cli_midway(
        "check", str(path), "--out", str(tmp_path / "runs"),
        until=lambda e: e["event"] == "step" and e["name"] == "regularization",  # now in the overfit check
        pause=0.5)
    assert returncode == 1, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
    record = json.loads((Path(run_dir) / "run.json").read_text())
    assert record["status"] == "interrupted" and record["ended"] and record["kind"] == "check"
    kept = json.loads((Path(run_dir) / "checks.json").read_text())
    assert [c["name"] for c in kept] == ["data", "initialization", "initial_loss", "regularization"]
    assert (Path(run_dir) / "report.md").exists() and (Path(run_dir) / "config.toml").exists()
    assert json.loads(out.strip().splitlines()[-1]) == {
        "event": "end", "status": "interrupted", "run_dir": run_dir,
        "error": "interrupted by the user (Ctrl-C or SIGTERM)"}
