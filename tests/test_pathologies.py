"""End to end: plant a pathology in a tiny real `kerasguide run`, the diagnosis names it.

Each case trains the bundled digits for a few epochs (checks off, to stay
fast, except where the checks are the point) and reads diagnosis.json.
A healthy run must produce no warning and no error.
"""

from __future__ import annotations

import json

import pytest

from kerasguide._logging import import_tensorflow

import_tensorflow()

from kerasguide.config import RunConfig  # noqa: E402
from kerasguide.spine import run  # noqa: E402


def digits(epochs: int, **changes) -> RunConfig:
    cfg = RunConfig()
    cfg.name = "patho"
    cfg.checks.enabled = False
    cfg.train.epochs = epochs
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def diagnosis(result) -> dict[str, dict]:
    data = json.loads(result.run_dir.file("diagnosis.json").read_text())
    return {f["code"]: f for f in data["findings"]}


def serious(found: dict[str, dict]) -> set[str]:
    return {code for code, f in found.items() if f["severity"] in ("warning", "error")}


def test_healthy_digits_run_has_no_warning_or_error(tmp_path):
    from kerasguide.cli import main

    result = run(digits(6), out=tmp_path, verbose=0)
    assert result.status == "completed"
    assert serious(diagnosis(result)) == set()
    path = result.run_dir.path
    assert "## Diagnosis" in (path / "report.md").read_text()
    assert (path / "monitor" / "update_ratio.jsonl").exists() and (path / "monitor" / "probe.jsonl").exists()
    assert list((path / "tb" / "monitor").glob("events.*"))
    import csv

    header = next(csv.reader((path / "metrics.csv").open()))
    assert {"update_ratio", "loss_noise", "accuracy_gap"} <= set(header)  # through the logs to metrics.csv
    assert main(["diagnose", str(path)]) == 0


PLANTED = [
    ("sgd learning rate 5", dict(optimizer__name="sgd", optimizer__learning_rate=5.0), 5,
     {"diverged", "lr_too_high"}),
    ("learning rate 1e-6", dict(optimizer__learning_rate=1e-6), 5, {"lr_too_low", "update_ratio_low"}),
    ("tanh, stddev 3", dict(model__activation="tanh", model__kernel_initializer="normal", model__init_stddev=3.0),
     3, {"saturated_units"}),
    ("relu, bias -5", dict(model__bias_init=-5.0), 3, {"dead_units"}),
    ("deep sigmoid, tiny weights", dict(model__activation="sigmoid", model__kernel_initializer="normal",
                                        model__init_stddev=0.01, model__hidden=[64] * 6), 3,
     {"vanishing_gradients"}),
    ("100 examples, big MLP, no regularization", dict(data__subset=100, model__hidden=[512, 512], model__dropout=0.0,
                                                      model__l2=0.0, train__batch_size=32), 40, {"overfitting"}),
    ("2-unit hidden layer", dict(model__hidden=[2], model__dropout=0.0, model__l2=0.0,
                                 optimizer__learning_rate=3e-3), 25, {"underfitting"}),
]


@pytest.mark.parametrize(("label", "changes", "epochs", "expected"), PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_pathology_is_diagnosed(tmp_path, label, changes, epochs, expected):
    result = run(digits(epochs, **changes), out=tmp_path, verbose=0)
    found = diagnosis(result)
    assert expected <= set(found), f"{label}: found {sorted(found)}"
    for code in expected:
        assert found[code]["evidence"] and "recipe" in found[code]["advice"]


def test_divergence_ends_the_run_cleanly(tmp_path):
    result = run(digits(10, optimizer__name="sgd", optimizer__learning_rate=5.0), out=tmp_path, verbose=0)
    record = result.run_dir.read_run()
    assert result.status == "diverged" and record["status"] == "diverged"
    assert record["stop_reason"].startswith("divergence guard:")
    assert record["epochs_done"] < 10
    assert "diverged" in (result.run_dir.path / "report.md").read_text()


def test_run_stopped_by_the_checks_still_gets_a_diagnosis(tmp_path):
    cfg = digits(3, model__activation="tanh", model__kernel_initializer="normal", model__init_stddev=3.0)
    cfg.checks.enabled = True
    cfg.checks.skip = ["regularization", "overfit", "gradients"]
    result = run(cfg, out=tmp_path, verbose=0)
    assert result.status == "checks_failed"
    found = diagnosis(result)
    assert {"initial_loss_off", "saturated_units"} <= set(found)
    assert found["initial_loss_off"]["severity"] == "error"
    assert found["initial_loss_off"]["evidence"]["loss"] > found["initial_loss_off"]["evidence"]["expected_loss"]
    assert found["saturated_units"]["evidence"]["from_initialization"] == 1.0
