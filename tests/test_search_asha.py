"""ASHA (issue 14, part 1): rungs, asynchronous promotion, TPE, continuation from checkpoints, resume after SIGKILL."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kerasguide.config import ConfigError, RunConfig, SearchConfig, save_config
from kerasguide.rundir import list_runs, read_run
from kerasguide.search.asha_plan import asha_plan, asha_rungs
from tests.conftest import tiny_digits, wait_for


def _tiny(name: str = "asha", epochs: int = 9, **search) -> RunConfig:
    """A digits config whose trials take about a second."""
    search.setdefault("workers", 0)
    search.setdefault("widen_on_border", False)
    return tiny_digits(name, epochs, monitors=False, **search)


# ------------------------------------------------------------------ rungs
def test_rungs_and_their_budget():
    assert asha_rungs(27, 3, trials=30) == [3, 9, 27]  # at most three rungs by default
    assert asha_rungs(27, 3, trials=5) == [9, 27]
    assert asha_rungs(20, 3, trials=20) == [2, 7, 20]  # 20 configurations fill three rungs
    assert asha_rungs(20, 3, min_epochs=2) == [2, 6, 18, 20]
    assert asha_rungs(2, 3, trials=20) == [1, 2]  # equal budgets merge
    assert asha_rungs(5, 2, trials=1) == [5]
    # configurations, epochs, epochs each trains (a promoted trial continues: only the difference)
    assert asha_plan([1, 3, 9, 27], 30, 3) == [(30, 1, 1), (10, 3, 2), (3, 9, 6), (1, 27, 18)]
    with pytest.raises(ConfigError, match="min_epochs"):
        asha_rungs(5, 3, min_epochs=6)


def test_asha_is_the_default_and_takes_no_stages():
    assert SearchConfig().algorithm == "asha"
    with pytest.raises(ValueError, match="asha's rungs come from"):
        SearchConfig(stages=[{"epochs": 1, "trials": 2}])
    SearchConfig(algorithm="random", stages=[{"epochs": 1, "trials": 2}])


def test_dry_run_counts_only_the_epochs_a_promotion_adds():
    from kerasguide.search.budget import plan_budget

    budget = plan_budget(_tiny(epochs=27, trials=30, min_epochs=1))
    assert [(r.trials, r.epochs, r.epochs_each) for r in budget.rows] == [(30, 1, 1), (10, 3, 2), (3, 9, 6), (1, 27, 18)]
    assert budget.total_epochs == 30 + 20 + 18 + 18


# ------------------------------------------------------------------ the oracle, without training
def _oracle(tmp_path, trials=12, rungs=(1, 3, 9), startup=4, seed=5):
    import keras_tuner as kt

    from kerasguide.search.asha import ASHAOracle
    from kerasguide.search.oracle import build_hyperparameters
    from kerasguide.search.space import ParamRange

    hp = build_hyperparameters([ParamRange("optimizer.learning_rate", "float", 1e-5, 1e-1, log=True),
                                ParamRange("model.dropout", "float", 0.0, 0.6)],
                               {"optimizer.learning_rate": 1e-3, "model.dropout": 0.1})
    oracle = ASHAOracle(objective=kt.Objective("val_accuracy", "max"), hyperparameters=hp, rungs=list(rungs),
                        trials=trials, factor=3, startup=startup, seed=seed, max_retries_per_trial=0,
                        max_consecutive_failed_trials=10**9)
    oracle._set_project_dir(str(tmp_path), "asha")
    oracle.verbose = 0
    return oracle


def _score(values):
    # A smooth landscape: best at lr 1e-2 and no dropout; longer budgets score higher.
    u = math.log10(values["optimizer.learning_rate"])
    return 0.9 - 0.1 * (u + 2) ** 2 - 0.2 * values["model.dropout"] + 0.01 * values["tuner/epochs"]


def _drive(oracle, workers=2, fail=lambda values: False):
    """Run the oracle to the end with `workers` slots finishing one trial at a time (the oldest first)."""
    import keras_tuner as kt

    running, idle_with_configs_left, log = {}, 0, []
    while True:
        for slot in range(workers):
            name = f"worker{slot}"
            if name in running:
                continue
            trial = oracle.create_trial(name)
            if trial.status == kt.engine.trial.TrialStatus.RUNNING:
                running[name] = trial
                log.append(("start", trial.trial_id, dict(trial.hyperparameters.values)))
            elif trial.status == kt.engine.trial.TrialStatus.IDLE:
                started = sum(1 for t in oracle.trials.values() if t.hyperparameters.values.get("tuner/rung") == 0)
                idle_with_configs_left += started < oracle.configs
        if not running:
            return log, idle_with_configs_left
        name = min(running, key=lambda n: int(running[n].trial_id))
        trial = running.pop(name)
        values = trial.hyperparameters.values
        if fail(values):
            trial.status = kt.engine.trial.TrialStatus.FAILED
        else:
            oracle.update_trial(trial.trial_id, {"val_accuracy": _score(values)}, step=values["tuner/epochs"])
            trial.status = kt.engine.trial.TrialStatus.COMPLETED
        oracle.end_trial(trial)


def test_promotes_the_top_third_asynchronously(tmp_path):
    oracle = _oracle(tmp_path)
    log, idle = _drive(oracle, workers=2)
    assert idle == 0  # a free worker never waits while configurations remain (asynchronous)
    trials = oracle.trials
    by_rung = {}
    for t in trials.values():
        by_rung.setdefault(t.hyperparameters.values["tuner/rung"], []).append(t)
    # At least a third promoted at each rung (asynchronous: one promoted early may later fall out of the
    # top third, so a few more can be).
    assert len(by_rung[0]) == 12 and 4 <= len(by_rung[1]) <= 6 and 1 <= len(by_rung[2]) <= len(by_rung[1]) // 2
    first = trials[log[0][1]].hyperparameters.values
    assert first["optimizer.learning_rate"] == 1e-3 and first["tuner/sampler"] == "baseline"  # H31
    started = [entry[1] for entry in log]
    for t in trials.values():
        values = t.hyperparameters.values
        if values["tuner/rung"] == 0:
            assert "tuner/trial_id" not in values and values["tuner/epochs"] == 1
            continue
        parent = trials[values["tuner/trial_id"]]
        pv = parent.hyperparameters.values
        assert pv["tuner/rung"] == values["tuner/rung"] - 1
        assert values["tuner/initial_epoch"] == pv["tuner/epochs"] and values["tuner/epochs"] == [1, 3, 9][values["tuner/rung"]]
        assert {k: v for k, v in values.items() if not k.startswith("tuner/")} == \
            {k: v for k, v in pv.items() if not k.startswith("tuner/")}
        # At its promotion the parent was in the top third of its rung's finished trials.
        before = started[: started.index(t.trial_id)]
        ended_then = [trials[i] for i in before if trials[i].hyperparameters.values["tuner/rung"] == pv["tuner/rung"]
                      and started.index(i) < started.index(t.trial_id)]
        assert parent.trial_id in before
        assert sorted(ended_then, key=lambda x: -x.score).index(parent) < max(1, len(ended_then) // 3 + 1)
    parents = [t.hyperparameters.values.get("tuner/trial_id") for t in trials.values()]
    parents = [p for p in parents if p is not None]
    assert len(parents) == len(set(parents))  # nobody promoted twice
    assert "tpe" in {t.hyperparameters.values["tuner/sampler"] for t in by_rung[0]}  # model-based once scored


def test_tpe_samples_near_the_best(tmp_path):
    # With scores peaking at lr 1e-2, TPE's draws sit nearer the peak than the random ones (log distance).
    oracle = _oracle(tmp_path, trials=40, rungs=(1, 3), startup=8, seed=11)
    _drive(oracle, workers=1)
    rung0 = [t.hyperparameters.values for t in oracle.trials.values() if t.hyperparameters.values["tuner/rung"] == 0]
    distance = {kind: [abs(math.log10(v["optimizer.learning_rate"]) + 2) for v in rung0 if v["tuner/sampler"] == kind]
                for kind in ("random", "tpe")}
    assert len(distance["tpe"]) >= 25
    median = {k: sorted(d)[len(d) // 2] for k, d in distance.items()}
    assert median["tpe"] < 0.6 * median["random"], median


def test_failed_trials_take_a_place_but_are_never_promoted(tmp_path):
    oracle = _oracle(tmp_path)
    doomed = lambda values: values["optimizer.learning_rate"] > 3e-2  # noqa: E731 - diverged / pruned
    _drive(oracle, workers=1, fail=doomed)
    for t in oracle.trials.values():
        parent = t.hyperparameters.values.get("tuner/trial_id")
        if parent is not None:
            assert not doomed(oracle.trials[parent].hyperparameters.values)


def test_oracle_state_is_written_atomically_and_reloads(tmp_path):
    import keras_tuner as kt

    oracle = _oracle(tmp_path)
    for _ in range(4):  # four finished trials, then one left running (the kill)
        trial = oracle.create_trial("worker0")
        oracle.update_trial(trial.trial_id, {"val_accuracy": _score(trial.hyperparameters.values)}, step=1)
        trial.status = kt.engine.trial.TrialStatus.COMPLETED
        oracle.end_trial(trial)
    running = oracle.create_trial("worker0")
    assert not list(tmp_path.rglob("*.tmp*"))
    again = _oracle(tmp_path)
    again.reload()
    assert again.create_trial("worker0").trial_id == running.trial_id  # the running trial is run again
    assert {t.trial_id for t in again.trials.values() if t.status == "COMPLETED"} == \
        {t.trial_id for t in oracle.trials.values() if t.status == "COMPLETED"}


# ------------------------------------------------------------------ continuation in a run
def test_a_run_continues_from_a_checkpoint(tmp_path):
    from kerasguide.spine import run

    first = run(_tiny("parent", epochs=2), out=tmp_path, verbose=0)
    parent_rows = first.run_dir.read_metrics()
    cfg = _tiny("child", epochs=4)
    cfg.train.init_from = str(first.path / "checkpoints" / "last.keras")
    cfg.train.initial_epoch = 2
    child = run(cfg, out=tmp_path, verbose=0)
    assert child.status == "completed"
    rows = child.run_dir.read_metrics()
    assert [r["epoch"] for r in rows] == [3, 4]
    record = child.run_dir.read_run()
    steps_per_epoch = record["steps_per_epoch"]
    assert record["continued_from"]["optimizer_steps"] == 2 * steps_per_epoch  # the optimizer's state came along
    # Continued, not restarted: its first epoch starts where the parent ended (a fresh model's first
    # epoch has the parent's first-epoch loss, far above its last).
    assert rows[0]["loss"] < 0.9 * parent_rows[0]["loss"]
    assert rows[0]["loss"] < parent_rows[-1]["loss"] * 1.1
    fresh = run(_tiny("fresh", epochs=2), out=tmp_path, verbose=0).run_dir.read_metrics()
    assert rows[0]["loss"] < fresh[0]["loss"] * 0.9


def test_a_checkpoint_of_another_model_is_one_line(tmp_path):
    from kerasguide.spine import run

    first = run(_tiny("parent", epochs=1), out=tmp_path, verbose=0)
    cfg = _tiny("other", epochs=3)
    cfg.model.hidden = [32]
    cfg.train.init_from = str(first.path / "checkpoints" / "last.keras")
    cfg.train.initial_epoch = 1
    with pytest.raises(ConfigError, match="does not fit this model") as info:
        run(cfg, out=tmp_path, verbose=0)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="initial_epoch"):
        cfg.train = type(cfg.train)(epochs=3, initial_epoch=3)


def test_report_without_plots(tmp_path):
    from kerasguide.spine import run

    cfg = _tiny("noplots", epochs=1)
    cfg.monitor.enabled = True
    cfg.report.plots = False
    result = run(cfg, out=tmp_path, verbose=0)
    text = (result.path / "report.md").read_text()
    assert "## Diagnosis" in text and "## Reproduce" in text
    assert not (result.path / "loss.png").exists() and not (result.path / "monitor" / "monitors.png").exists()
    cfg.report.plots = True  # the planted bug's twin: with plots, both are drawn
    result = run(cfg, out=tmp_path, verbose=0)
    assert (result.path / "loss.png").is_file() and (result.path / "monitor" / "monitors.png").is_file()


# ------------------------------------------------------------------ a whole search
def _state(path: Path) -> dict:
    return json.loads((path / "search.json").read_text())


def test_asha_search_continues_promoted_trials(tmp_path):
    from kerasguide.search import tune

    result = tune(_tiny(trials=6, min_epochs=1, hyperband_factor=3), out=tmp_path)  # rungs 1, 3, 9
    assert result.status == "completed"
    stage = _state(result.path)["stages"][0]
    assert stage["rungs"] == [1, 3, 9] and stage["algorithm"] == "asha"
    trials = {t["trial_id"]: t for t in stage["trials"]}
    promoted = [t for t in trials.values() if t["tuner"].get("trial_id")]
    assert len([t for t in trials.values() if t["tuner"]["rung"] == 0]) == 6 and len(promoted) >= 2
    for t in promoted:
        parent = trials[t["tuner"]["trial_id"]]
        assert t["continued_from"]["parent"] == parent["trial_id"]
        assert t["continued_from"]["epoch"] == parent["epochs_done"]
        assert t["epochs_trained"] == t["epochs_done"] - parent["epochs_done"]
        rows = (result.path / t["run_dir"] / "metrics.csv").read_text().splitlines()
        assert rows[1].split(",")[0] in (str(parent["epochs_done"] + 1), f"{parent['epochs_done'] + 1}.0")
    # No epoch trained twice: the whole search trained what the plan's rungs add.
    bound = sum(n * each for n, _, each in asha_plan([1, 3, 9], 6, 3))
    assert sum(t["epochs_trained"] for t in trials.values()) <= bound
    assert result.best["score"] == max(t["score"] for t in trials.values() if t["score"] is not None)
    # Trials write report.md without its plots (search.trial_plots = false: a second a trial).
    some = result.path / promoted[0]["run_dir"]
    assert (some / "report.md").is_file() and not (some / "loss.png").exists()
    assert "epochs not trained again" in (result.path / "search.md").read_text()


def _records(search_root: Path) -> list[dict]:
    out = []
    for path in search_root.glob("*-search/tuner/stage1/trial_*/kerasguide.json"):
        try:
            out.append(json.loads(path.read_text()))
        except ValueError:
            pass
    return out


@pytest.mark.timeout(400)
def test_sigkill_while_promoting_resumes_from_the_checkpoint(tmp_path):
    """SIGKILL the master at two moments (a first-rung trial, then a promotion); no completed trial runs again."""
    cfg = _tiny("kill", trials=6, min_epochs=1, hyperband_factor=3)
    save_config(cfg, tmp_path / "s.toml")
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "kerasguide.cli", "tune", str(tmp_path / "s.toml"), "--out", str(out)]

    def killed_when(predicate):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: predicate(_records(out)) or proc.poll() is not None)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # killed, not ended by itself
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # The completed trials then, with their run directories then (a trial killed earlier has two).
        dirs = run_dirs()
        return {r["trial_id"]: len(dirs.get(r["trial_id"], [])) for r in _records(out) if r.get("status") == "completed"}

    def run_dirs() -> dict[str, list[Path]]:
        runs: dict[str, list[Path]] = {}
        for path in out.glob("*-search/trials/*"):
            runs.setdefault(path.name.split("-t")[-1].split("-")[0], []).append(path)
        return runs

    # 1: during the third first-rung trial; 2: while a promoted trial runs.
    done1 = killed_when(lambda rs: any(r["status"] == "running" and r["trial_id"] == "0002" for r in rs))
    done2 = killed_when(lambda rs: any(r["status"] == "running" and r["tuner"].get("trial_id") for r in rs))
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    search = next(out.glob("*-search"))
    state = _state(search)
    assert state["status"] == "completed"
    trials = state["stages"][0]["trials"]
    # Zero completed trials run again: each has the run directories it had when it was done (one, or two
    # when a kill had stopped its first run before the resume completed it).
    runs = run_dirs()
    for done in (done1, done2):
        for trial_id, count in done.items():
            assert count >= 1 and len(runs[trial_id]) == count, (trial_id, count, runs[trial_id])
    assert set(done1) <= set(done2)
    # The promotion that was killed continued from its parent's checkpoint when run again.
    for t in trials:
        if t["tuner"].get("trial_id"):
            assert t["status"] == "completed" and t["continued_from"].get("checkpoint"), t
    assert all(t["status"] == "completed" for t in trials)


@pytest.mark.timeout(300)
def test_sigkill_of_the_master_takes_its_worker_down(tmp_path):
    """A worker child process dies with its master (PR_SET_PDEATHSIG): no orphan finishes a trial the resume reruns."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    cfg = _tiny("orphan", epochs=300, trials=2, workers=1, engine="process")  # an orphan would run for a minute
    save_config(cfg, tmp_path / "s.toml")
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-m", "kerasguide.cli", "tune", str(tmp_path / "s.toml"),
                             "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        record = wait_for(lambda: next((r for r in _records(out) if r.get("pid")), None))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def gone():
        try:
            os.kill(record["pid"], 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=10)


@pytest.mark.timeout(400)
def test_a_search_killed_while_a_worker_trains_resumes_that_trials_run(tmp_path):
    """SIGKILL of the master mid-trial: its worker dies with it; the same tune again gives the unfinished trial
    back, and its worker resumes the killed run (`run --resume`, from its backup) instead of starting over."""
    cfg = _tiny("again", epochs=40, trials=2, workers=1, engine="process", algorithm="random", prune=False,
                stages=[{"epochs": 40, "trials": 2}])
    cfg.train.backup_after = 0.0
    save_config(cfg, tmp_path / "s.toml")
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "kerasguide.cli", "tune", str(tmp_path / "s.toml"), "--out", str(out)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def training_with_a_backup():
            for info in list_runs(next(out.glob("*-search"), out) / "trials"):
                if info.status == "running" and (info.path / "backup" / "training_metadata.json").exists():
                    return info
            return None

        victim = wait_for(training_with_a_backup, timeout=240)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    wait_for(lambda: read_run(victim.path).status == "killed", timeout=20)  # the worker died with its master
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    search = next(out.glob("*-search"))
    assert _state(search)["status"] == "completed"
    record = json.loads((victim.path / "run.json").read_text())
    assert record["status"] == "completed" and record["resumed"][0]["status_before"] == "killed"
    assert record["resumed"][0]["epoch"] >= 1 and record["epochs_done"] == 40
    assert len(list((search / "trials").iterdir())) == 2  # one run directory a trial


def test_dry_run_estimate_of_asha_is_within_2x_of_the_real_search(tmp_path):
    from tests.conftest import run_cli

    save_config(_tiny("dry", epochs=3, trials=4, min_epochs=1), tmp_path / "s.toml")  # rungs 1, 3
    out = tmp_path / "out"
    proc = run_cli("tune", str(tmp_path / "s.toml"), "--out", str(out), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    budget = json.loads(proc.stdout)
    assert [(r["trials"], r["epochs"], r["trained"]) for r in budget["rows"]] == [(4, 1, 1), (1, 3, 2)]
    start = time.perf_counter()
    real = run_cli("tune", str(tmp_path / "s.toml"), "--out", str(out))
    wall = time.perf_counter() - start
    assert real.returncode == 0, real.stderr[-2000:]
    ratio = budget["seconds"] / wall
    print(f"asha dry-run estimate {budget['seconds']:.1f} s, real tune {wall:.1f} s, ratio {ratio:.2f}")
    assert 0.5 <= ratio <= 2.0, (budget, wall)


def test_a_search_from_the_python_api_can_be_stopped(tmp_path, monkeypatch):
    """search-status --stop finds a master whose command line does not say kerasguide (a user's script)."""
    from kerasguide import callbacks
    from kerasguide.search import tune
    from kerasguide.search.status import request_stop, search_status

    original = callbacks.RunRecorder.on_epoch_end
    answers = []

    def stop_after_the_first_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if not answers:
            search_dir = next((tmp_path / "out").glob("*-search"))
            answers.append((search_status(search_dir)["master_alive"], request_stop(search_dir)))

    monkeypatch.setattr(callbacks.RunRecorder, "on_epoch_end", stop_after_the_first_epoch)
    result = tune(_tiny("api", epochs=3, trials=6), out=tmp_path / "out")
    alive, answer = answers[0]
    assert alive and answer["requested"], answer
    assert result.status == "stopped" and len(result.state["stages"][0]["trials"]) == 1


@pytest.mark.timeout(400)
def test_sigkill_of_a_worker_mid_trial_and_of_the_master_before_its_first_trial(tmp_path, capsys):
    """Two more kill moments (issue 15): a worker killed mid-trial, the master killed before any trial ran.

    After each, the readers (`search-status`, `runs`) tell what happened, and the same tune resumes to the
    end with every trial accounted for and no process left behind.
    """
    from tests.conftest import cli_in_process

    cfg = _tiny("wkill", epochs=60, trials=3, workers=1, engine="process")
    save_config(cfg, tmp_path / "s.toml")
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "kerasguide.cli", "tune", str(tmp_path / "s.toml"), "--out", str(out)]

    # 1: the master before its first trial (search.json written, no trial record yet).
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: list(out.glob("*-search/search.json")) or proc.poll() is not None)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    search = next(out.glob("*-search"))
    shown = cli_in_process(capsys, "search-status", str(search))
    assert shown.returncode == 0 and "killed" in shown.stdout, shown.stdout

    # 2: a worker SIGKILLed while it trains its trial: the master runs that trial again and the search ends.
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # A worker's run directory with a finished epoch (metrics.csv), its pid in run.json.
        def training_worker():
            for info in list_runs(search / "trials"):
                if info.status == "running" and (info.path / "metrics.csv").exists():
                    return info
            return None

        victim = wait_for(training_worker)
        assert victim.record["pid"] != proc.pid
        os.kill(victim.record["pid"], signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 1), err[-2000:]
    state = _state(search)
    assert state["status"] == "completed", state.get("error")
    trials = state["stages"][0]["trials"]
    assert all(t["status"] == "completed" for t in trials), trials  # every trial accounted for, finished
    again = [t for t in trials if t.get("attempts") == 2]
    # The second attempt resumed the killed run in its own directory (`run --resume`), from its backup.
    assert len(again) == 1 and Path(again[0]["run_dir"]).name == victim.path.name, trials
    resumed = next(i for i in list_runs(search / "trials") if i.path == victim.path)
    assert resumed.status == "completed" and resumed.record["resumed"][0]["status_before"] == "killed"
    assert len(list((search / "trials").iterdir())) == len(trials)  # no second run directory for it
    # No process left behind: the victim is gone, the search's master has ended.
    with pytest.raises(ProcessLookupError):
        os.kill(victim.record["pid"], 0)
    # A resume of a completed search runs nothing again.
    before = sorted(p.name for p in (search / "trials").iterdir())
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode in (0, 1), again.stderr[-2000:]
    assert sorted(p.name for p in (search / "trials").iterdir()) == before
