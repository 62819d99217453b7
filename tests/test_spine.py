"""The run pipeline and the run directory: contents, reproducibility, signals."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from kerasguide.config import load_config, save_config
from kerasguide.rundir import RunDir, list_runs, read_json, read_metrics, read_run
from kerasguide.spine import run

ROOT = Path(__file__).resolve().parent.parent


def test_run_directory_contents(tmp_path, tiny_config):
    result = run(tiny_config, out=tmp_path, verbose=0)
    assert result.status == "completed"
    path = result.path
    assert path.parent == tmp_path
    assert path.name.split("-")[2] == "tiny"  # <date>-<time>-<name>-<hash>

    # config.toml: the resolved config, every default filled in
    resolved = tomllib.loads((path / "config.toml").read_text())
    assert resolved["train"]["epochs"] == 2
    assert "batch_size" in resolved["train"] and "epsilon" in resolved["data"]
    assert load_config(path / "config.toml") == tiny_config

    record = json.loads((path / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["format_version"] == 1
    for key in ("started", "ended", "seed", "versions", "platform", "fingerprints", "final_metrics", "best"):
        assert record[key] is not None, key
    assert {"python", "tensorflow", "keras", "kerasguide"} <= set(record["versions"])
    assert set(record["fingerprints"]) == {"train", "validation"}
    assert record["best"]["metric"] == "val_accuracy"
    assert 1 <= record["best"]["epoch"] <= 2
    assert record["final_metrics"]["val_accuracy"] > 0.6
    assert "git" in record  # the working directory's commit, or null outside a repository
    # steps_per_execution = "auto": one compiled call per epoch (at most 64 steps)
    assert record["steps_per_execution"] == record["steps_per_epoch"] == 12

    rows = list(csv.DictReader((path / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for column in ("loss", "val_loss", "accuracy", "val_accuracy", "lr", "seconds"):
        assert column in rows[0]
    assert float(rows[0]["lr"]) == pytest.approx(1e-2)

    checkpoints = sorted(p.name for p in (path / "checkpoints").iterdir())
    assert "last.keras" in checkpoints
    best = [c for c in checkpoints if c.startswith("best-")]
    assert len(best) == 1 and "val_accuracy=" in best[0]
    assert f"{record['best']['value']:.4f}" in best[0]

    assert (path / "preprocess.npz").exists()
    report = (path / "report.md").read_text()
    assert "## Outcome" in report and "loss.png" in report
    assert (path / "loss.png").stat().st_size > 1000

    events = [p for p in (path / "tb").rglob("events.out.tfevents*")]
    assert events, "no TensorBoard event files"
    _assert_tb_has(path / "tb", {"epoch_loss", "config", "_hparams_/session_start_info"})


def _assert_tb_has(tb: Path, wanted: set[str]):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for sub in [tb, *[p for p in tb.iterdir() if p.is_dir()]]:
        acc = EventAccumulator(str(sub), size_guidance={"tensors": 0})
        acc.Reload()
        for values in acc.Tags().values():
            if isinstance(values, list):
                tags.update(values)
    assert wanted <= tags, tags


def test_mixed_precision_and_jit_compile(tmp_path, tiny_config):
    """`train.mixed_precision` and `jit_compile` train; the global dtype policy is the caller's again after."""
    import keras

    tiny_config.train.mixed_precision = True
    tiny_config.train.jit_compile = True
    tiny_config.train.epochs = 1
    try:
        result = run(tiny_config, out=tmp_path, verbose=0)
        after = keras.mixed_precision.global_policy().name
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result.status == "completed", result.error
    model = keras.models.load_model(result.path / "checkpoints" / "last.keras")
    hidden = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    assert hidden.dtype_policy.name == "mixed_float16"
    assert model.get_layer("output").dtype_policy.name == "float32"  # the softmax stays float32
    assert after == "float32"  # later runs (search, ensemble members) are not mixed


def test_checkpoint_loads_and_predicts(tmp_path, tiny_config):
    import keras

    result = run(tiny_config, out=tmp_path, verbose=0)
    best = next((result.path / "checkpoints").glob("best-*.keras"))
    model = keras.models.load_model(best)
    assert model.predict(np.zeros((1, 64), np.float32), verbose=0).shape == (1, 10)


def test_reproducible_from_its_own_config(tmp_path, tiny_config):
    tiny_config.model.dropout = 0.2  # randomness in training too
    first = run(tiny_config, out=tmp_path / "a", verbose=0)
    again = run(first.path / "config.toml", out=tmp_path / "b", verbose=0)
    a = read_metrics(first.path / "metrics.csv")
    b = read_metrics(again.path / "metrics.csv")
    for row_a, row_b in zip(a, b, strict=True):
        for key in ("loss", "val_loss", "val_accuracy"):
            assert row_a[key] == pytest.approx(row_b[key], rel=1e-4, abs=1e-6), key
    assert read_run(first.path).record["fingerprints"] == read_run(again.path).record["fingerprints"]
    # and a different seed gives a different run
    tiny_config.train.seed = 1
    other = run(tiny_config, out=tmp_path / "c", verbose=0)
    assert read_metrics(other.path / "metrics.csv")[0]["loss"] != a[0]["loss"]


def test_run_dirs_are_never_reused(tmp_path, tiny_config):
    tiny_config.train.epochs = 1
    a = run(tiny_config, out=tmp_path, verbose=0)
    b = run(tiny_config, out=tmp_path, verbose=0)
    assert a.path != b.path
    assert len(list_runs(tmp_path)) == 2


def test_failure_is_recorded(tmp_path, tiny_config):
    tiny_config.data.source = "npz:/no/such/file.npz"
    from kerasguide.config import ConfigError

    with pytest.raises(ConfigError):
        run(tiny_config, out=tmp_path, verbose=0)
    (info,) = list_runs(tmp_path)
    assert info.status == "failed"
    assert "does not exist" in info.record["error"]


def test_user_builder_is_recorded(tmp_path, tiny_config):
    builder = tmp_path / "mine.py"
    builder.write_text(
        "import keras\n"
        "def build(config, input_shape, num_classes):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(8, activation='relu'),\n"
        "                             keras.layers.Dense(num_classes, activation='softmax')])\n"
    )
    tiny_config.model.kind = f"python:{builder}:build"
    result = run(tiny_config, out=tmp_path / "runs", verbose=0)
    assert result.status == "completed"
    import hashlib

    assert read_run(result.path).record["user_code"] == {"path": str(builder), "function": "build", "hp": {},
                                                         "sha256": hashlib.sha256(builder.read_bytes()).hexdigest()}
    assert "User code ran" in (result.path / "report.md").read_text()


def test_json_progress_lines(tmp_path, tiny_config, capsys):
    run(tiny_config, out=tmp_path, json_progress=True, verbose=0)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert events[0] == "start" and events[-1] == "end"
    epochs = [line for line in lines if line["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"total", "metrics", "seconds", "eta"} <= set(epochs[0])
    assert lines[-1]["status"] == "completed"


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, tiny_config):
    """`strategy = "mirrored"` trains over two logical CPU devices (a fresh process)."""
    tiny_config.train.strategy = "mirrored"
    config = tmp_path / "m.toml"
    save_config(tiny_config, config)
    code = (
        "import sys, tensorflow as tf\n"
        "from kerasguide.config import load_config\n"
        "from kerasguide.spine import run\nfrom kerasguide.training import make_strategy as _strategy\n"
        f"r = run({str(config)!r}, out={str(tmp_path / 'runs')!r}, verbose=0)\n"
        "s = _strategy(load_config(" + repr(str(config)) + "))\n"
        "print('REPLICAS', s.num_replicas_in_sync, r.status)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert "REPLICAS 2 completed" in out.stdout, out.stderr[-2000:]


def test_multi_worker_strategy_with_a_single_worker_tf_config(tmp_path, tiny_config):
    """`strategy = "multi_worker"` builds MultiWorkerMirroredStrategy from TF_CONFIG and trains (a fresh
    process: collective ops are configured once per process). One worker here; more is a cluster."""
    import socket

    tiny_config.train.strategy = "multi_worker"
    tiny_config.checks.enabled = True  # the checks run on a plain twin of the distributed model
    config = tmp_path / "mw.toml"
    save_config(tiny_config, config)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}}
    code = (
        "import tensorflow as tf\n"
        "import kerasguide.spine.stages.model as model_stage\n"
        "from kerasguide.spine import run\n"
        "used = []\n"
        "strategy_of = model_stage.make_strategy\n"
        "model_stage.make_strategy = lambda cfg: used.append(strategy_of(cfg)) or used[-1]\n"
        f"r = run({str(config)!r}, out={str(tmp_path / 'runs')!r}, verbose=0)\n"
        "s = used[0]\n"
        "print('STRATEGY', isinstance(s, tf.distribute.MultiWorkerMirroredStrategy), s.num_replicas_in_sync,\n"
        "      s.cluster_resolver.task_type, s.cluster_resolver.task_id, r.status, r.error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env=dict(os.environ, TF_CONFIG=json.dumps(tf_config)))
    assert "STRATEGY True 1 worker 0 completed None" in out.stdout, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["checks"]["passed"] and record["final_metrics"]["val_accuracy"] > 0.5
    assert load_config(run_dir / "config.toml").train.strategy == "multi_worker"


def _start_long_run(tmp_path) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / "long.toml"
    config.write_text(
        'name = "long"\nchecks = false\n[model]\nhidden = [32]\n'
        "[train]\nepochs = 500\nbatch_size = 32\nsteps_per_execution = 1\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerasguide.cli", "run", str(config), "--out", str(tmp_path / "runs"), "--json-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    run_dir = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        if event["event"] == "start":
            run_dir = Path(event["run_dir"])
        if event["event"] == "epoch" and event["epoch"] >= 2:
            return proc, run_dir
    proc.kill()
    raise AssertionError(f"run did not reach epoch 2: {proc.stderr.read()[-2000:]}")


def test_sigterm_marks_interrupted_and_keeps_files(tmp_path):
    proc, run_dir = _start_long_run(tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    record = read_json(run_dir / "run.json")
    assert record["status"] == "interrupted"
    assert record["ended"]
    assert len(read_metrics(run_dir / "metrics.csv")) >= 2
    assert (run_dir / "checkpoints" / "last.keras").exists()
    assert (run_dir / "report.md").exists()
    assert "Traceback" not in err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "interrupted"


def test_sigkill_leaves_a_readable_directory(tmp_path):
    proc, run_dir = _start_long_run(tmp_path)
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=60)
    info = read_run(run_dir)
    assert info.status == "killed"  # never finished, its process gone; readers still parse everything
    assert read_json(run_dir / "run.json") is not None
    rows = read_metrics(run_dir / "metrics.csv")
    assert rows and all(not math.isnan(r["loss"]) for r in rows)
    assert load_config(run_dir / "config.toml").name == "long"
    # At most the checkpoint the writer thread was saving: hidden, and no reader takes it for a checkpoint.
    leftovers = list(run_dir.rglob(".*.tmp*"))
    assert len(leftovers) <= 1 and all(p.parent.name == "checkpoints" for p in leftovers), leftovers
    listed = subprocess.run([sys.executable, "-m", "kerasguide.cli", "runs", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert listed.returncode == 0 and run_dir.name in listed.stdout


def test_rundir_writes_are_atomic(tmp_path, monkeypatch):
    """A crash in the middle of a write leaves the old file whole."""
    rd = RunDir(tmp_path)
    rd.write_json("run.json", {"status": "running"})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        rd.write_json("run.json", {"status": "completed"})
    monkeypatch.undo()
    assert read_json(tmp_path / "run.json") == {"status": "running"}
    assert not list(tmp_path.glob(".*.tmp*"))


def test_nan_is_written_as_null(tmp_path):
    rd = RunDir(tmp_path)
    rd.write_json("x.json", {"a": float("nan"), "b": [float("inf"), 1.0]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.0]}


def test_predictor_applies_the_saved_preprocessing(tmp_path, tiny_config):
    """Inference uses the statistics fitted on the training split (recipe A2)."""
    import kerasguide
    from kerasguide.data import load_dataset

    result = run(tiny_config, out=tmp_path, verbose=0)
    predictor = kerasguide.load_predictor(result.path)
    ds = load_dataset(tiny_config.data, tiny_config.train.seed)
    expected = predictor.model.predict(ds.x_val, verbose=0)
    np.testing.assert_allclose(predictor.predict(ds.raw_val), expected, rtol=1e-5, atol=1e-6)
    assert np.mean(predictor.predict_classes(ds.raw_val) == ds.y_val) > 0.6
    # planted bug: statistics refitted on the inputs at hand give other predictions
    from kerasguide.data import Preprocessor

    refitted = Preprocessor("standardize").fit(ds.raw_val).transform(ds.raw_val)
    assert not np.allclose(predictor.model.predict(refitted, verbose=0), expected, atol=1e-3)
    with pytest.raises(Exception, match="no preprocess.npz|no best"):
        kerasguide.load_predictor(tmp_path)


def test_epoch_scalars_write_train_and_validation_like_keras(tmp_path):
    import keras
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from kerasguide.callbacks import EpochScalars

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, validation_split=0.25, epochs=3, verbose=0, callbacks=[EpochScalars(tmp_path)])

    def series(folder, tag):
        events = EventAccumulator(str(tmp_path / folder), size_guidance={"tensors": 0}).Reload()
        return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]

    for key in ("loss", "accuracy"):
        assert series("train", f"epoch_{key}") == [(i, pytest.approx(v, rel=1e-6))
                                                    for i, v in enumerate(history.history[key])]
        assert series("validation", f"epoch_{key}") == [(i, pytest.approx(v, rel=1e-6))
                                                         for i, v in enumerate(history.history[f"val_{key}"])]
    assert [v for _, v in series("train", "epoch_learning_rate")] == pytest.approx([0.1] * 3)


def _count_traces(model) -> list[int]:
    traces = [0]
    step = model.train_step

    def counted(data):
        traces[0] += 1  # Python runs only while the step is traced
        return step(data)

    model.train_step = counted
    return traces


@pytest.mark.parametrize("prebuild", [True, False])
def test_build_for_fit_makes_fit_trace_its_step_once(tiny_config, prebuild):
    import keras

    from kerasguide.training import build_for_fit, compile_model, make_tf_dataset, prepare

    ds, model = prepare(tiny_config)
    compile_model(model, tiny_config, 1e-2, steps_per_exec=4)
    weights = [np.array(w) for w in model.weights]
    if prebuild:
        assert build_for_fit(model, ds.x_train, ds.y_train)
        # Nothing learned, nothing counted: the weights are the initial ones and every metric is reset.
        assert all(np.array_equal(a, np.array(b)) for a, b in zip(weights, model.weights, strict=True))
        assert all(float(np.sum(np.abs(np.array(v)))) == 0.0 for m in model.metrics for v in m.variables)
    traces = _count_traces(model)
    train = make_tf_dataset(ds.x_train, ds.y_train, 128, True, 0)
    model.fit(train, epochs=2, verbose=0)
    # Keras builds the optimizer and metric state inside the first trace, and a tf.function
    # that creates variables is traced again: the planted case (no build_for_fit) shows it.
    assert traces[0] == (1 if prebuild else 2)
    assert isinstance(model.optimizer, keras.optimizers.Optimizer) and model.optimizer.iterations.numpy() > 0


def test_build_for_fit_leaves_strategies_to_keras(tiny_config):
    import tensorflow as tf

    from kerasguide.training import build_for_fit, compile_model, prepare

    ds, _ = prepare(tiny_config)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        from kerasguide.models import build_model

        model = build_model(tiny_config, ds.input_shape, ds.num_classes, ds.image_shape)
        compile_model(model, tiny_config, 1e-2)
    assert build_for_fit(model, ds.x_train, ds.y_train) is False


_WRAPPED = ("pybind11::error_already_set: MISMATCH of original and normalized active exception types: "
            "ORIGINAL InvalidArgumentError REPLACED BY KeyboardInterrupt: <EMPTY MESSAGE>")


def test_is_interrupt_sees_through_tensorflows_wrapping():
    from kerasguide.interrupts import is_interrupt

    assert is_interrupt(KeyboardInterrupt())
    assert is_interrupt(RuntimeError(_WRAPPED))  # what SIGTERM mid-trace gave in a real run
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise ValueError("while handling") from inner
    except ValueError as outer:
        assert is_interrupt(outer)
    assert not is_interrupt(RuntimeError("a real failure"))
    assert not is_interrupt(None)


def test_a_wrapped_interrupt_marks_the_run_interrupted_not_failed(tmp_path, tiny_config, monkeypatch):
    # A signal that lands while TensorFlow builds an exception of its own comes out of the
    # C++ layer as this RuntimeError (seen in the GUI's cancel test): the run is interrupted.
    import keras

    from kerasguide.spine import loop

    class Wrapped(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError(_WRAPPED)

    real = dict(loop.STAGES)["fit"]

    def fit_with_the_signal(ctx):
        ctx.callbacks.append(Wrapped())
        real(ctx)

    stages = [(name, fit_with_the_signal if stage is real else stage) for name, stage in loop.STAGES]
    monkeypatch.setattr(loop, "STAGES", stages)
    result = run(tiny_config, out=tmp_path, verbose=False)
    assert result.status == "interrupted"
    assert read_run(result.run_dir.path).status == "interrupted"
