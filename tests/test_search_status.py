"""A search's budget before it runs (`tune --dry-run`), its status while it runs (`search-status`), a graceful stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kerasguide.config import RunConfig, SearchConfig, save_config
from kerasguide.search.budget import hyperband_rounds, plan_budget
from tests.conftest import ROOT, cli_in_process, run_cli


def _tiny(name: str, **search) -> RunConfig:
    cfg = RunConfig()
    cfg.name = name
    cfg.model.hidden = [16]
    cfg.model.dropout = 0.0
    cfg.optimizer.learning_rate = 1e-2
    cfg.train.epochs = 2
    cfg.train.batch_size = 128
    cfg.checks.enabled = False
    cfg.monitor.enabled = False
    search.setdefault("workers", 0)
    search.setdefault("algorithm", "random")  # the staged search these tests are about (asha: test_search_asha.py)
    search.setdefault("widen_on_border", False)
    cfg.search = SearchConfig(**search)
    return cfg


def _state(path: Path) -> dict:
    return json.loads((path / "search.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------ the plan
def test_plan_budget_counts_trials_and_epochs_per_stage():
    budget = plan_budget(_tiny("plan", stages=[{"epochs": 1, "trials": 4}, {"epochs": 3, "trials": 2}]))
    assert [(r.stage, r.trials, r.epochs, r.total_epochs) for r in budget.rows] == [(1, 4, 1, 4), (2, 2, 3, 6)]
    assert budget.trials == 6 and budget.total_epochs == 10 and budget.seconds is None


@pytest.mark.parametrize("max_epochs,factor", [(2, 2), (9, 3), (20, 3), (27, 3)])
def test_hyperband_rounds_are_keras_tuners(max_epochs, factor):
    import keras_tuner as kt

    oracle = kt.oracles.HyperbandOracle(objective=kt.Objective("val_accuracy", "max"), max_epochs=max_epochs,
                                        factor=factor, hyperband_iterations=1)
    expected = [(oracle._get_size(b, r), oracle._get_epochs(b, r))
                for b in range(oracle._get_num_brackets() - 1, -1, -1) for r in range(b + 1)]
    assert hyperband_rounds(max_epochs, factor) == expected
    budget = plan_budget(_tiny("hb", algorithm="hyperband", hyperband_factor=factor))
    assert [(r.trials, r.epochs) for r in budget.rows] == hyperband_rounds(2, factor)


# ------------------------------------------------------------------ the dry run against the real search
def test_dry_run_estimate_is_within_2x_of_the_real_search(tmp_path, capsys):
    save_config(_tiny("dry", stages=[{"epochs": 1, "trials": 3}, {"epochs": 2, "trials": 1}]), tmp_path / "s.toml")
    out = tmp_path / "out"
    proc = run_cli("tune", str(tmp_path / "s.toml"), "--out", str(out), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    budget = json.loads(proc.stdout)
    assert [(r["trials"], r["epochs"]) for r in budget["rows"]] == [(3, 1), (1, 2)] and budget["total_epochs"] == 5
    assert budget["timing"]["step_seconds"] > 0 and budget["timing"]["train_steps_per_epoch"] == 12
    assert not out.exists()  # nothing written
    text = cli_in_process(capsys, "tune", str(tmp_path / "s.toml"), "--out", str(out), "--dry-run")
    assert "total" in text.stdout and "5 trials" not in text.stdout and "4 trials" in text.stdout
    start = time.perf_counter()
    real = run_cli("tune", str(tmp_path / "s.toml"), "--out", str(out))
    wall = time.perf_counter() - start
    assert real.returncode == 0, real.stderr[-2000:]
    ratio = budget["seconds"] / wall
    print(f"dry-run estimate {budget['seconds']:.1f} s, real tune {wall:.1f} s, ratio {ratio:.2f}")
    assert 0.5 <= ratio <= 2.0, (budget, wall)


# ------------------------------------------------------------------ status, stop, resume
def _events_until(proc, until, timeout: float = 180):
    deadline = time.monotonic() + timeout
    events = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"tune ended early: {proc.stderr.read()[-2000:]}")
        events.append(json.loads(line))
        if until(events[-1]):
            return events
    raise AssertionError("no such event in time")


def test_search_status_while_it_runs_then_stop_gracefully_and_resume(tmp_path, capsys):
    cfg = _tiny("stop", stages=[{"epochs": 2, "trials": 5}])
    save_config(cfg, tmp_path / "s.toml")
    out = tmp_path / "out"
    kerasguide = Path(sys.executable).with_name("kerasguide")
    proc = subprocess.Popen([str(kerasguide), "tune", str(tmp_path / "s.toml"), "--out", str(out), "--json-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        events = _events_until(proc, lambda e: e["event"] == "trial" and e["status"] == "running"
                               and e["trial_id"] == "1")
        path = Path(events[0]["search_dir"])
        status = json.loads(run_cli("search-status", str(path), "--json").stdout)
        assert status["status"] == "running" and status["master_alive"] and status["pid"] == proc.pid
        assert [s["trial_id"] for s in status["scores"]] == ["0"] and status["scores"][0]["score"] > 0
        assert status["best"]["trial_id"] == "0" and status["eta_seconds"] > 0 and status["remaining_trials"] == 4
        if status["running"]:  # trial 1, in the master's process, at its epoch 0 or 1
            row = status["running"][0]
            assert row["trial_id"] == "1" and row["pid"] == proc.pid and row["epochs_done"] in (0, 1, 2)
        text = run_cli("search-status", str(path))
        assert text.returncode == 0 and "running" in text.stdout and "ETA" in text.stdout
        stop = run_cli("search-status", str(path), "--stop")
        assert stop.returncode == 0 and "stop requested" in stop.stdout, stop.stdout + stop.stderr
        assert (path / "stop-request.json").is_file()
        out_text, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "resume:" in out_text + err, err[-2000:]
    end = json.loads(out_text.strip().splitlines()[-1])
    assert end["event"] == "end" and end["status"] == "stopped"
    state = _state(path)
    assert state["status"] == "stopped" and state["stop"]["after_trial"].startswith("stage 1 trial ")
    trials = state["stages"][0]["trials"]
    assert 2 <= len(trials) < 5 and all(t["status"] == "completed" for t in trials)  # the running trial finished
    assert not (path / "stop-request.json").exists() and (path / "best").is_dir()
    after = json.loads(run_cli("search-status", str(path), "--json").stdout)
    assert after["status"] == "stopped" and not after["running"] and after["eta_seconds"] is None
    again = run_cli("search-status", str(path), "--stop")
    assert again.returncode == 0 and "not running" in again.stdout

    resumed = cli_in_process(capsys, "tune", str(tmp_path / "s.toml"), "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    state = _state(path)
    assert state["status"] == "completed" and state["stop"] is None
    assert len(state["stages"][0]["trials"]) == 5
    assert [t["trial_id"] for t in state["stages"][0]["trials"][:len(trials)]] == [t["trial_id"] for t in trials]


def test_bad_input_is_one_line_exit_2(tmp_path):
    for target, needle in ((tmp_path / "nope", "no such search directory"), (tmp_path, "not a kerasguide search")):
        proc = run_cli("search-status", str(target))
        assert proc.returncode == 2 and needle in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout
    save_config(_tiny("none"), tmp_path / "s.toml")
    proc = run_cli("tune", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--stop")
    assert proc.returncode == 2 and "no search of none to stop" in proc.stderr
    proc = run_cli("search-status", str(tmp_path), "--now")
    assert proc.returncode == 2 and "--now goes with --stop" in proc.stderr
