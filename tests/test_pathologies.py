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


# Issue 13's held-out runs, stopped by the overfit check: each gets its likely cause, not an empty diagnosis.
STOPPED = [
    ("sgd rate 2 explodes", dict(optimizer__name="sgd", optimizer__learning_rate=2.0), "lr_too_high"),
    ("adam rate 3e-6", dict(optimizer__learning_rate=3e-6), "lr_too_low"),
    ("sgd rate 3e-5", dict(optimizer__name="sgd", optimizer__learning_rate=3e-5), "lr_too_low"),
    ("deep sigmoid, tiny weights", dict(model__activation="sigmoid", model__kernel_initializer="normal",
                                        model__init_stddev=0.02, model__hidden=[64] * 5), "vanishing_gradients"),
    ("3-unit hidden layer", dict(model__hidden=[3], model__dropout=0.0), "underfitting"),
]


def _checked(epochs: int, **changes) -> RunConfig:
    cfg = digits(epochs, **changes)
    cfg.checks.enabled = True
    cfg.checks.skip = ["regularization", "gradients"]
    return cfg


@pytest.mark.parametrize(("label", "changes", "expected"), STOPPED, ids=[s[0] for s in STOPPED])
def test_a_run_the_overfit_check_stops_is_diagnosed_with_its_cause(tmp_path, label, changes, expected):
    result = run(_checked(3, **changes), out=tmp_path, verbose=0)
    assert result.status == "checks_failed"
    data = json.loads(result.run_dir.file("diagnosis.json").read_text())["findings"]
    assert data and data[0]["code"] == expected and data[0]["severity"] == "error", f"{label}: {data}"
    assert data[0]["evidence"] and "D14" in data[0]["advice"]
    overfit = next(c for c in json.loads(result.run_dir.file("checks.json").read_text()) if c["name"] == "overfit")
    assert f"likely {expected}" in overfit["advice"]  # the check's own line names the cause too
    assert {"loss_trace", "update_ratio", "grad_rms", "narrowest"} <= set(overfit["details"])


def test_the_healthy_twin_passes_the_overfit_check_and_trains(tmp_path):
    result = run(_checked(2), out=tmp_path, verbose=0)
    assert result.status == "completed"
    assert serious(diagnosis(result)) == set()


def _npz(path, shuffle: bool):
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    if shuffle:
        y = np.random.default_rng(0).permutation(y)
    np.savez(path, x=x.astype("float32"), y=y)
    return f"npz:{path}"


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled labels", "true labels"])
def test_shuffled_labels_are_named(tmp_path, shuffle):
    cfg = digits(10, data__source=_npz(tmp_path / "d.npz", shuffle))
    found = diagnosis(run(cfg, out=tmp_path, verbose=0))
    if shuffle:
        assert next(iter(found)) == "labels_not_learnable"
        assert all(f["caused_by"] == "labels_not_learnable" for c, f in found.items() if c != "labels_not_learnable")
    else:
        assert serious(found) == set()


class _Stop:
    """A Keras callback raising `error` at the end of epoch 2 (in place of the fit stage's EpochScalars)."""

    def __init__(self, error):
        import keras

        class Raise(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1:
                    raise error

        self.cls = lambda *args, **kwargs: Raise()


@pytest.mark.parametrize("how", ["checks", "diverged", "interrupted", "failed"])
def test_no_diagnosis_of_a_stopped_run_is_empty(tmp_path, monkeypatch, how):
    import kerasguide.spine.stages.fit as fit

    cfg = digits(6)
    if how == "checks":
        cfg = _checked(3, model__hidden=[3], model__dropout=0.0)
    elif how == "diverged":
        cfg = digits(6, optimizer__name="sgd", optimizer__learning_rate=5.0)
    else:
        monkeypatch.setattr(fit, "EpochScalars", _Stop(KeyboardInterrupt() if how == "interrupted"
                                                       else RuntimeError("the disk went away")).cls)
    result = run(cfg, out=tmp_path, verbose=0)
    assert result.status == {"checks": "checks_failed"}.get(how, how)
    found = diagnosis(result)
    assert found, f"{how}: empty diagnosis"
    if how in ("interrupted", "failed"):
        assert "after 2 epochs" in found["run_stopped"]["advice"]
        assert how == "interrupted" or "the disk went away" in found["run_stopped"]["advice"]
