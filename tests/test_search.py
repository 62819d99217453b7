"""Hyperparameter search (recipes H25-H31): the pure maths, keras-tuner's oracles, real tiny searches."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from kerasguide.config import ConfigError, RunConfig, SearchConfig, load_config, loads_config
from kerasguide.search.ranges import (
    border_findings,
    border_side,
    narrow_choices,
    narrow_range,
    next_ranges,
    rank_trials,
    widen_range,
)
from kerasguide.search.space import (
    DEFAULT_SPACE,
    Limits,
    ParamRange,
    apply_values,
    baseline_values,
    field_limits,
    resolve_space,
    resolve_stages,
)
from tests.conftest import run_cli  # noqa: E402

LR = ParamRange("optimizer.learning_rate", "float", 1e-5, 1e-1, log=True)
DROPOUT = ParamRange("model.dropout", "float", 0.0, 0.6)


def _tiny(name: str = "tiny", **search) -> RunConfig:
    """A digits config whose trials take a second or two."""
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
    cfg.search = SearchConfig(**search)
    return cfg


# ------------------------------------------------------------------ H27: log scale
def _log_uniform_checks(draws, lo=-5.0, hi=-1.0):
    from scipy import stats

    u = np.log10(np.asarray(draws, dtype=float))
    assert u.min() >= lo - 1e-9 and u.max() <= hi + 1e-9
    # Each decade of [1e-5, 1e-1] gets a quarter of the draws (linear sampling
    # would put ~90 % into the top decade).
    per_decade = np.histogram(u, bins=4, range=(lo, hi))[0] / len(u)
    assert np.all(np.abs(per_decade - 0.25) < 0.035), per_decade
    assert stats.kstest(u, stats.uniform(loc=lo, scale=hi - lo).cdf).statistic < 0.035


def test_log_range_is_sampled_log_uniform():
    from kerasguide.search.oracle import build_hyperparameters

    hp = build_hyperparameters([LR])
    draws = [hp.space[0].random_sample(seed) for seed in range(4000)]
    _log_uniform_checks(draws)


def test_trials_drawn_by_the_oracle_are_log_uniform_and_linear_stays_linear(tmp_path):
    from kerasguide.search.oracle import build_hyperparameters, make_oracle

    hp = build_hyperparameters([LR, DROPOUT], {"optimizer.learning_rate": 1e-3, "model.dropout": 0.2})
    oracle = make_oracle("random", hp, "val_accuracy", "max", trials=10, seed=7)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.create_trial("t0")  # the baseline; every later trial is drawn as below
    draws = [oracle._random_values() for _ in range(3000)]
    _log_uniform_checks([d["optimizer.learning_rate"] for d in draws])
    dropout = np.array([d["model.dropout"] for d in draws])
    assert abs(dropout.mean() - 0.3) < 0.02 and dropout.min() >= 0 and dropout.max() <= 0.6


# ------------------------------------------------------------------ H28: border
def test_border_side_works_in_log_space():
    assert border_side(0.09, LR) == "high"
    assert border_side(1.5e-5, LR) == "low"
    assert border_side(1e-3, LR) is None
    # 0.01 is at 10 % of [1e-5, 0.1] linearly but at 75 % on the log scale: not a border.
    assert border_side(0.01, LR) is None
    assert border_side(0.05, DROPOUT) == "low" and border_side(0.3, DROPOUT) is None
    assert border_side(0.57, DROPOUT) == "high"
    assert border_side(0.5, LR) == "high"  # beyond the range counts too
    with pytest.raises(ValueError, match="fraction"):
        border_side(0.1, LR, fraction=0.6)


def test_best_on_border_warns_and_proposes_a_widened_range():
    ranges = [LR, DROPOUT, ParamRange("model.l2", "float", 1e-6, 1e-2, log=True)]
    findings = border_findings(ranges, {"optimizer.learning_rate": 0.095, "model.dropout": 0.3, "model.l2": 1e-4})
    assert [f.key for f in findings] == ["optimizer.learning_rate"]
    finding = findings[0]
    assert finding.is_warning and finding.side == "high"
    assert finding.widened.low == pytest.approx(1e-5) and finding.widened.high == pytest.approx(10.0)
    assert "upper edge" in finding.message and "optimizer.learning_rate" in finding.message
    assert "high = 10" in finding.message and "log = true" in finding.message
    # A best baseline (the config's own value) outside a narrowed range says so.
    (outside,) = border_findings([LR], {"optimizer.learning_rate": 0.2}, baseline=True)
    assert "config's own value" in outside.message and "above the searched range" in outside.message
    # In the middle of every range: nothing to say.
    assert border_findings(ranges, {"optimizer.learning_rate": 1e-3, "model.dropout": 0.3, "model.l2": 1e-4}) == []


def test_border_at_the_keys_own_limit_is_a_note_not_a_warning():
    (finding,) = border_findings([DROPOUT], {"model.dropout": 0.0})
    assert not finding.is_warning and finding.widened is None
    assert "nothing beyond" in finding.message
    # The upper side of dropout may widen, but stays below 1 (the schema's `lt=1`).
    widened = widen_range(ParamRange("model.dropout", "float", 0.3, 0.9), "high", limits=field_limits("model.dropout"))
    assert 0.9 < widened.high < 1.0


def test_widen_range():
    assert widen_range(LR, "low").low == pytest.approx(1e-7)
    assert widen_range(DROPOUT, "high").high == pytest.approx(0.9)
    assert widen_range(LR, "high", include=100.0).high == pytest.approx(100.0)
    batch = ParamRange("train.batch_size", "int", 16, 64)
    assert widen_range(batch, "low", limits=field_limits("train.batch_size")).low == 1
    assert widen_range(ParamRange("train.batch_size", "int", 1, 64), "low", limits=field_limits("train.batch_size")) is None
    assert field_limits("model.dropout") == Limits(0.0, True, 1.0, False)
    with pytest.raises(ValueError, match="side"):
        widen_range(LR, "left")


# ------------------------------------------------------------------ H29: narrowing
def test_narrow_range_is_centred_in_log_space():
    narrowed = narrow_range(LR, [1e-3])
    # One best value: +-10 % of the 4-decade width, i.e. 0.4 decades each side, on the log scale.
    assert narrowed.low == pytest.approx(10 ** -3.4) and narrowed.high == pytest.approx(10 ** -2.6)
    assert narrowed.log
    spread = narrow_range(LR, [1e-4, 1e-3, 3e-4])
    assert LR.low <= spread.low < 1e-4 and 1e-3 < spread.high <= LR.high
    assert spread.width_u < LR.width_u
    # Never leaves the old range.
    edge = narrow_range(LR, [0.1, 0.09])
    assert edge.high == pytest.approx(0.1) and edge.low > LR.low


def test_narrow_linear_int_and_choices():
    narrowed = narrow_range(DROPOUT, [0.3, 0.2])
    assert narrowed.low == pytest.approx(0.2 - 0.06) and narrowed.high == pytest.approx(0.3 + 0.06)
    ints = narrow_range(ParamRange("train.batch_size", "int", 16, 256), [64, 70])
    assert isinstance(ints.low, int) and 16 <= ints.low <= 64 and 70 <= ints.high <= 256
    opt = ParamRange("optimizer.name", "choice", choices=("sgd", "adam", "rmsprop"))
    assert narrow_choices(opt, ["adam", "rmsprop", "adam"]).choices == ("adam", "rmsprop")
    assert narrow_choices(opt, []).choices == opt.choices


def test_next_ranges_narrow_around_the_top_trials_and_widen_at_a_border():
    trials = [
        {"values": {"optimizer.learning_rate": 1e-3, "model.dropout": 0.58}, "score": 0.9, "epochs": 1},
        {"values": {"optimizer.learning_rate": 2e-3, "model.dropout": 0.5}, "score": 0.8, "epochs": 1},
        {"values": {"optimizer.learning_rate": 5e-4, "model.dropout": 0.45}, "score": 0.7, "epochs": 1},
        {"values": {"optimizer.learning_rate": 5e-2, "model.dropout": 0.1}, "score": 0.1, "epochs": 1},
        {"values": {"optimizer.learning_rate": 1e-5, "model.dropout": 0.0}, "score": None, "epochs": 1},
    ]
    (lr, dropout), findings = next_ranges([LR, DROPOUT], trials, "max", top_k=3)
    assert 1e-5 < lr.low < 5e-4 and 2e-3 < lr.high < 1e-1  # narrowed around the top 3
    assert [f.key for f in findings] == ["model.dropout"]   # best dropout 0.58: upper border
    assert dropout.high == pytest.approx(0.9) and dropout.low > 0.3
    # Minimizing a loss ranks the other way round.
    (lr_min, _), _ = next_ranges([LR, DROPOUT], trials, "min", top_k=1)
    assert lr_min.low < 5e-2 < lr_min.high


def test_rank_trials_compares_only_the_longest_trials():
    trials = [{"score": 0.99, "epochs": 1}, {"score": 0.5, "epochs": 5}, {"score": 0.7, "epochs": 5},
              {"score": float("nan"), "epochs": 5}, {"score": None, "epochs": 9}]
    assert [t["score"] for t in rank_trials(trials)] == [0.7, 0.5]
    assert [t["score"] for t in rank_trials(trials, "min")] == [0.5, 0.7]
    assert rank_trials([{"score": None, "epochs": 1}]) == []


# ------------------------------------------------------------------ H25, H31: space and baseline
def test_default_space_is_what_matters_most():
    ranges = resolve_space(RunConfig())
    assert [r.key for r in ranges] == list(DEFAULT_SPACE) == ["optimizer.learning_rate", "model.l2", "model.dropout"]
    assert ranges[0].log and ranges[1].log and not ranges[2].log


def test_space_keys_types_and_choices():
    cfg = loads_config("""
[search.space."train.batch_size"]
low = 16
high = 256
log = true
[search.space."optimizer.name"]
choices = ["sgd", "adam"]
[search.space."optimizer.momentum"]
choices = [0, 0.9]
[search.space."model.batch_norm"]
choices = [true, false]
""")
    batch, name, momentum, bn = resolve_space(cfg)
    assert batch.kind == "int" and batch.log and (batch.low, batch.high) == (16, 256)
    assert name.kind == "choice" and name.choices == ("sgd", "adam")
    assert momentum.choices == (0.0, 0.9) and all(isinstance(c, float) for c in momentum.choices)
    assert bn.choices == (True, False)


@pytest.mark.parametrize(
    "toml, needle",
    [
        ('[search.space."optimizer.lr"]\nlow = 1e-5\nhigh = 1e-1', "`optimizer` has no key `lr`"),
        ('[search.space."optimiser.learning_rate"]\nlow = 1e-5\nhigh = 1e-1', "no config section `optimiser`"),
        ('[search.space."learning_rate"]\nlow = 1e-5\nhigh = 1e-1', "section.key"),
        ('[search.space."model.dropout"]\nlow = 0.1\nhigh = 1.5', "high = 1.5 is not a valid `model.dropout`"),
        ('[search.space."model.hidden"]\nlow = 1\nhigh = 9', "cannot be searched"),
        ('[search.space."model.batch_norm"]\nlow = 0\nhigh = 1', "choices"),
        ('[search.space."train.epochs"]\nlow = 1.5\nhigh = 9', "whole numbers"),
        ('[search.space."optimizer.name"]\nchoices = ["adam", "lion"]', "'lion' is not a valid `optimizer.name`"),
        ('[search.space."search.trials"]\nlow = 1\nhigh = 9', "no config section `search`"),
        ('[search.space."train.steps_per_execution"]\nchoices = [1, "auto"]', "one type"),
    ],
)
def test_bad_space_is_one_config_error(toml, needle):
    with pytest.raises(ConfigError) as info:
        resolve_space(loads_config(toml))
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "toml, needle",
    [
        ('[search.space."model.dropout"]\nlow = 0.5\nhigh = 0.1', "`low` must be less than `high`"),
        ('[search.space."model.l2"]\nlow = 0\nhigh = 0.1\nlog = true', "log range needs `low` > 0"),
        ('[search.space."model.l2"]\nlow = 0.1', "needs `low` and `high`"),
        ('[search.space."model.l2"]\nlow = 0.1\nhigh = 1\nchoices = [1]', "not both"),
        ("[[search.stages]]\nepochs = 0\ntrials = 3", "greater than 0"),
    ],
)
def test_bad_search_section_is_rejected_by_the_schema(toml, needle):
    with pytest.raises(ConfigError, match=None) as info:
        loads_config(toml)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_stages_coarse_to_fine():
    cfg = RunConfig()
    cfg.train.epochs, cfg.search.trials = 20, 12
    assert [(s.epochs, s.trials, s.label) for s in resolve_stages(cfg)] == [(20, 12, "asha")]  # the default
    cfg.search.algorithm = "random"
    assert [(s.epochs, s.trials) for s in resolve_stages(cfg)] == [(1, 12), (5, 6), (20, 3)]
    cfg.train.epochs = 3
    assert [(s.epochs, s.trials) for s in resolve_stages(cfg)] == [(1, 12), (3, 3)]
    cfg.search.algorithm = "hyperband"
    assert [(s.epochs, s.label) for s in resolve_stages(cfg)] == [(3, "hyperband")]
    cfg.search.stages = [SearchConfig.Stage(epochs=2, trials=4)]
    assert [(s.epochs, s.trials) for s in resolve_stages(cfg)] == [(2, 4)]


def test_baseline_is_the_configs_own_values():
    cfg = load_config(Path(__file__).resolve().parent.parent / "resources/configs/digits_search.toml")
    values, notes = baseline_values(cfg, resolve_space(cfg))
    assert values == {"optimizer.learning_rate": 1e-3, "model.l2": 1e-4, "model.dropout": 0.2}  # Adam's default
    assert notes == []
    values, notes = baseline_values(RunConfig(), resolve_space(RunConfig()))  # l2 = 0 has no log
    assert values["model.l2"] == 1e-6 and "model.l2" in notes[0]


def test_apply_values_validates_and_ignores_tuner_keys():
    cfg = apply_values(RunConfig(), {"optimizer.learning_rate": 0.02, "train.batch_size": 31.6,
                                     "tuner/epochs": 3}, epochs=4)
    assert cfg.optimizer.learning_rate == 0.02 and cfg.train.batch_size == 32 and cfg.train.epochs == 4
    with pytest.raises(ConfigError, match="model.dropout"):
        apply_values(RunConfig(), {"model.dropout": 1.2})


@pytest.mark.parametrize("algorithm", ["random", "grid", "bayesian", "hyperband"])
def test_every_oracle_starts_from_the_config(algorithm, tmp_path):
    from kerasguide.search.oracle import build_hyperparameters, make_oracle

    base = {"optimizer.learning_rate": 1e-3, "model.dropout": 0.2}
    hp = build_hyperparameters([LR, DROPOUT], base, grid_points=3 if algorithm == "grid" else None)
    oracle = make_oracle(algorithm, hp, "val_accuracy", "max", trials=5, seed=3, max_epochs=4)
    oracle._set_project_dir(str(tmp_path), "p")
    first = oracle.create_trial("t0")
    values = {k: v for k, v in first.hyperparameters.values.items() if not k.startswith("tuner/")}
    assert values == base
    if algorithm == "grid":  # grid points: 3 per key, log-spaced for the learning rate
        assert sorted(hp.space[0].values) == pytest.approx([1e-5, 1e-3, 1e-1], rel=1e-6)


# ------------------------------------------------------------------ real searches
def _state(path: Path) -> dict:
    return json.loads((path / "search.json").read_text())


def test_tiny_search_end_to_end(tmp_path):
    from kerasguide.search import tune

    cfg = _tiny(stages=[{"epochs": 1, "trials": 2}, {"epochs": 2, "trials": 2}], widen_on_border=False)
    result = tune(cfg, out=tmp_path)
    assert result.status == "completed" and not result.resumed
    path = result.path
    assert path.parent == tmp_path and path.name.endswith("-tiny-search")
    state = _state(path)
    assert state["status"] == "completed" and [s["epochs"] for s in state["stages"]] == [1, 2]
    stage1, stage2 = state["stages"]
    assert len(stage1["trials"]) == 2 and len(stage2["trials"]) == 2
    # H31: the first trial of each stage is the config as given.
    for stage in state["stages"]:
        first = stage["trials"][0]
        assert first["baseline"] and first["values"]["optimizer.learning_rate"] == 1e-2
        assert first["values"]["model.dropout"] == 0.0
    # Stage 2's ranges come from stage 1's best trials (narrowed, or widened at a border).
    assert stage2["ranges"] != stage1["ranges"]
    for stage in state["stages"]:
        for trial in stage["trials"]:
            assert trial["status"] == "completed" and 0 < trial["score"] <= 1
            run = path / trial["run_dir"]
            assert json.loads((run / "run.json").read_text())["status"] == "completed"
            run_cfg = load_config(run / "config.toml")
            assert run_cfg.train.epochs == stage["epochs"] and not run_cfg.checks.enabled
            assert run_cfg.optimizer.learning_rate == pytest.approx(trial["values"]["optimizer.learning_rate"])
            # H30: the checkpoint's file name carries the validation score.
            assert trial["checkpoint"].endswith(f"val_accuracy={trial['score']:.4f}.keras")
            assert (run / "checkpoints" / trial["checkpoint"]).is_file()
    # The best is among the longest (2-epoch) trials; best.toml holds its values.
    best = state["best"]
    assert best["epochs"] == 2 and best["score"] == max(t["score"] for t in stage2["trials"])
    best_cfg = load_config(path / "best.toml")
    for key, value in best["values"].items():
        section, name = key.split(".")
        assert getattr(getattr(best_cfg, section), name) == pytest.approx(value)
    assert best_cfg.train.epochs == cfg.train.epochs
    report = (path / "search.md").read_text()
    assert "## Stage 1 (coarse)" in report and "| 0 (baseline) |" in report and "search.png" in report
    assert (path / "search.png").stat().st_size > 5000
    assert (path / "tuner" / "stage1" / "oracle.json").is_file()  # keras-tuner's own state
    # The desktop app's runs browser lists the search directory, its best trial, then its trials.
    from kerasguide.rundir import list_runs

    group, *trials = list_runs(tmp_path, nested=True)
    assert group.path == path and group.kind == "search" and group.status == "completed"
    assert group.best["value"] == best["score"] and group.best["trial"] == best["trial_id"]
    assert group.best["run_dir"] == str((path / best["run_dir"]).resolve())
    assert len(trials) == 4 and all(t.parent == path and t.status == "completed" for t in trials)


def test_search_resumes_where_it_stopped(tmp_path, monkeypatch):
    from kerasguide.search import tune
    from kerasguide.search.tuner import SearchTuner

    cfg = _tiny("resume", stages=[{"epochs": 1, "trials": 3}], widen_on_border=False)
    original = SearchTuner.on_trial_end
    ended = []

    def stop_after_two(self, trial):
        original(self, trial)
        ended.append(trial.trial_id)
        if len(ended) == 2:
            raise KeyboardInterrupt  # as Ctrl-C would, between two trials

    monkeypatch.setattr(SearchTuner, "on_trial_end", stop_after_two)
    first = tune(cfg, out=tmp_path)
    assert first.status == "interrupted"
    assert _state(first.path)["status"] == "interrupted"
    runs_before = sorted(p.name for p in (first.path / "trials").iterdir())
    assert len(runs_before) == 2
    monkeypatch.setattr(SearchTuner, "on_trial_end", original)

    second = tune(cfg, out=tmp_path)
    assert second.resumed and second.path == first.path and second.status == "completed"
    state = _state(second.path)
    assert [t["trial_id"] for t in state["stages"][0]["trials"]] == ["0", "1", "2"]
    runs_after = sorted(p.name for p in (second.path / "trials").iterdir())
    assert len(runs_after) == 3 and set(runs_before) <= set(runs_after)  # trials 0, 1 not run again
    # A finished search is not run again.
    again = tune(cfg, out=tmp_path)
    assert again.resumed and again.status == "completed" and len(list((again.path / "trials").iterdir())) == 3


def test_border_best_runs_one_more_stage_with_the_range_widened(tmp_path):
    from kerasguide.search import tune

    # Learning rates from 1e-5 to 1e-3 with 1 epoch: the largest is best, on the upper border.
    cfg = _tiny("border", stages=[{"epochs": 1, "trials": 2}])
    cfg.optimizer.learning_rate = 9e-4
    cfg.search.space = {"optimizer.learning_rate": SearchConfig.Param(low=1e-5, high=1e-3, log=True)}
    result = tune(cfg, out=tmp_path)
    state = _state(result.path)
    assert [s["label"] for s in state["stages"]] == ["single", "widened"]
    assert result.warnings and "upper edge" in result.warnings[0] and "optimizer.learning_rate" in result.warnings[0]
    widened = state["stages"][1]["ranges"][0]
    assert widened["low"] == pytest.approx(1e-5) and widened["high"] == pytest.approx(1e-2)
    drawn = [t["values"]["optimizer.learning_rate"] for t in state["stages"][1]["trials"] if not t["baseline"]]
    assert drawn and all(1e-5 <= lr <= 1e-2 for lr in drawn)


def test_hyperband_trials_train_for_tuner_epochs(tmp_path):
    from kerasguide.search import tune

    cfg = _tiny("hb", algorithm="hyperband", hyperband_factor=2, widen_on_border=False)
    cfg.search.space = {"optimizer.learning_rate": SearchConfig.Param(low=1e-4, high=1e-1, log=True)}
    result = tune(cfg, out=tmp_path)
    assert result.status == "completed"
    trials = _state(result.path)["stages"][0]["trials"]
    epochs = sorted({t["epochs"] for t in trials})
    assert epochs == [1, 2]  # successive halving: short trials first, the best trained longer
    for trial in trials:
        assert load_config(result.path / trial["run_dir"] / "config.toml").train.epochs == trial["epochs"]
    assert result.best["epochs"] == 2


# ------------------------------------------------------------------ H30: workers, CLI
def test_cli_tune_with_two_worker_processes(tmp_path):
    cfg = _tiny("cli", workers=2, engine="process", stages=[{"epochs": 1, "trials": 2}], widen_on_border=False)
    from kerasguide.config import save_config

    save_config(cfg, tmp_path / "search.toml")
    proc = run_cli("tune", str(tmp_path / "search.toml"), "--out", str(tmp_path / "out"), "--json-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout is JSON lines only
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and events[-1]["status"] == "completed"
    done = [e for e in events if e["event"] == "trial" and e["status"] == "completed"]
    assert len(done) == 2 and all(e["score"] > 0 for e in done)
    path = Path(events[-1]["search_dir"])
    state = _state(path)
    assert {t["worker"] for t in state["stages"][0]["trials"]} == {"process"}
    # Two workers ran at once: some trial started before another ended.
    begins = [i for i, e in enumerate(events) if e["event"] == "trial" and e["status"] == "running"]
    ends = [i for i, e in enumerate(events) if e["event"] == "trial" and e["status"] != "running"]
    assert begins[1] < ends[0]
    assert (path / "tuner" / "stage1" / "trial_0" / "worker.log").is_file()
    assert "best config" in proc.stderr and (path / "best.toml").is_file()


def test_worker_past_its_timeout_is_killed(tmp_path):
    from kerasguide.search import tune

    cfg = _tiny("timeout", workers=1, engine="process", trial_timeout=1.0, stages=[{"epochs": 1, "trials": 2}],
                widen_on_border=False)
    started = time.perf_counter()
    result = tune(cfg, out=tmp_path)
    assert time.perf_counter() - started < 60
    assert result.status == "failed" and "no trial produced a score" in result.error
    trials = _state(result.path)["stages"][0]["trials"]
    assert [t["status"] for t in trials] == ["timeout", "timeout"]
    assert "trial_timeout" in trials[0]["error"]
    for trial_dir in (result.path / "tuner" / "stage1").glob("trial_*"):
        assert (trial_dir / "worker.log").is_file()
    # No worker left behind.
    for trial in trials:
        with pytest.raises(ProcessLookupError):
            os.kill(trial["pid"], 0)


@pytest.mark.parametrize(
    "toml, needle",
    [
        ('[search.space."optimizer.lr"]\nlow = 1e-5\nhigh = 1e-1', "no key `lr`"),
        ('[search.space."model.dropout"]\nlow = 0.1\nhigh = 1.5', "model.dropout"),
        ('[search.space."model.dropout"]\nlow = 0.5\nhigh = 0.1', "must be less than"),
    ],
)
def test_cli_bad_space_is_exit_2_with_one_line(toml, needle, tmp_path, capsys):
    from kerasguide.cli import main

    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert main(["tune", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("kerasguide: error:")
    assert not (tmp_path / "out").exists()


def test_public_api_and_the_pure_parts_need_no_tensorflow():
    import subprocess
    import sys

    import kerasguide

    assert callable(kerasguide.tune) and kerasguide.SearchResult and kerasguide.SearchTuner
    assert math.isclose(LR.position(1e-3), 0.5)
    code = ("import sys\nfrom kerasguide.search import border_side, narrow_range, resolve_space\n"
            "print('TF' if 'tensorflow' in sys.modules else 'NOTF')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "NOTF", out.stderr  # the desktop app can validate a space


def test_an_error_metric_objective_is_minimized():
    # The planted bug: `val_mae` (a regression's error) read as a score to maximize.
    from kerasguide.search.space import objective_of

    for metric, direction in (("val_loss", "min"), ("val_mae", "min"), ("val_rmse", "min"),
                              ("val_accuracy", "max"), ("val_top3_accuracy", "max")):
        cfg = _tiny(objective=metric)
        assert objective_of(cfg) == (metric, direction)


def test_in_process_trials_collect_their_models_with_what_came_before_frozen(tmp_path, monkeypatch):
    """The search freezes what lived before its first trial (each trial's collection then skips it), unfreezes it
    at its end, and each trial's model is still collected by the next trial's clear_session."""
    import gc
    import weakref

    from kerasguide.search import tune
    from kerasguide.spine.stages import model as model_stage

    built, seen = [], []
    original = model_stage.build_model

    def build(*args, **kwargs):
        seen.append((gc.get_freeze_count() > 0, [ref() is None for ref in built]))
        model = original(*args, **kwargs)
        built.append(weakref.ref(model))
        return model

    monkeypatch.setattr(model_stage, "build_model", build)
    before = gc.get_freeze_count()
    result = tune(_tiny(stages=[{"epochs": 1, "trials": 3}], widen_on_border=False), out=tmp_path)
    assert result.status == "completed" and len(seen) == 3
    assert all(frozen for frozen, _ in seen)  # every trial ran with the earlier objects frozen
    assert all(all(dead) for _, dead in seen)  # and the trials before it had been collected
    assert gc.get_freeze_count() == before  # nothing left frozen after the search
