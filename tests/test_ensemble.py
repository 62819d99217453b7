"""Recipe J34: ensembles average their members' predicted probabilities.

The members of the end-to-end tests are trained once per module (3 seeds of a
16-unit MLP on digits, 3 epochs each, through the real pipeline).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

from kerasguide.cli import main  # noqa: E402
from kerasguide.config import DataConfig, RunConfig  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402
from kerasguide.ensemble import (  # noqa: E402
    Ensemble,
    EnsembleError,
    SnapshotCheckpoints,
    average_probabilities,
    ensemble_metrics,
    log_loss,
    member_config,
    members_from_runs,
    members_from_snapshots,
    run_ensemble,
)
from tests.conftest import run_cli  # noqa: E402


# ------------------------------------------------------------- pure maths
def test_average_probabilities_is_the_mean_and_the_weighted_mean():
    p = np.array([[[1.0, 0.0]], [[0.5, 0.5]], [[0.0, 1.0]]])
    np.testing.assert_allclose(average_probabilities(p), [[0.5, 0.5]])
    np.testing.assert_allclose(average_probabilities(p, [1, 1, 0]), [[0.75, 0.25]])
    with pytest.raises(ValueError, match="Received: weights="):
        average_probabilities(p, [1, -1, 0])
    with pytest.raises(ValueError, match="Received: shape="):
        average_probabilities(p[0])


def test_ensemble_log_loss_never_exceeds_the_mean_members(seed=0):
    # -log is convex (Jensen): it holds for any members, a property of averaging probabilities.
    rng = np.random.default_rng(seed)
    for _ in range(20):
        probs = rng.dirichlet(np.ones(5), size=(4, 50))
        y = rng.integers(0, 5, size=50)
        m = ensemble_metrics(probs, y)
        assert m["ensemble"]["log_loss"] <= m["mean_member"]["log_loss"] + 1e-12
        assert m["mean_member"]["log_loss"] == pytest.approx(np.mean([log_loss(p, y) for p in probs]))


# ---------------------------------------------------------- Keras objects
@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(source="digits"), 0)


def _mlp(digits, seed, logits=False):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(digits.input_shape),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10, activation=None if logits else "softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits))
    model.fit(digits.x_train, digits.y_train, batch_size=128, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def models(digits):
    return [_mlp(digits, seed) for seed in (1, 2, 3)]


def _is_mean_of_members(ensemble_probs, members, x) -> bool:
    """The ensemble's prediction is the mean of each distinct member's own prediction."""
    expected = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    return bool(np.allclose(ensemble_probs, expected, atol=1e-6))


class _GeometricEnsemble(Ensemble):
    """Planted bug: averages log-probabilities (as if softmax outputs were logits)."""

    def call(self, inputs, training=False):
        logs = keras.ops.log(keras.ops.clip(self.member_outputs(inputs), 1e-7, 1.0))
        return keras.ops.softmax(keras.ops.mean(logs, axis=0), axis=-1)


def test_ensemble_prediction_is_the_mean_of_member_probabilities(models, digits):
    x = digits.x_val
    ensemble = Ensemble(models)
    assert _is_mean_of_members(ensemble.predict(x, verbose=0), models, x)
    np.testing.assert_allclose(ensemble.member_predictions(x), [m.predict(x, verbose=0) for m in models], atol=1e-6)
    # Planted bugs the same check catches: log-probabilities averaged, one member used twice.
    assert not _is_mean_of_members(_GeometricEnsemble(models).predict(x, verbose=0), models, x)
    assert not _is_mean_of_members(Ensemble([models[0], models[0], models[2]]).predict(x, verbose=0), models, x)


def test_logit_members_are_softmaxed_before_averaging(digits):
    members = [_mlp(digits, seed, logits=True) for seed in (4, 5)]
    x = digits.x_val[:50]
    probs = Ensemble(members, from_logits=True).predict(x, verbose=0)
    expected = np.mean([keras.ops.convert_to_numpy(keras.ops.softmax(m.predict(x, verbose=0))) for m in members], 0)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_ensemble_round_trips_through_a_keras_file(models, digits, tmp_path):
    ensemble = Ensemble(models, member_weights=[2.0, 1.0, 1.0])
    x = digits.x_val
    probs = ensemble.predict(x, verbose=0)
    np.testing.assert_allclose(probs, average_probabilities(ensemble.member_predictions(x), [2, 1, 1]), atol=1e-6)
    ensemble.save(tmp_path / "e.keras")
    loaded = keras.models.load_model(tmp_path / "e.keras")
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 3 and loaded.member_weights == [2.0, 1.0, 1.0]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), probs, atol=1e-6)
    assert Ensemble.from_config(ensemble.get_config()).member_weights == [2.0, 1.0, 1.0]


@pytest.mark.parametrize("kwargs,message", [
    ({"members": []}, "Received: members=\\[\\]"),
    ({"members": ["model"]}, "members\\[0\\] of type str"),
    ({"member_weights": [1.0]}, "Received: member_weights=\\[1.0\\]"),
    ({"member_weights": [0, 0, 0]}, "Received: member_weights=\\[0, 0, 0\\]"),
])
def test_ensemble_arguments_are_validated(models, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Ensemble(**{"members": models, **kwargs})


def test_snapshot_checkpoints_keep_the_last_epochs_or_one_per_cycle(digits, tmp_path):
    for keep, every, epochs, expected in ((2, 1, 4, [3, 4]), (3, 2, 5, [2, 4])):
        weights = {}

        class Record(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None, weights=weights):
                weights[epoch + 1] = self.model.get_weights()

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(digits.input_shape), keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        folder = tmp_path / f"keep{keep}"
        folder.mkdir()
        (folder / "snapshot-epoch=099.keras").write_bytes(b"stale")  # an older run's snapshot goes away
        snaps = SnapshotCheckpoints(folder, keep=keep, every=every)
        model.fit(digits.x_train, digits.y_train, batch_size=256, epochs=epochs, verbose=0,
                  callbacks=[Record(), snaps])
        files = sorted(p.name for p in folder.glob("snapshot-*.keras"))
        assert files == [f"snapshot-epoch={e:03d}.keras" for e in expected]
        members = members_from_snapshots(folder)
        for member, epoch in zip(members, expected, strict=True):
            for a, b in zip(member.model.get_weights(), weights[epoch], strict=True):
                np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="Received: keep=0"):
        SnapshotCheckpoints(tmp_path, keep=0)


# ------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def seed_ensemble(tmp_path_factory):
    cfg = RunConfig()
    cfg.name = "ens"
    cfg.model.hidden = [16]
    cfg.model.dropout = 0.0
    cfg.model.l2 = 0.0
    cfg.train.epochs = 3
    cfg.train.batch_size = 128
    cfg.optimizer.learning_rate = 1e-2
    cfg.checks.enabled = False
    cfg.monitor.enabled = False
    cfg.ensemble.snapshots = 2
    out = tmp_path_factory.mktemp("ens")
    return cfg, run_ensemble(cfg, members=3, out=out, verbose=0)


def test_seed_members_are_recorded_runs_on_one_split(seed_ensemble):
    cfg, result = seed_ensemble
    runs = sorted((result.path / "members").iterdir())
    assert len(runs) == 3
    records = [json.loads((r / "run.json").read_text()) for r in runs]
    assert sorted(r["seed"] for r in records) == [0, 1, 2]
    assert all(r["status"] == "completed" for r in records)
    assert len({r["fingerprints"]["validation"] for r in records}) == 1  # one split, seeds differ
    assert len({r["fingerprints"]["train"] for r in records}) == 1


def test_member_config_varies_the_seed_not_the_split():
    cfg = RunConfig()
    cfg.train.seed = 7
    member = member_config(cfg, 2)
    assert member.train.seed == 9 and member.ensemble.split_seed == 7 and member.name.endswith("-m2")
    assert cfg.train.seed == 7 and cfg.ensemble.split_seed is None  # the base config is untouched
    from kerasguide.training import split_seed

    assert split_seed(member) == split_seed(cfg) == 7


def test_ensemble_beats_its_mean_member_and_its_files_agree(seed_ensemble):
    cfg, result = seed_ensemble
    val = result.validation
    assert val["ensemble"]["accuracy"] >= val["mean_member"]["accuracy"]
    assert val["ensemble"]["log_loss"] < val["mean_member"]["log_loss"]
    record = json.loads((result.path / "ensemble.json").read_text())
    assert record["kind"] == "seeds" and len(record["members"]) == 3
    assert record["validation"]["ensemble"] == pytest.approx(val["ensemble"])
    # The saved ensemble, on data preprocessed with the saved preprocessing, scores what the record says.
    from kerasguide.data import Preprocessor

    ds = load_dataset(cfg.data, 0)
    loaded = keras.models.load_model(result.path / "ensemble.keras")
    pre = Preprocessor.load(result.path / "preprocess.npz")
    probs = loaded.predict(pre.transform(ds.raw_val), verbose=0)
    assert np.mean(probs.argmax(-1) == ds.y_val) == pytest.approx(val["ensemble"]["accuracy"])
    assert log_loss(probs, ds.y_val) == pytest.approx(val["ensemble"]["log_loss"], rel=1e-4)
    md = (result.path / "ensemble.md").read_text()
    assert "**ensemble**" in md and f"{val['ensemble']['accuracy']:.4f}" in md


def test_the_ensemble_directory_is_listed_with_its_members(seed_ensemble):
    """The desktop app's runs browser lists an ensemble directory, its score and its members."""
    from kerasguide.rundir import list_runs

    cfg, result = seed_ensemble
    listed = list_runs(result.path.parent, nested=True)
    assert list_runs(result.path.parent) == []  # not a run directory itself
    group, *members = listed
    assert group.path == result.path and group.kind == "ensemble" and group.status == "completed"
    assert group.final["val_accuracy"] == pytest.approx(result.validation["ensemble"]["accuracy"])
    assert group.best["value"] == pytest.approx(result.validation["ensemble"]["accuracy"])
    assert sorted(m.path for m in members) == sorted((result.path / "members").iterdir())
    assert all(m.parent == result.path and m.status == "completed" for m in members)


def test_members_from_run_directories_and_from_a_search(seed_ensemble, tmp_path):
    cfg, result = seed_ensemble
    runs = sorted((result.path / "members").iterdir())
    again = run_ensemble(runs=runs, out=tmp_path, verbose=0)
    assert again.validation["ensemble"] == pytest.approx(result.validation["ensemble"])
    # A search directory stands for its best trials.
    search = tmp_path / "search"
    search.mkdir()
    trials = [{"trial_id": str(i), "status": "completed", "score": score, "epochs": 3,
               "run_dir": str(run)} for i, (run, score) in enumerate(zip(runs, (0.5, 0.9, 0.7), strict=True))]
    (search / "search.json").write_text(json.dumps({"direction": "max", "stages": [{"trials": trials}]}))
    members = members_from_runs([search], top=2)
    assert [m.run_dir for m in members] == [runs[1], runs[2]]


def test_a_member_given_twice_or_from_another_split_is_refused(seed_ensemble, tmp_path):
    cfg, result = seed_ensemble
    runs = sorted((result.path / "members").iterdir())
    with pytest.raises(EnsembleError, match="given twice"):
        run_ensemble(runs=[runs[0], runs[1], runs[0]], out=tmp_path, verbose=0)
    # A run of another seed without the shared split seed: its validation set differs.
    other = tmp_path / "other"
    shutil.copytree(runs[1], other)
    record = json.loads((other / "run.json").read_text())
    record["fingerprints"]["validation"] = "0123456789abcdef"
    (other / "run.json").write_text(json.dumps(record))
    with pytest.raises(EnsembleError, match="another validation split"):
        run_ensemble(runs=[runs[0], other], out=tmp_path, verbose=0)


def test_snapshot_ensemble_of_one_recorded_run(seed_ensemble, tmp_path):
    cfg, result = seed_ensemble
    run = sorted((result.path / "members").iterdir())[0]
    assert sorted(p.name for p in (run / "checkpoints").glob("snapshot-*")) == [
        "snapshot-epoch=002.keras", "snapshot-epoch=003.keras"]
    snap = run_ensemble(snapshots=run, out=tmp_path, verbose=0)
    assert snap.record["kind"] == "snapshots of one run" and len(snap.members) == 2
    assert snap.validation["ensemble"]["log_loss"] <= snap.validation["mean_member"]["log_loss"]


# -------------------------------------------------------------------- CLI
@pytest.mark.parametrize("args,message", [
    (["--runs", "/no/such/run"], "/no/such/run: no such run directory"),
    (["--snapshots", "/no/such/run"], "/no/such/run: no such run directory"),
    (["--members", "0"], "--members must be >= 1"),
    (["--temperature", "0"], "--temperature must be > 0"),
    (["--alpha", "2"], "--alpha must be in [0, 1]"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main(["ensemble", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_cli_refuses_a_folder_that_is_not_a_run_and_two_sources(tmp_path, capsys):
    assert main(["ensemble", "--runs", str(tmp_path)]) == 2
    assert "not a kerasguide run or search directory" in capsys.readouterr().err
    (tmp_path / "run.json").write_text("{}")
    assert main(["ensemble", "--runs", str(tmp_path), "--snapshots", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
    # It passes the quick checks but has no config: still one line, exit 2.
    assert main(["ensemble", "--runs", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a kerasguide run directory" in err


def test_cli_in_a_child_process_bad_run_dir_exits_2_without_traceback(tmp_path):
    proc = run_cli("ensemble", "--runs", str(tmp_path / "missing"), timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert "no such run directory" in proc.stderr


def test_cli_ensemble_of_runs_with_distillation(seed_ensemble, tmp_path, capsys):
    cfg, result = seed_ensemble
    runs = [str(p) for p in sorted((result.path / "members").iterdir())]
    code = main(["ensemble", "--runs", *runs, "--distill", "--epochs", "2", "--temperature", "2",
                 "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ensemble directory:" in out and "distilled student val accuracy" in out
    path = next(tmp_path.iterdir())
    record = json.loads((path / "ensemble.json").read_text())
    student = record["student"]
    assert student["temperature"] == 2.0 and student["epochs"] == 2
    assert set(student["student"]) == {"val_accuracy", "val_log_loss"}
    model = keras.models.load_model(path / "student.keras")
    ds = load_dataset(cfg.data, 0)
    acc = np.mean(model.predict(ds.x_val, verbose=0).argmax(-1) == ds.y_val)
    assert acc == pytest.approx(student["student"]["val_accuracy"])
    assert "Distilled student" in (path / "ensemble.md").read_text()
