"""Recipe I33: HParams as TensorBoard's plugin reads them, proved with the plugin's own backend.

A run is one experiment and one session at its tb/ root, its metrics in tb/train and tb/validation; a
search is one experiment at its directory's root (the searched keys with the space's domains) and a session
per trial. The table is built by the plugin's `get_experiment` and `list_session_groups` handlers over
TensorBoard's own event multiplexer, as `tensorboard --logdir` would serve it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import (
    api_pb2,
    backend_context,
    get_experiment,
    list_session_groups,
    metadata,
)

from tests.conftest import tiny_digits


def _backend(logdir: Path, spec: list[str] | None = None):
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    if spec:  # `--logdir_spec NAME:PATH,...`, as TensorBoard's application loads it
        for item in spec[1].split(","):
            name, _, path = item.partition(":")
            multiplexer.AddRunsFromDirectory(path, name)
    else:
        multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer, data_provider=provider)
    return multiplexer, backend_context.Context(tb)


def _table(logdir: Path, spec: list[str] | None = None):
    """(experiment, session groups) as the HParams dashboard gets them."""
    multiplexer, backend = _backend(logdir, spec)
    ctx = context.RequestContext()
    experiment = get_experiment.Handler(ctx, backend, "", api_pb2.GetExperimentRequest()).run()
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, allowed_statuses=[
        api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING])
    groups = list_session_groups.Handler(ctx, backend, "", request).run().session_groups
    return multiplexer, experiment, list(groups)


def _experiment_runs(multiplexer) -> list[str]:
    """The runs holding an experiment (`hparams_config`), read from the events' plugin metadata."""
    found = multiplexer.PluginRunToTagToContent(metadata.PLUGIN_NAME)
    return sorted(run for run, tags in found.items() if metadata.EXPERIMENT_TAG in tags)


def _metrics(group) -> dict[tuple[str, str], float]:
    return {(m.name.group, m.name.tag): m.value for m in group.metric_values}


def test_runs_are_one_experiment_and_a_session_each_with_train_and_validation_metrics(tmp_path):
    """`tensorboard --logdir runs`: each run's experiment (one schema, so whichever the plugin takes lines up)
    and its session at tb/'s root; the plugin finds the metrics in `<session>/train` and `<session>/validation`."""
    from kerasguide.spine import run

    results = []
    for lr in (1e-2, 3e-2):
        cfg = tiny_digits(epochs=2, monitors=False)
        cfg.optimizer.learning_rate = lr
        results.append(run(cfg, out=tmp_path, verbose=0))
    assert [r.status for r in results] == ["completed", "completed"]
    multiplexer, experiment, groups = _table(tmp_path)
    assert _experiment_runs(multiplexer) == sorted(f"{r.path.name}/tb" for r in results)
    infos = {h.name: h for h in experiment.hparam_infos}
    assert {"optimizer.learning_rate", "model.hidden", "train.batch_size", "model.activation"} <= set(infos)
    assert not any(name.startswith("tracking.") for name in infos)
    assert {v.string_value for v in infos["model.activation"].domain_discrete.values} >= {"relu", "gelu"}
    assert infos["train.batch_size"].domain_interval.min_value == 1  # PositiveInt
    assert infos["model.dropout"].type == api_pb2.DATA_TYPE_FLOAT64
    metric_names = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
    assert metric_names == {("train", "epoch_loss"), ("validation", "epoch_loss"),
                            ("train", "epoch_accuracy"), ("validation", "epoch_accuracy")}
    assert len(groups) == 2
    by_name = {g.name: g for g in groups}
    for result in results:
        group = by_name[result.path.name]
        assert [s.name for s in group.sessions] == [f"{result.path.name}/tb"]
        assert group.hparams["train.batch_size"].number_value == 128
        assert group.hparams["model.hidden"].string_value == "[16]"
        assert group.hparams["optimizer.learning_rate"].number_value == result.run_dir.read_config().optimizer.learning_rate
        rows = result.run_dir.read_metrics()
        metrics = _metrics(group.sessions[0])
        # Both groups found by the plugin: the last epoch's values.
        assert metrics[("train", "epoch_loss")] == pytest.approx(rows[-1]["loss"], rel=1e-5)
        assert metrics[("validation", "epoch_loss")] == pytest.approx(rows[-1]["val_loss"], rel=1e-5)
        assert metrics[("validation", "epoch_accuracy")] == pytest.approx(rows[-1]["val_accuracy"], rel=1e-5)


def test_a_search_is_one_experiment_with_a_session_per_trial(tmp_path):
    from kerasguide.search import tune

    cfg = tiny_digits(epochs=1, monitors=False, workers=0, algorithm="random", stages=[{"epochs": 1, "trials": 3}],
                      widen_on_border=False, space={"optimizer.learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
                                                    "model.activation": {"choices": ["relu", "tanh"]}})
    result = tune(cfg, out=tmp_path)
    assert result.status == "completed"
    multiplexer, experiment, groups = _table(result.path)  # what `kerasguide board SEARCH_DIR` serves
    assert _experiment_runs(multiplexer) == ["."]  # one experiment: the search's, none of the trials'
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == {"optimizer.learning_rate", "model.activation", "train.epochs"}
    lr = infos["optimizer.learning_rate"].domain_interval
    assert (lr.min_value, lr.max_value) == pytest.approx((1e-3, 1e-1))
    assert {v.string_value for v in infos["model.activation"].domain_discrete.values} == {"relu", "tanh"}
    assert {(m.name.group, m.name.tag) for m in experiment.metric_infos} >= {
        ("train", "epoch_loss"), ("validation", "epoch_loss"), ("validation", "epoch_accuracy")}
    trials = [t for stage in result.state["stages"] for t in stage["trials"]]
    assert len(trials) == 3 and len(groups) == 3
    by_run = {Path(g.sessions[0].name).parent.name: g for g in groups}
    assert set(by_run) == {Path(t["run_dir"]).name for t in trials}
    for trial in trials:
        group = by_run[Path(trial["run_dir"]).name]
        assert group.sessions[0].name == f"{trial['run_dir']}/tb"
        assert group.hparams["optimizer.learning_rate"].number_value == pytest.approx(
            trial["values"]["optimizer.learning_rate"])
        assert group.hparams["model.activation"].string_value == trial["values"]["model.activation"]
        # The trial's score is what the table shows for its validation group.
        assert _metrics(group.sessions[0])[("validation", "epoch_accuracy")] == pytest.approx(trial["score"], rel=1e-5)


def test_the_search_experiment_holds_every_stages_range():
    from kerasguide.search.hparams import search_hparams
    from kerasguide.search.space import ParamRange

    stage1 = [ParamRange("optimizer.learning_rate", "float", 1e-4, 1e-2, log=True),
              ParamRange("train.batch_size", "int", 32, 128), ParamRange("model.activation", "choice", choices=("relu",))]
    stage2 = [ParamRange("optimizer.learning_rate", "float", 1e-3, 1e-1, log=True),  # widened up (H28)
              ParamRange("train.batch_size", "int", 64, 256), ParamRange("model.activation", "choice", choices=("gelu",))]
    params = {p.name: p.domain for p in search_hparams([stage1, stage2], epochs=[1, 5])}
    assert (params["optimizer.learning_rate"].min_value, params["optimizer.learning_rate"].max_value) == (1e-4, 1e-1)
    assert (params["train.batch_size"].min_value, params["train.batch_size"].max_value) == (32, 256)
    assert params["train.batch_size"].dtype is int
    assert sorted(params["model.activation"].values) == ["gelu", "relu"]  # Discrete sorts its values
    assert (params["train.epochs"].min_value, params["train.epochs"].max_value) == (1, 5)


def test_kerasguide_board_of_runs_shows_each_session_with_its_metrics(tmp_path):
    """`kerasguide board RUN_DIR` and the app's board serve run directories, not their tb/: served as
    `--logdir RUN/tb`, a session is the run ".", whose metrics the plugin looks for in "./train" (none)."""
    from kerasguide.board import logdir_args
    from kerasguide.spine import run

    results = [run(tiny_digits(name, epochs=1, monitors=False), out=tmp_path, verbose=0) for name in ("a", "b")]
    one = logdir_args([results[0].path])
    assert one == ["--logdir", str(results[0].path)]
    (group,) = _table(results[0].path)[2]
    assert {("validation", "epoch_accuracy"), ("train", "epoch_loss")} <= set(_metrics(group))
    groups = _table(tmp_path, logdir_args([r.path for r in results]))[2]
    assert len(groups) == 2 and all(("validation", "epoch_loss") in _metrics(g) for g in groups)
    (plain,) = _table(results[0].path / "tb")[2]  # the bug this guards against: tb/ served as the logdir
    assert not _metrics(plain)
