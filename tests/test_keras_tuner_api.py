"""keras-tuner's private API that kerasguide's search overrides or calls, checked on the installed keras-tuner.

kerasguide/search/oracle.py and asha.py override `Oracle._random_values`,
`save` and `_save_trial` and call `_duplicate`, `_get_trial_dir` and
`_get_oracle_fname`; tuner.py calls `_get_trial_dir`; builders.py wraps the
`HyperParameters` declarations and calls `_get_name`. None of it is keras-tuner's
public API, so pyproject.toml pins keras-tuner to the versions checked here: a
failure names what changed and the pin to revisit before widening it.
"""

from __future__ import annotations

import inspect
import json
import os
import tomllib
from importlib.metadata import version

import pytest

from tests.conftest import ROOT

kt = pytest.importorskip("keras_tuner")


def _pin() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (spec,) = [d for d in project["dependencies"] if d.replace("_", "-").startswith("keras-tuner")]
    return spec


def _fail(what: str, problem: str) -> None:
    pytest.fail(f"keras-tuner {version('keras-tuner')}: {what} {problem}; kerasguide/search relies on it "
                f"(pyproject.toml pins {_pin()!r}): adapt kerasguide before moving the pin", pytrace=False)


# (owner, method, the parameters kerasguide passes or overrides with) -- every one named in the module docstring.
PRIVATE = [
    ("Oracle", "_random_values", ["self"]),
    ("Oracle", "_duplicate", ["self", "values"]),
    ("Oracle", "_get_trial_dir", ["self", "trial_id"]),
    ("Oracle", "_save_trial", ["self", "trial"]),
    ("Oracle", "_get_oracle_fname", ["self"]),
    ("Oracle", "save", ["self"]),
    ("Oracle", "populate_space", ["self", "trial_id"]),
    ("HyperParameters", "_get_name", ["self", "name", "name_scopes"]),
    ("HyperParameters", "Choice", ["self", "name", "values", "ordered", "default", "parent_name", "parent_values"]),
    ("HyperParameters", "Int", ["self", "name", "min_value", "max_value", "step", "sampling", "default",
                                "parent_name", "parent_values"]),
    ("HyperParameters", "Float", ["self", "name", "min_value", "max_value", "step", "sampling", "default",
                                  "parent_name", "parent_values"]),
    ("HyperParameters", "Boolean", ["self", "name", "default", "parent_name", "parent_values"]),
    ("HyperParameters", "Fixed", ["self", "name", "value", "parent_name", "parent_values"]),
    ("Tuner", "run_trial", ["self", "trial", "args", "kwargs"]),
    ("Tuner", "on_trial_end", ["self", "trial"]),
    ("Tuner", "save_model", ["self", "trial_id", "model", "step"]),
    ("Tuner", "load_model", ["self", "trial"]),
]


def test_pinned_below_the_next_minor():
    spec = _pin()
    assert "<" in spec, f"pyproject.toml: {spec!r} has no upper bound, yet kerasguide overrides keras-tuner internals"


@pytest.mark.parametrize(("owner", "name", "params"), PRIVATE, ids=lambda v: v if isinstance(v, str) else None)
def test_the_private_methods_kerasguide_uses_keep_their_signatures(owner, name, params):
    method = getattr(getattr(kt, owner), name, None)
    if not callable(method):
        _fail(f"{owner}.{name}", "is gone")
    found = list(inspect.signature(method).parameters)
    if found != params:
        _fail(f"{owner}.{name}", f"now takes ({', '.join(found)}), not ({', '.join(params)})")


@pytest.mark.parametrize("name", ["RandomSearchOracle", "BayesianOptimizationOracle", "HyperbandOracle"])
def test_the_oracles_draw_through_random_values(name):
    # The baseline-first override (search/oracle.py `_BaselineFirst`) works only if the oracle draws through it.
    source = inspect.getsource(getattr(kt.oracles, name))
    if "self._random_values()" not in source:
        _fail(f"oracles.{name}", "no longer draws its values through self._random_values()")


def test_the_oracle_writes_its_state_through_save_and_save_trial():
    # The atomic writes (search/oracle.py) replace keras-tuner's in-place ones only if these are the writers.
    source = inspect.getsource(kt.Oracle)
    for call in ("self._save_trial(", "self.save()", "self._get_oracle_fname()"):
        if call not in source:
            _fail("Oracle", f"no longer calls {call}...)")


def test_the_attributes_and_statuses_kerasguide_reads():
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=1, seed=1)
    for attribute, kind in (("trials", dict), ("ongoing_trials", dict), ("start_order", list),
                            ("hyperparameters", kt.HyperParameters), ("objective", object), ("seed", int)):
        if not isinstance(getattr(oracle, attribute, None), kind):
            _fail(f"Oracle.{attribute}", f"is no longer a {kind.__name__}")
    for status in ("RUNNING", "IDLE", "STOPPED", "COMPLETED", "FAILED", "INVALID"):
        if not hasattr(kt.engine.trial.TrialStatus, status):
            _fail(f"engine.trial.TrialStatus.{status}", "is gone")
    for hp in ("Choice", "Int", "Float", "Boolean", "Fixed"):
        if not isinstance(getattr(kt.engine.hyperparameters, hp, None), type):
            _fail(f"engine.hyperparameters.{hp}", "is gone")


def test_a_trial_end_to_end_through_kerasguides_oracle(tmp_path):
    """The overrides together: the baseline first, a trial's directory, both state files written atomically."""
    from kerasguide.search.oracle import build_hyperparameters, make_oracle
    from kerasguide.search.space import ParamRange

    hp = build_hyperparameters([ParamRange("optimizer.learning_rate", "float", 1e-4, 1e-1, log=True)],
                               defaults={"optimizer.learning_rate": 0.01})
    oracle = make_oracle("random", hp, "val_accuracy", "max", trials=2, seed=1)
    oracle._set_project_dir(str(tmp_path), "p")  # what Tuner.__init__ does
    trial = oracle.create_trial("worker0")
    assert trial.hyperparameters.values == {"optimizer.learning_rate": 0.01}, "the baseline is not drawn first"
    assert oracle._duplicate(trial.hyperparameters.values) is True
    trial_dir = oracle._get_trial_dir(trial.trial_id)
    assert os.path.isdir(trial_dir) and os.path.dirname(trial_dir) == str(tmp_path / "p")
    oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5}, step=1)
    trial.status = kt.engine.trial.TrialStatus.COMPLETED
    oracle.end_trial(trial)
    oracle.save()
    assert json.loads((tmp_path / "p" / "oracle.json").read_text())["end_order"] == [trial.trial_id]
    assert json.loads(open(os.path.join(trial_dir, "trial.json")).read())["status"] == "COMPLETED"
    assert not [p for p in (tmp_path / "p").rglob("*") if ".tmp" in p.name]  # written beside, renamed over
