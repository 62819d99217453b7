"""Diagnosis-based pruning (issue 14): a trial the diagnosis condemns stops at once, the oracle sees it fail."""

from __future__ import annotations

import json
import math

import pytest

from kerasguide.config import RunConfig, SearchConfig

PRUNE = ["diverged", "not_learning", "lr_too_high"]


def _digits(name: str, epochs: int = 4) -> RunConfig:
    """A digits config whose trials take a second or two (plain SGD: a rate of 5 diverges, 1e-4 learns nothing)."""
    cfg = RunConfig()
    cfg.name = name
    cfg.model.hidden = [16]
    cfg.model.dropout = 0.0
    cfg.optimizer.name = "sgd"
    cfg.optimizer.learning_rate = 0.3
    cfg.train.epochs = epochs
    cfg.train.batch_size = 128
    cfg.checks.enabled = False
    cfg.monitor.images_every_epochs = 100
    return cfg


# ------------------------------------------------------------------ the callback alone
class _Model:
    stop_training = False


def _pruner(**kwargs):
    from kerasguide.pruning import DiagnosisPruner

    seen = []
    pruner = DiagnosisPruner(num_classes=10, on_prune=seen.append, **kwargs)
    pruner.set_model(_Model())
    pruner.on_train_begin()
    return pruner, seen


def test_pruner_stops_a_flat_loss_only_from_its_first_epoch_on():
    pruner, seen = _pruner(after=3)
    for epoch in range(2):
        pruner.on_epoch_end(epoch, {"loss": 2.30, "accuracy": 0.1, "val_loss": 2.30, "val_accuracy": 0.1})
        assert pruner.pruned is None and not pruner.model.stop_training
    pruner.on_epoch_end(2, {"loss": 2.30, "accuracy": 0.1, "val_loss": 2.30, "val_accuracy": 0.1})
    assert pruner.model.stop_training and seen == [pruner.pruned]
    assert pruner.pruned["code"] == "not_learning" and pruner.pruned["epoch"] == 3
    assert "not learning" in pruner.pruned["advice"]


def test_pruner_leaves_a_learning_run_and_a_guarded_one_alone():
    pruner, seen = _pruner(after=1)
    for epoch, loss in enumerate([1.5, 0.8, 0.5, 0.3]):
        pruner.on_epoch_end(epoch, {"loss": loss, "accuracy": 1 - loss / 3, "val_loss": loss, "val_accuracy": 0.8})
    assert pruner.pruned is None and not seen

    class Guard:  # the divergence guard stopped it: it has said why (status diverged), no second record
        diverged = True
        record_name = "divergence"

    pruner, seen = _pruner(after=1, monitors=[Guard()])
    pruner.on_epoch_end(0, {"loss": math.nan, "accuracy": 0.1})
    assert pruner.pruned is None and not seen


def test_pruner_rejects_unknown_codes_and_a_bad_after():
    from kerasguide.pruning import DiagnosisPruner

    with pytest.raises(ValueError, match="codes"):
        DiagnosisPruner(codes=["too_slow"])
    with pytest.raises(ValueError, match="after=0"):
        DiagnosisPruner(after=0)


# ------------------------------------------------------------------ a plain run
def test_a_plain_run_is_pruned_only_when_asked(tmp_path):
    from kerasguide.spine import run

    cfg = _digits("flat")
    cfg.optimizer.learning_rate = 1e-4  # the loss barely moves
    plain = run(cfg, out=tmp_path, verbose=0)
    record = json.loads((plain.path / "run.json").read_text())
    assert plain.status == "completed" and record["epochs_done"] == 4 and "pruned" not in record

    cfg.monitor.prune = PRUNE
    pruned = run(cfg, out=tmp_path, verbose=0)
    record = json.loads((pruned.path / "run.json").read_text())
    assert pruned.status == "pruned" and record["status"] == "pruned" and record["epochs_done"] == 3
    assert record["pruned"]["code"] == "not_learning" and record["pruned"]["epoch"] == 3
    assert record["stop_reason"] == "pruned after epoch 3: not_learning"
    assert (pruned.path / "checkpoints" / "last.keras").is_file()  # recorded like any other run
    # What a search's master reads from a worker's run directory (workers >= 1).
    from kerasguide.search.tuner import read_outcome

    outcome = read_outcome(pruned.path, "val_accuracy", "max")
    assert outcome["status"] == "pruned" and outcome["epochs_done"] == 3
    assert outcome["pruned"]["code"] == "not_learning" and outcome["pruned"]["by"] == "diagnosis"
    assert "pruned" not in read_outcome(plain.path, "val_accuracy", "max")


# ------------------------------------------------------------------ a search
def test_search_prunes_the_planted_trials_and_runs_their_healthy_twin_to_the_end(tmp_path):
    from kerasguide.search import tune

    cfg = _digits("prune")
    cfg.search = SearchConfig(
        algorithm="grid", workers=0, widen_on_border=False, stages=[{"epochs": 4, "trials": 3}],
        space={"optimizer.learning_rate": {"choices": [0.3, 5.0, 1e-4]}},
    )
    result = tune(cfg, out=tmp_path)
    assert result.status == "completed"
    state = json.loads((result.path / "search.json").read_text())
    trials = {t["values"]["optimizer.learning_rate"]: t for t in state["stages"][0]["trials"]}
    assert set(trials) == {0.3, 5.0, 1e-4}

    healthy, exploded, flat = trials[0.3], trials[5.0], trials[1e-4]
    assert healthy["status"] == "completed" and healthy["epochs_done"] == 4 and healthy["score"] > 0.5
    assert "pruned" not in healthy and state["best"]["trial_id"] == healthy["trial_id"]
    # SGD at 5: the divergence guard stops it in epoch 1 or 2 (its own record, status diverged).
    assert exploded["status"] == "diverged" and exploded["pruned"]["code"] == "diverged"
    assert exploded["pruned"]["by"] == "divergence guard" and exploded["epochs_done"] <= 3
    # SGD at 1e-4: the diagnosis prunes it after epoch 3 as not learning.
    assert flat["status"] == "pruned" and flat["pruned"]["code"] == "not_learning"
    assert flat["pruned"]["by"] == "diagnosis" and flat["pruned"]["epoch"] == 3 and flat["epochs_done"] == 3
    for trial in (exploded, flat):
        assert trial["score"] is None and trial["error"].startswith("pruned after epoch")
        assert trial["epochs_saved"] == 4 - trial["epochs_done"] >= 1
        # keras-tuner's oracle was told: a FAILED trial (not retried, not scored).
        oracle_trial = json.loads((result.path / "tuner" / "stage1" / f"trial_{trial['trial_id']}" / "trial.json")
                                  .read_text())
        assert oracle_trial["status"] == "FAILED" and oracle_trial["score"] is None
        run_record = json.loads((result.path / trial["run_dir"] / "run.json").read_text())
        assert run_record["status"] == trial["status"]
    report = (result.path / "search.md").read_text()
    assert "## Pruned" in report and "2 trials stopped early" in report
    assert "not_learning after epoch 3" in report
