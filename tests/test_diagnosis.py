"""The diagnosis rules on synthetic signals (no TensorFlow): each rule fires on its pathology only."""

from __future__ import annotations

import json
import math
import sys

import pytest

from kerasguide.diagnosis import (
    CODES,
    Finding,
    Signals,
    Thresholds,
    diagnose,
    findings_markdown,
    format_findings,
    load_signals,
    measure,
    read_diagnosis,
    write_diagnosis,
)
from kerasguide.report import diagnosis_section
from kerasguide.rundir import RunDir

LN10 = math.log(10)


# ------------------------------------------------------------ synthetic runs
def curve(epochs=20, start=LN10, final=0.05, acc_final=0.99, val_acc_final=0.97, val_floor=0.1, rise=0.0):
    """metrics.csv rows of a run whose loss decays exponentially from `start` to `final`."""
    rows = []
    for e in range(1, epochs + 1):
        frac = (e - 1) / max(epochs - 1, 1)
        loss = start * (final / start) ** min(1.0, frac * 1.5)
        acc = 0.1 + (acc_final - 0.1) * min(1.0, frac * 1.5)
        val_acc = 0.1 + (val_acc_final - 0.1) * min(1.0, frac * 1.5)
        val_loss = max(loss, val_floor) * (1 + rise * frac)
        rows.append({"epoch": e, "loss": loss, "val_loss": val_loss, "accuracy": acc, "val_accuracy": val_acc,
                     "lr": 1e-3, "seconds": 0.1})
    return rows


def ratios(value, epochs=20):
    return [{"epoch": e, "steps": 20, "median": value, "layers": {"dense": value, "output": value}}
            for e in range(1, epochs + 1)]


def losses(noise, epochs=3, steps=50, level=2.0):
    import random

    rng = random.Random(0)
    out = []
    for e in range(1, epochs + 1):
        batch = [level * math.exp(rng.gauss(0.0, noise)) for _ in range(steps)]
        out.append({"epoch": e, "losses": batch, "noise": _noise(batch), "mean": sum(batch) / len(batch)})
    return out


def _noise(values):
    diffs = [math.log(b) - math.log(a) for a, b in zip(values, values[1:], strict=False)]
    mean = sum(diffs) / len(diffs)
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / len(diffs)) / math.sqrt(2)


def probe(dead=0.0, saturated=0.0, kind="relu", grad_first=1e-3, grad_last=1e-2, epochs=3):
    records = []
    for e in range(1, epochs + 1):
        records.append({"epoch": e, "loss": 1.0, "order": ["dense", "dense_1", "output"], "layers": {
            "activation": {"kind": kind, "dead_fraction": dead, "saturated_fraction": saturated, "act_std": 1.0},
            "dense": {"grad_rms": grad_first, "grad_norm": 1.0, "weight_rms": 0.1, "weight_norm": 1.0},
            "dense_1": {"grad_rms": grad_first, "grad_norm": 1.0, "weight_rms": 0.1, "weight_norm": 1.0},
            "output": {"grad_rms": grad_last, "grad_norm": 1.0, "weight_rms": 0.1, "weight_norm": 1.0},
        }})
    return records


def healthy(**changes) -> Signals:
    signals = Signals(epochs=curve(), num_classes=10, update_ratio=ratios(1e-3), loss=losses(0.05), probe=probe())
    for key, value in changes.items():
        setattr(signals, key, value)
    return signals


def struggling(**changes) -> Signals:
    """A run that ends poorly (0.8 train accuracy, flat): where a process problem is worth a warning."""
    return healthy(epochs=curve(final=0.7, acc_final=0.8, val_acc_final=0.78), **changes)


def codes(signals, severities=("warning", "error"), thresholds=None):
    return {f.code for f in diagnose(signals, thresholds) if f.severity in severities}


# ------------------------------------------------------------------ rules
def test_healthy_run_has_no_warning_or_error():
    assert codes(healthy()) == set()


def test_diverged_status_and_nonfinite_loss():
    rows = curve(5)
    rows[-1]["loss"] = math.nan
    found = diagnose(healthy(epochs=rows, update_ratio=ratios(0.5, 5)))
    # One story: the too-high rate first, the divergence its consequence.
    assert [f.code for f in found][:2] == ["lr_too_high", "diverged"]
    assert found[0].severity == "error" and "E16" in found[0].advice and found[0].caused_by is None
    assert found[1].caused_by == "lr_too_high" and found[1].advice.startswith("A consequence of `lr_too_high`")
    guard = {"reason": "the smoothed training loss 12 rose above 4x its start 2.3", "evidence": {"start_loss": 2.3}}
    found = diagnose(healthy(status="diverged", divergence=guard))
    diverged = next(f for f in found if f.code == "diverged")
    assert diverged.evidence["guard_start_loss"] == 2.3 and "4x" in diverged.advice
    # Divergence with modest update ratios (bad data, say) is not blamed on the learning rate.
    assert "lr_too_high" not in codes(healthy(status="diverged", update_ratio=ratios(1e-3)))


def test_lr_too_high_plateau_with_large_updates():
    rows = curve(20, final=1.6, acc_final=0.45, val_acc_final=0.44, val_floor=1.6)
    found = codes(healthy(epochs=rows, update_ratio=ratios(0.2)))
    assert {"lr_too_high", "update_ratio_high"} <= found
    # Adam at 0.1: huge first steps (killing ReLUs), then moderate ones; the loss stays high.
    first_huge = ratios(7e-3)
    first_huge[0]["median"] = 0.1
    assert "lr_too_high" in codes(healthy(epochs=rows, update_ratio=first_huge))
    # The same curve with ratios near 1e-3 is not a learning rate problem.
    assert "lr_too_high" not in codes(healthy(epochs=rows, update_ratio=ratios(1e-3)))


def test_lr_too_low_slow_progress_tiny_updates():
    rows = curve(8, final=2.1, acc_final=0.3, val_acc_final=0.3, val_floor=2.1)
    found = codes(healthy(epochs=rows, update_ratio=ratios(2e-6, 8)))
    assert {"lr_too_low", "update_ratio_low"} <= found
    assert "lr_too_low" not in codes(healthy(epochs=rows, update_ratio=ratios(1e-3, 8)))


def test_update_ratio_thresholds_follow_the_thresholds():
    assert "update_ratio_high" in codes(struggling(update_ratio=ratios(0.05)))
    assert "update_ratio_high" not in codes(struggling(update_ratio=ratios(0.05)),
                                            thresholds=Thresholds(ratio_high=0.1))
    assert "update_ratio_low" in codes(struggling(update_ratio=ratios(1e-6)))
    # The first epoch has its own, higher bar: a tiny output layer grows fast at first.
    first = ratios(1e-3)
    first[0]["median"] = 0.02
    assert "update_ratio_high" not in codes(struggling(update_ratio=first))
    first[0]["median"] = 0.1
    assert "update_ratio_high" in codes(struggling(update_ratio=first))
    # The healthy twin: the same large updates in a run that learned well are information only.
    assert "update_ratio_high" in codes(healthy(update_ratio=ratios(0.05)), severities=("info",))
    assert "update_ratio_high" not in codes(healthy(update_ratio=ratios(0.05)))


def test_overfitting_gap_and_validation_rise():
    rows = curve(30, final=0.001, acc_final=1.0, val_acc_final=0.8, val_floor=0.6, rise=0.5)
    found = diagnose(healthy(epochs=rows))
    over = next(f for f in found if f.code == "overfitting")
    assert over.severity == "warning" and over.evidence["gap"] == pytest.approx(0.2, abs=1e-6)
    assert "E17" in over.advice
    assert "overfitting" not in codes(healthy(epochs=curve(30, acc_final=1.0, val_acc_final=0.95)))
    # Without accuracies, a rising validation loss still shows it.
    bare = [{k: v for k, v in r.items() if "accuracy" not in k} for r in rows]
    assert "overfitting" in codes(healthy(epochs=bare))


def test_underfitting_low_accuracy_no_gap_stalled():
    rows = curve(30, final=1.0, acc_final=0.62, val_acc_final=0.6, val_floor=1.0)
    assert "underfitting" in codes(healthy(epochs=rows))
    # Still improving fast: not (yet) underfitting.
    still = curve(30, final=1.0, acc_final=0.62, val_acc_final=0.6, val_floor=1.0)
    for i, r in enumerate(still):
        r["loss"] = LN10 * (1.0 / LN10) ** (i / 29)
    assert "underfitting" not in codes(healthy(epochs=still))
    # A gap means overfitting, not underfitting.
    assert "underfitting" not in codes(healthy(epochs=curve(30, final=1.0, acc_final=0.62, val_acc_final=0.4)))


def test_not_learning_flat_loss_at_chance():
    rows = curve(10, final=2.29, acc_final=0.11, val_acc_final=0.1, val_floor=2.29)
    found = diagnose(healthy(epochs=rows))
    assert "not_learning" in {f.code for f in found}
    assert next(f for f in found if f.code == "not_learning").severity == "error"
    assert "not_learning" not in codes(healthy())


def test_plateau_is_info_only():
    rows = curve(20, final=0.8, acc_final=0.8, val_acc_final=0.78, val_floor=0.8)
    found = diagnose(healthy(epochs=rows))
    plateau = [f for f in found if f.code == "plateau"]
    assert plateau and plateau[0].severity == "info" and "G22" in plateau[0].advice
    assert not [f for f in diagnose(healthy()) if f.code == "plateau"]  # converged near zero


def test_noisy_loss_from_batch_losses():
    assert "noisy_loss" in codes(healthy(loss=losses(1.5)))  # a warning even when the run ends well
    assert "noisy_loss" not in codes(healthy(loss=losses(0.05)))


def test_dead_and_saturated_units_from_the_probe():
    found = diagnose(struggling(probe=probe(dead=0.9)))
    dead = next(f for f in found if f.code == "dead_units")
    assert dead.severity == "warning" and dead.evidence["dead_fraction"] == 0.9 and "B7" in dead.advice
    # One story: the poor fit is the dead units' consequence.
    assert next(f for f in found if f.code == "underfitting").caused_by == "dead_units"
    assert "saturated_units" in codes(struggling(probe=probe(saturated=0.7, kind="tanh")))
    assert codes(struggling(probe=probe(dead=0.3, saturated=0.1))) == {"underfitting"}
    # Underfitting with validation above train (dropout): still underfitting (issue 13's 0.47 / 0.60 run).
    assert "underfitting" in codes(healthy(epochs=curve(final=1.3, acc_final=0.47, val_acc_final=0.6)))
    # The false alarm of issue 13: a tanh run that learned well (0.97 validation) with many saturated units.
    assert codes(healthy(probe=probe(saturated=0.7, kind="tanh"))) == set()


def test_vanishing_and_exploding_gradients():
    assert "vanishing_gradients" in codes(struggling(probe=probe(grad_first=1e-9, grad_last=1e-2)))
    assert "exploding_gradients" in codes(struggling(probe=probe(grad_first=1e3, grad_last=1e-2)))
    nan = probe()
    nan[-1]["layers"]["dense"]["grad_rms"] = math.nan
    assert "exploding_gradients" in codes(struggling(probe=nan))
    assert codes(healthy(probe=probe(grad_first=1e-9, grad_last=1e-2))) == set()


CHECKS_FAILED = [
    {"name": "initialization", "passed": True, "severity": "warning", "measured": 0, "expected": 0,
     "tolerance": 0, "advice": "", "recipe": "B5", "details": {"layers": {
         "activation": {"activation": "tanh", "std": 0.99, "dead_fraction": 0.0, "saturated_fraction": 0.93},
         "activation_1": {"activation": "relu", "std": 0.0, "dead_fraction": 0.97, "saturated_fraction": 0.0},
         "output": {"activation": "softmax", "std": 0.3, "dead_fraction": 0.0, "saturated_fraction": 1.0}}}},
    {"name": "initial_loss", "passed": False, "severity": "error", "measured": 19.4, "expected": 2.303,
     "tolerance": 0.25, "advice": "Initial loss 19.4, expected 2.303: the output layer's weights are too large "
     "(recipe D12).", "recipe": "D12", "details": {"loss": 19.4, "expected_loss": 2.303}},
]


def test_checks_failed_run_uses_the_checks():
    signals = Signals(status="checks_failed", stop_reason="sanity checks failed: initial_loss", checks=CHECKS_FAILED,
                      num_classes=10)
    found = {f.code: f for f in diagnose(signals)}
    assert set(found) == {"initial_loss_off", "saturated_units", "dead_units"}
    assert found["initial_loss_off"].severity == "error"
    assert found["initial_loss_off"].evidence == {"loss": 19.4, "expected_loss": 2.303, "tolerance": 0.25}
    assert found["saturated_units"].evidence["from_initialization"] == 1.0
    assert "at initialization" in found["dead_units"].advice
    # Healthy initialization statistics give nothing.
    calm = json.loads(json.dumps(CHECKS_FAILED[:1]))
    for layer in calm[0]["details"]["layers"].values():
        layer.update(dead_fraction=0.0, saturated_fraction=0.0)
    assert diagnose(Signals(status="checks_failed", checks=calm)) == []


def test_empty_signals_find_nothing():
    assert diagnose(Signals()) == []
    assert all(math.isnan(v) or v == 0 for k, v in measure(Signals()).items() if k != "epochs")


def test_every_code_has_a_meaning_and_findings_validate():
    assert len(CODES) == 20
    with pytest.raises(ValueError, match="Argument `code`"):
        Finding("too_much_coffee", "error")
    with pytest.raises(ValueError, match="Argument `severity`"):
        Finding("plateau", "fatal")
    finding = Finding("plateau", "info", {"loss_final": 0.8}, "decay it (recipe G22)", "G22")
    assert Finding.from_dict(finding.to_dict()) == finding


def test_no_tensorflow_import():
    import subprocess

    code = "import kerasguide.diagnosis, sys; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ----------------------------------------------------------- run folders
def _write_run(path, signals: Signals):
    rd = RunDir(path)
    path.mkdir(parents=True, exist_ok=True)
    rd.update_run(status=signals.status, stop_reason=signals.stop_reason, data={"num_classes": 10})
    rd.write_metrics(signals.epochs)
    rd.monitor_dir.mkdir(exist_ok=True)
    for name in ("update_ratio", "loss", "probe"):
        records = getattr(signals, name)
        text = "".join(json.dumps(r) + "\n" for r in records)
        (rd.monitor_dir / f"{name}.jsonl").write_text(text + '{"epoch": 99, "cut sho', encoding="utf-8")
    return rd


def test_run_directory_round_trip(tmp_path):
    rows = curve(30, final=0.001, acc_final=1.0, val_acc_final=0.8, val_floor=0.6, rise=0.5)
    rd = _write_run(tmp_path / "run", healthy(epochs=rows, probe=probe(dead=0.8)))
    signals = load_signals(rd.path)
    assert len(signals.update_ratio) == 20  # the line cut short by a kill is skipped
    findings = write_diagnosis(rd.path)
    assert {f.code for f in findings} >= {"overfitting", "dead_units"}
    data = json.loads((rd.path / "diagnosis.json").read_text())
    assert data["format_version"] == 1
    assert set(data["findings"][0]) == {"code", "severity", "evidence", "advice", "recipe", "caused_by"}
    assert read_diagnosis(rd.path) == findings
    section = diagnosis_section(rd)
    assert "## Diagnosis" in section and "`overfitting`" in section
    assert (rd.monitor_dir / "monitors.png").stat().st_size > 1000


def test_not_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        load_signals(tmp_path)


def test_text_and_markdown():
    found = diagnose(struggling(probe=probe(dead=0.9)))
    text = format_findings(found)
    assert text.startswith("warning dead_units:") and "dead_fraction=0.9" in text
    assert "| warning | `dead_units` |" in findings_markdown(found)
    assert "No problems" in format_findings([])


def test_cli_diagnose(tmp_path, capsys):
    from kerasguide.cli import main

    rd = _write_run(tmp_path / "run", healthy(probe=probe(saturated=0.9, kind="tanh")))
    assert main(["diagnose", str(rd.path)]) == 0
    out = capsys.readouterr().out
    assert "saturated_units" in out and "diagnosis.json" in out
    assert main(["diagnose", str(rd.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"][0]["code"] == "saturated_units"
    assert main(["diagnose", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder" in err
    (tmp_path / "empty").mkdir()
    assert main(["diagnose", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err


# ------------------------------------------------------- regression (no accuracies)
VARIANCE = 6000.0  # the training targets' variance: predicting the mean costs this much MSE


def regression_curve(epochs=30, train_final=0.45, val_final=0.5, stall_at=0.5):
    """metrics.csv rows of a regression run (loss = MSE, mae, rmse, no accuracy): the errors fall from the
    variance to `train_final` / `val_final` of it by `stall_at` of the epochs, then stay flat."""
    rows = []
    for e in range(1, epochs + 1):
        frac = min(1.0, (e - 1) / max(epochs - 1, 1) / stall_at)
        train = VARIANCE * (1.0 + (train_final - 1.0) * frac)
        val = VARIANCE * (1.0 + (val_final - 1.0) * frac)
        rows.append({"epoch": e, "loss": train, "mae": 0.8 * train**0.5, "rmse": train**0.5, "val_loss": val,
                     "val_mae": 0.8 * val**0.5, "val_rmse": val**0.5, "lr": 1e-3, "seconds": 0.1})
    return rows


def regression(**changes) -> Signals:
    signals = Signals(epochs=regression_curve(), num_classes=0, target_variance=VARIANCE,
                      update_ratio=ratios(1e-3), probe=probe())
    for key, value in changes.items():
        setattr(signals, key, value)
    return signals


def test_regression_healthy_noisy_targets_find_nothing():
    # Diabetes-like: half the variance is noise the best model cannot explain; no gap. Not underfitting.
    assert codes(regression()) == set()
    assert math.isnan(measure(regression())["accuracy"]) and measure(regression())["unexplained"] < 0.5


def test_regression_overfitting_from_the_loss_gap():
    found = diagnose(regression(epochs=regression_curve(train_final=0.05, val_final=0.8)))
    over = next(f for f in found if f.code == "overfitting")
    assert over.evidence["loss_gap"] == pytest.approx(0.75, abs=1e-6)
    assert over.evidence["target_variance"] == VARIANCE and "targets' variance" in over.advice
    # Noisy validation error on a model that fits badly everywhere: a gap, but no ratio. Not overfitting.
    assert "overfitting" not in codes(regression(epochs=regression_curve(train_final=0.9, val_final=1.15)))


def test_regression_underfitting_against_the_variance():
    found = diagnose(regression(epochs=regression_curve(train_final=0.85, val_final=0.88)))
    under = next(f for f in found if f.code == "underfitting")
    assert under.evidence["unexplained"] == pytest.approx(0.85, abs=1e-6) and "85%" in under.advice
    # Still improving: not (yet) underfitting; explaining most of the variance: not underfitting.
    assert "underfitting" not in codes(regression(epochs=regression_curve(train_final=0.85, stall_at=1.0)))
    assert "underfitting" not in codes(regression(epochs=regression_curve(train_final=0.3, val_final=0.32)))


def test_regression_rules_without_the_variance_use_the_first_loss():
    # A user's model (no data summary): the errors are read against the loss at the start.
    rows = [{k: v for k, v in r.items() if "rmse" not in k} for r in regression_curve(train_final=0.85,
                                                                                      val_final=0.88)]
    found = diagnose(regression(epochs=rows, target_variance=None))
    under = next(f for f in found if f.code == "underfitting")
    assert "initial loss" in under.advice and "target_variance" not in under.evidence


def test_planted_a_fit_rule_that_reads_only_accuracies_says_nothing(monkeypatch):
    # The bug the rules above guard against: over/underfitting judged from accuracy keys a regression
    # run does not have, silently finding nothing. Planted by hiding the error measures.
    import kerasguide.diagnosis.rules as rules

    real = rules.measure

    def accuracy_only(signals):
        m = real(signals)
        m.update(unexplained=math.nan, loss_gap=math.nan, loss_ratio=math.nan)
        return m

    over = regression(epochs=regression_curve(train_final=0.05, val_final=0.8))
    under = regression(epochs=regression_curve(train_final=0.85, val_final=0.88))
    assert "overfitting" in codes(over) and "underfitting" in codes(under)
    monkeypatch.setattr(rules, "measure", accuracy_only)
    assert codes(over) == set() and codes(under) == set()  # what the tests above would catch


def test_classification_runs_are_judged_as_before():
    # Accuracies present: the loss rules stay out of it, even with a large loss gap.
    rows = curve(30, final=0.001, acc_final=0.99, val_acc_final=0.97, val_floor=1.5)
    assert codes(healthy(epochs=rows)) == set()


def test_run_directory_gives_the_rules_the_target_variance(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    rd.update_run(status="completed", data={"num_classes": 0, "task": "regression", "target_variance": VARIANCE})
    rd.write_metrics(regression_curve(train_final=0.85, val_final=0.88))
    signals = load_signals(rd.path)
    assert signals.target_variance == VARIANCE
    assert "underfitting" in {f.code for f in write_diagnosis(rd.path)}


# ------------------------------------------------------------- one story
def _raw(signals: Signals) -> set[str]:
    """Every rule's codes before `one_story` (what the diagnosis said before issue 13)."""
    from kerasguide.diagnosis.rules import RULES

    m = measure(signals)
    return {f.code for rule in RULES for f in rule(signals, m, Thresholds()) if f.severity != "info"}


def test_opposite_causes_are_never_both_reported():
    # The 150-example run of issue 13: the first epoch's steps huge (a range test on 2 batches chose 1.0),
    # later ones tiny, the loss barely down: the raw rules say both too high and too low.
    first = ratios(1e-6)
    first[0]["median"] = 0.2
    signals = healthy(epochs=curve(final=2.0, acc_final=0.2, val_acc_final=0.18), update_ratio=first)
    assert {"lr_too_high", "lr_too_low"} <= _raw(signals)  # the planted contradiction
    found = codes(signals)
    assert "lr_too_high" in found and not found & {"lr_too_low", "update_ratio_low"}
    # Without large steps the slow side stands alone.
    slow = healthy(epochs=curve(final=2.0, acc_final=0.2, val_acc_final=0.18), update_ratio=ratios(1e-6))
    assert "lr_too_low" in codes(slow) and not codes(slow) & {"lr_too_high", "update_ratio_high"}


def test_consequences_name_their_primary_cause_and_it_comes_first():
    # A too-high rate that killed the ReLUs (dead only on the probe, not at initialization) and the
    # gradients with them.
    first = ratios(0.05)
    signals = struggling(update_ratio=first, probe=probe(dead=0.95, grad_first=1e-9))
    found = diagnose(signals)
    by_code = {f.code: f for f in found}
    assert found[0].code == "lr_too_high" and found[0].caused_by is None
    assert by_code["dead_units"].caused_by == "lr_too_high"
    assert by_code["vanishing_gradients"].caused_by == "lr_too_high"  # through the dead units, to the root
    assert by_code["update_ratio_high"].caused_by == "lr_too_high"
    consequences = [f for f in found if f.caused_by]
    assert found.index(consequences[0]) > found.index(by_code["lr_too_high"])
    assert all(f.advice.startswith("A consequence of `lr_too_high`") for f in consequences)
    # Dead from the first step (biases of -5, seen by the initialization check) are their own cause.
    init = [{"name": "initialization", "passed": True, "details": {"layers": {
        "activation": {"activation": "relu", "dead_fraction": 0.97, "saturated_fraction": 0.0}}}}]
    dead = diagnose(struggling(probe=[], checks=init))
    assert dead[0].code == "dead_units" and dead[0].caused_by is None
    assert {f.code: f.caused_by for f in dead}.get("underfitting") == "dead_units"


def test_a_root_takes_the_severity_of_what_it_explains():
    # Not learning at all (an error) because of saturated units (a warning): the saturation is the error.
    rows = curve(final=LN10 * 0.99, acc_final=0.11, val_acc_final=0.1)
    found = diagnose(healthy(epochs=rows, probe=probe(saturated=0.9, kind="tanh")))
    assert found[0].code == "saturated_units" and found[0].severity == "error"
    assert {f.code: f.caused_by for f in found}["not_learning"] == "saturated_units"


# ----------------------------------------------------- labels, stopped runs
def test_labels_not_learnable_when_train_rises_and_validation_stays_at_chance():
    memorizing = curve(final=1.5, acc_final=0.5, val_acc_final=0.09)
    found = diagnose(healthy(epochs=memorizing))
    assert found[0].code == "labels_not_learnable" and found[0].severity == "error"
    assert {f.code: f.caused_by for f in found}["overfitting"] == "labels_not_learnable"
    # Its twin: real overfitting, validation far above chance.
    assert "labels_not_learnable" not in codes(healthy(epochs=curve(30, final=0.001, acc_final=1.0,
                                                                     val_acc_final=0.8)))


OVERFIT = {"name": "overfit", "passed": False, "severity": "error", "measured": 0.5, "expected": 1.0,
           "advice": "Cannot overfit 20 examples (recipe D14).", "recipe": "D14"}


def _overfit(**details) -> list[dict]:
    base = {"examples": 20, "steps": 200, "initial_loss": 2.3, "final_loss": 1.0, "loss_max": 2.3,
            "update_ratio": 5e-3, "grad_ratio": 5e-3, "narrowest": 128, "output_width": 10,
            "learning_rate": 1e-3, "no_gradient": [], "loss_trace": [[1, 2.3], [200, 1.0]]}
    return [{**OVERFIT, "details": {**base, **details}}]


@pytest.mark.parametrize(("details", "expected"), [
    (dict(final_loss=math.nan, loss_max=1e21, loss_trace=[[1, 2.3], [8, None]]), "lr_too_high"),
    (dict(final_loss=2.25, update_ratio=3e-5), "lr_too_low"),
    (dict(final_loss=1.99, grad_ratio=9e-8), "vanishing_gradients"),
    (dict(final_loss=0.73, narrowest=3), "underfitting"),
    (dict(final_loss=0.73), "cannot_overfit"),  # nothing recorded tells: the check's own advice
], ids=["exploded", "tiny updates", "vanishing", "narrow", "undetermined"])
def test_a_run_stopped_by_the_overfit_check_gets_its_likely_cause(details, expected):
    signals = Signals(status="checks_failed", stop_reason="sanity checks failed: overfit", num_classes=10,
                      checks=_overfit(**details))
    found = diagnose(signals)
    assert found and found[0].code == expected and found[0].severity == "error"
    assert "D14" in found[0].recipe and found[0].evidence


def test_causes_of_a_healthy_fit_are_none():
    from kerasguide.causes import overfit_cause

    healthy_fit = _overfit(final_loss=0.07)[0]["details"]
    assert overfit_cause(healthy_fit) is None
    assert overfit_cause({**healthy_fit, "no_gradient": ["dense/kernel"]}) is None  # its own advice names them


@pytest.mark.parametrize("status", ["interrupted", "failed", "checks_failed", "diverged"])
def test_no_stopped_run_has_an_empty_diagnosis(status):
    checks = _overfit(final_loss=0.73) if status == "checks_failed" else None
    epochs = [] if status == "checks_failed" else curve(2)
    if status == "diverged":
        epochs[-1]["loss"] = math.nan
    signals = Signals(epochs=epochs, status=status, stop_reason="RuntimeError: boom" if status == "failed" else None,
                      num_classes=10, checks=checks)
    found = diagnose(signals)
    assert found, status
    if status in ("interrupted", "failed"):
        stopped = next(f for f in found if f.code == "run_stopped")
        assert stopped.severity == ("info" if status == "interrupted" else "error")
        assert "after 2 epochs" in stopped.advice and ("boom" in stopped.advice or status == "interrupted")


def test_relus_killed_by_large_first_steps_are_a_too_high_rate():
    # Adam at 0.05 on the mnist1d CNN: epoch 1's updates 0.063 of the weights (below the 0.07 bar), then
    # 97 % of a layer dead, the loss stuck; every later step tiny, as a dead net's are.
    first = ratios(3e-6)
    first[0]["median"] = 0.063
    stuck = curve(final=LN10 * 0.99, acc_final=0.1, val_acc_final=0.1)
    found = diagnose(healthy(epochs=stuck, update_ratio=first, probe=probe(dead=0.97)))
    assert found[0].code == "lr_too_high" and found[0].severity == "error"
    by_code = {f.code: f for f in found}
    assert by_code["dead_units"].caused_by == "lr_too_high" and "update_ratio_low" not in by_code
    # The twin: the same dead units from the first step (seen by the initialization check) are their own cause.
    init = [{"name": "initialization", "passed": True, "details": {"layers": {
        "activation": {"activation": "relu", "dead_fraction": 0.97, "saturated_fraction": 0.0}}}}]
    found = diagnose(healthy(epochs=stuck, update_ratio=first, probe=probe(dead=0.97), checks=init))
    assert "lr_too_high" not in {f.code for f in found}


def test_a_broken_net_is_not_blamed_on_the_labels():
    # tanh at stddev 3 (issue 13's calibration, seed 0): saturated units fit the training set a little and
    # validation stays near chance; the saturation explains it, not the labels.
    memorizing = curve(final=1.5, acc_final=0.5, val_acc_final=0.09)
    found = codes(healthy(epochs=memorizing, probe=probe(saturated=0.9, kind="tanh")))
    assert "saturated_units" in found and "labels_not_learnable" not in found


def test_tiny_weights_make_vanishing_gradients_the_cause_of_large_updates():
    # A deep sigmoid net at stddev 0.01 under Adam: the steps are large next to the tiny weights, and the
    # gradients vanish; lowering the rate would not help.
    stuck = curve(final=LN10 * 0.999, acc_final=0.11, val_acc_final=0.1)
    found = diagnose(healthy(epochs=stuck, update_ratio=ratios(0.05), probe=probe(kind="sigmoid", grad_first=1e-9)))
    assert found[0].code == "vanishing_gradients"
    assert {f.code: f.caused_by for f in found}["lr_too_high"] == "vanishing_gradients"
    # Its twin: the same large updates with healthy gradients are the rate's.
    found = diagnose(healthy(epochs=stuck, update_ratio=ratios(0.05)))
    assert found[0].code == "lr_too_high" and found[0].caused_by is None


def _regression(unexplained: float, epochs: int = 30) -> list[dict]:
    """A converged (flat) regression run ending at `unexplained` of the targets' variance (100)."""
    return [{"epoch": e, "loss": 100 * max(unexplained, 1 - e / 5), "val_loss": 100 * max(unexplained, 1 - e / 5),
             "rmse": (100 * max(unexplained, 1 - e / 5)) ** 0.5, "val_rmse": (100 * max(unexplained, 1 - e / 5)) ** 0.5}
            for e in range(1, epochs + 1)]


def test_a_regression_that_fits_well_keeps_large_updates_as_info():
    # RMSprop on the diabetes preset: the same validation error as Adam, first updates 0.1 of the weights.
    first = ratios(0.011, 30)
    first[0]["median"] = 0.1
    good = Signals(epochs=_regression(0.47), target_variance=100.0, update_ratio=first)
    assert codes(good) == set() and "update_ratio_high" in codes(good, severities=("info",))
    poor = Signals(epochs=_regression(0.85), target_variance=100.0, update_ratio=first)
    assert "update_ratio_high" in codes(poor)


def test_any_other_failed_check_is_check_failed_with_its_advice():
    gradients = {"name": "gradients", "passed": False, "severity": "error", "measured": 0.3, "expected": 1e-7,
                 "advice": "Analytic and numerical gradients disagree on dense/kernel (recipe D15).", "recipe": "D15"}
    found = diagnose(Signals(status="checks_failed", checks=[gradients], num_classes=10))
    assert [f.code for f in found] == ["check_failed"]
    assert found[0].severity == "error" and "D15" in found[0].advice and found[0].evidence["measured"] == 0.3
    # A check that passed (or only warned) says nothing here.
    assert diagnose(Signals(status="checks_failed", checks=[{**gradients, "passed": True}])) == []
