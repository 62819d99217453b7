"""Auto-repair (`kerasguide fix`): the pure mapping code by code, the chain on real tiny runs, bad input."""

from __future__ import annotations

import json

import pytest
from conftest import cli_in_process

from kerasguide.config import RunConfig, dump_config
from kerasguide.repair import REPAIRS, Repair, apply_repair, config_diff, plan_repair


def F(code, severity="warning", caused_by=None, **evidence):
    return {"code": code, "severity": severity, "caused_by": caused_by, "evidence": evidence}


def cfg(**changes) -> RunConfig:
    config = RunConfig()
    config.optimizer.learning_rate = 1e-3
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    return config


# ------------------------------------------------------------ the mapping, code by code
def test_a_fixed_rate_too_high_or_too_low_makes_way_for_the_range_test():
    for code, severity in (("diverged", "error"), ("lr_too_high", "warning"), ("update_ratio_high", "warning"),
                           ("lr_too_low", "warning"), ("update_ratio_low", "warning")):
        repair = plan_repair(cfg(optimizer__name="sgd", optimizer__learning_rate=5.0), [F(code, severity)])
        assert repair.changes == {"optimizer.learning_rate": (5.0, "auto")}, code
        assert repair.acted_on == [code] and "G24" in repair.reasons[0]


def test_a_range_tested_rate_is_divided_by_10_after_an_error_by_3_after_a_warning_and_raised_x10():
    record = {"lr_find": {"chosen": 0.03}}
    auto = cfg(optimizer__learning_rate="auto")
    assert plan_repair(auto, [F("diverged", "error")], record).changes["optimizer.learning_rate"] == ("auto", 0.003)
    assert plan_repair(auto, [F("lr_too_high")], record).changes["optimizer.learning_rate"] == ("auto", 0.01)
    assert plan_repair(auto, [F("lr_too_low")], record).changes["optimizer.learning_rate"] == ("auto", 0.3)
    # No rate recorded: nothing to divide; said, not guessed.
    none = plan_repair(auto, [F("lr_too_high")], {})
    assert not none and "set optimizer.learning_rate by hand" in none.cannot[0]


def test_one_rate_change_a_round_the_error_first():
    findings = [F("update_ratio_high"), F("lr_too_high", "error"), F("diverged", "error"), F("not_learning", "error")]
    repair = plan_repair(cfg(optimizer__learning_rate="auto"), findings, {"lr_find": {"chosen": 0.1}})
    assert repair.changes == {"optimizer.learning_rate": ("auto", 0.01)}
    assert set(repair.acted_on) == {"update_ratio_high", "lr_too_high", "diverged", "not_learning"}


def test_high_update_ratios_under_a_strong_penalty_lighten_it_not_the_rate():
    heavy = cfg(model__l2=0.05)
    assert plan_repair(heavy, [F("update_ratio_high"), F("lr_too_high")]).changes == {"model.l2": (0.05, 1e-4)}
    # A divergence is the rate's, whatever the penalty.
    assert plan_repair(heavy, [F("lr_too_high", "error")]).changes == {"optimizer.learning_rate": (1e-3, "auto")}


def test_dead_units_biases_then_he_then_a_lower_rate():
    assert plan_repair(cfg(model__bias_init=-5.0), [F("dead_units")]).changes == {"model.bias_init": (-5.0, 0.0)}
    assert plan_repair(cfg(model__kernel_initializer="normal"), [F("dead_units")]).changes == {
        "model.kernel_initializer": ("normal", "he_normal")}
    # He and zero biases already: the rate kills them.
    assert plan_repair(cfg(), [F("dead_units")]).changes == {"optimizer.learning_rate": (1e-3, "auto")}
    # ReLU's small positive bias (B7) is kept.
    assert not plan_repair(cfg(model__bias_init=0.01), [F("dead_units")]).changes.get("model.bias_init")


def test_saturated_units_glorot_then_batch_norm():
    tanh = cfg(model__activation="tanh", model__kernel_initializer="normal", model__init_stddev=3.0)
    assert plan_repair(tanh, [F("saturated_units")]).changes == {"model.kernel_initializer": ("normal", "glorot_normal")}
    glorot = cfg(model__activation="tanh", model__kernel_initializer="glorot_uniform")
    assert plan_repair(glorot, [F("saturated_units")]).changes == {"model.batch_norm": (False, True)}


def test_vanishing_gradients_relus_for_a_deep_sigmoid_net_glorot_for_a_shallow_one_and_the_rate_waits():
    deep = cfg(model__activation="sigmoid", model__kernel_initializer="normal", model__init_stddev=0.01,
               model__hidden=[64] * 6)
    findings = [F("not_learning", "error"), F("lr_too_high"), F("update_ratio_high"), F("vanishing_gradients")]
    repair = plan_repair(deep, findings)
    assert repair.changes == {"model.activation": ("sigmoid", "relu"),
                              "model.kernel_initializer": ("normal", "he_normal")}
    assert any("waits for the next round" in r for r in repair.reasons)
    shallow = cfg(model__activation="tanh", model__kernel_initializer="normal", model__hidden=[64, 64])
    assert plan_repair(shallow, [F("vanishing_gradients")]).changes == {
        "model.kernel_initializer": ("normal", "glorot_normal")}
    glorot = cfg(model__activation="tanh", model__kernel_initializer="glorot_normal", model__hidden=[64, 64])
    assert plan_repair(glorot, [F("vanishing_gradients")]).changes == {"model.batch_norm": (False, True)}
    # Dead ReLUs pass no gradient: vanishing is theirs.
    assert plan_repair(cfg(model__bias_init=-5.0), [F("vanishing_gradients"), F("dead_units")]).changes == {
        "model.bias_init": (-5.0, 0.0)}


def test_exploding_gradients_clip_and_initialize():
    repair = plan_repair(cfg(model__kernel_initializer="normal", model__init_stddev=5.0), [F("exploding_gradients")])
    assert repair.changes == {"model.kernel_initializer": ("normal", "he_normal"),
                              "optimizer.global_clipnorm": (None, 1.0)}


def test_initial_loss_off_biases_and_init_else_says_check_the_data():
    repair = plan_repair(cfg(model__bias_init=3.0, model__activation="tanh", model__kernel_initializer="he_normal"),
                         [F("initial_loss_off", "error")])
    assert repair.changes == {"model.bias_init": (3.0, 0.0), "model.kernel_initializer": ("he_normal", "glorot_normal")}
    sound = plan_repair(cfg(), [F("initial_loss_off", "error")])
    assert not sound and "check the preprocessing and the labels" in sound.cannot[0]


def test_not_learning_follows_its_evidence():
    assert plan_repair(cfg(), [F("not_learning", "error", update_ratio=1e-7)]).changes == {
        "optimizer.learning_rate": (1e-3, "auto")}
    assert plan_repair(cfg(model__kernel_initializer="zeros"), [F("not_learning", "error")]).changes == {
        "model.kernel_initializer": ("zeros", "he_normal")}
    auto = plan_repair(cfg(optimizer__learning_rate="auto"), [F("not_learning", "error")], {"lr_find": {"chosen": .01}})
    assert not auto and "labels" in auto.cannot[0]


def test_underfitting_regularize_less_else_wider():
    heavy = plan_repair(cfg(model__l2=0.05, model__dropout=0.6), [F("underfitting")])
    assert heavy.changes == {"model.dropout": (0.6, 0.2), "model.l2": (0.05, 1e-4)}
    held_back = plan_repair(cfg(model__dropout=0.2), [F("underfitting", gap=-0.06)])
    assert held_back.changes == {"model.dropout": (0.2, 0.0)}
    small = plan_repair(cfg(model__hidden=[3], model__dropout=0.2), [F("underfitting", gap=-0.05)])
    assert small.changes == {"model.hidden": ([3], [64])}
    assert plan_repair(cfg(model__hidden=[100, 50]), [F("underfitting")]).changes == {
        "model.hidden": ([100, 50], [200, 100])}


def test_overfitting_regularize_more_and_says_more_data_is_no_config_change():
    repair = plan_repair(cfg(model__dropout=0.0, model__l2=0.0, data__subset=100), [F("overfitting")])
    assert repair.changes == {"model.dropout": (0.0, 0.3), "model.l2": (0.0, 1e-4)}
    assert "more data" in repair.cannot[0] and "data.subset = 100" in repair.cannot[0]
    most = plan_repair(cfg(model__dropout=0.5, model__l2=1e-2), [F("overfitting")])
    assert most.changes == {"train.early_stopping_patience": (None, 5)}


def test_noisy_loss_plateau_and_the_labels():
    assert plan_repair(cfg(train__batch_size=2), [F("noisy_loss")]).changes == {"train.batch_size": (2, 4)}
    assert plan_repair(cfg(), [F("plateau", "info")]).changes == {"schedule.reduce_on_plateau": (False, True)}
    assert not plan_repair(cfg(schedule__kind="one_cycle"), [F("plateau", "info")])  # one-cycle decays already
    labels = plan_repair(cfg(), [F("labels_not_learnable", "error"), F("not_learning", "error")])
    assert not labels and "cannot be fixed by a config change: check the labels" in labels.cannot[0]


def test_a_consequence_is_repaired_with_its_cause():
    findings = [F("lr_too_high", "error"), F("dead_units", caused_by="lr_too_high"),
                F("vanishing_gradients", caused_by="lr_too_high")]
    repair = plan_repair(cfg(model__kernel_initializer="normal"), findings)
    assert repair.changes == {"optimizer.learning_rate": (1e-3, "auto")}  # no init change for the consequences
    assert any("explained by lr_too_high" in r for r in repair.reasons)


def test_every_code_of_the_vocabulary_has_a_repair_in_words():
    from kerasguide.diagnosis import CODES

    assert set(CODES) - set(REPAIRS) <= {"cannot_overfit", "check_failed", "run_stopped", "killed"}  # no config change


def test_a_python_builder_changes_only_what_reaches_it():
    own = cfg(model__kind="python:my_model.py:build", model__hp={"units": 8, "act": "relu"})
    small = plan_repair(own, [F("underfitting")])
    assert small.changes == {"model.hp.units": (8, 64)}
    dead = plan_repair(own, [F("dead_units")], {})
    assert dead.changes == {"optimizer.learning_rate": (1e-3, "auto")}  # the rate still reaches it
    sat = plan_repair(cfg(model__kind="python:my_model.py:build", model__activation="tanh",
                          model__kernel_initializer="normal"), [F("saturated_units")])
    assert not sat and "builds its own model" in sat.cannot[0] and "my_model.py:build" in sat.cannot[0]
    compiled = plan_repair(own, [F("lr_too_high")], {"own_compile": True})
    assert not compiled and "comes compiled with its own optimizer" in compiled.cannot[0]


def test_apply_repair_validates_and_diffs():
    config = cfg(model__bias_init=-5.0)
    repair = plan_repair(config, [F("dead_units")])
    fixed = apply_repair(config, repair)
    assert fixed.model.bias_init == 0.0 and config.model.bias_init == -5.0
    assert config_diff(config, fixed) == {"model.bias_init": (-5.0, 0.0)}
    assert Repair.from_dict(json.loads(json.dumps(repair.to_dict()))) == repair
    from kerasguide.errors import ConfigError

    with pytest.raises(ConfigError):
        apply_repair(config, Repair({"model.dropout": (0.0, 2.0)}))


# ------------------------------------------------------------ the chain, end to end
def _tiny_toml(tmp_path, **changes) -> str:
    config = RunConfig()
    config.name = "tiny-fix"
    config.model.hidden = [32]
    config.model.dropout = 0.0
    config.train.epochs = 4
    config.train.batch_size = 64
    config.checks.enabled = False
    config.lr_find.steps = 40
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    path = tmp_path / "planted.toml"
    path.write_text(dump_config(config))
    return str(path)


def test_fix_repairs_a_diverging_sgd_rate_and_records_the_chain(tmp_path):
    from kerasguide.repair import fix_run
    from kerasguide.rundir import RunDir
    from kerasguide.spine import run

    planted = run(_tiny_toml(tmp_path, optimizer__name="sgd", optimizer__learning_rate=20.0), out=tmp_path / "runs",
                  verbose=0)
    assert planted.status == "diverged"
    lines = []
    result = fix_run(planted.path, rounds=2, progress=lines.append)
    assert result.outcome == "fixed", (result.message, lines)
    assert len(result.runs) == 2 and result.runs[0] == planted.path  # one round was enough
    repaired = RunDir(result.last).read_run()
    assert repaired["status"] == "completed" and repaired["parent"] == str(planted.path)
    assert repaired["repair"]["changes"] == {"optimizer.learning_rate": [20.0, "auto"]}
    assert repaired["final_metrics"]["val_accuracy"] > 0.85
    fix = json.loads((result.last / "fix.json").read_text())
    assert [r["status"] for r in fix["runs"]] == ["diverged", "completed"]
    assert fix["rounds"][0]["diff"] == {"optimizer.learning_rate": [20.0, "auto"]}
    text = (result.last / "fix.md").read_text()
    assert "| `optimizer.learning_rate` | 20.0000 | auto |" in text and "original" in text and "round 1" in text
    assert (result.last / "fix.png").stat().st_size > 1000
    assert any(line.startswith("round 1: ") for line in lines)


def test_cli_fix_says_nothing_to_fix_and_bad_input_in_one_line(tmp_path, capsys):
    from kerasguide.spine import run

    healthy = run(_tiny_toml(tmp_path, optimizer__learning_rate=3e-3, train__epochs=6), out=tmp_path / "runs",
                  verbose=0)
    (healthy.path / "diagnosis.json").write_text(json.dumps({"format_version": 1, "findings": []}))
    done = cli_in_process(capsys, "fix", str(healthy.path))
    assert done.returncode == 0 and "nothing to fix" in done.stdout, done.stderr[-2000:]
    for args, words in (([str(tmp_path / "nowhere")], "no such run directory"),
                        ([str(tmp_path)], "not a kerasguide run directory"),
                        ([str(healthy.path), "--rounds", "0"], "--rounds must be >= 1")):
        bad = cli_in_process(capsys, "fix", *args)
        assert bad.returncode == 2 and words in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    (healthy.path / "config.toml").unlink()
    bad = cli_in_process(capsys, "fix", str(healthy.path))
    assert bad.returncode == 2 and "no config.toml" in bad.stderr


def test_fix_says_what_it_cannot_change_and_stops(tmp_path):
    from kerasguide.repair import fix_run
    from kerasguide.spine import run

    planted = run(_tiny_toml(tmp_path, train__epochs=2), out=tmp_path / "runs", verbose=0)
    (planted.path / "diagnosis.json").write_text(json.dumps({"format_version": 1, "findings": [
        {"code": "labels_not_learnable", "severity": "error", "evidence": {}, "advice": "", "recipe": "D14"}]}))
    result = fix_run(planted.path)
    assert result.outcome == "cannot_change" and not result.rounds and result.runs == [planted.path]
    assert "check the labels" in result.cannot[0]
