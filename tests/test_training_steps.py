"""`steps_per_execution` under tf.distribute strategies (issue 16): kept with one replica, 1 over several."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from kerasguide.config import RunConfig, save_config
from kerasguide.training import steps_per_execution

ROOT = Path(__file__).resolve().parents[1]


def _cfg(strategy: str, spe) -> RunConfig:
    cfg = RunConfig()
    cfg.train.strategy = strategy
    cfg.train.steps_per_execution = spe
    return cfg


@pytest.mark.parametrize("strategy", ["mirrored", "multi_worker"])
def test_one_replica_keeps_the_multi_step_loop(strategy):
    one = SimpleNamespace(num_replicas_in_sync=1)  # a strategy as steps_per_execution reads it
    assert steps_per_execution(_cfg(strategy, "auto"), 12, one) == 12
    assert steps_per_execution(_cfg(strategy, "auto"), 500, one) == 64
    assert steps_per_execution(_cfg(strategy, 8), 12, one) == 8


def test_several_replicas_use_one_step_and_say_why(caplog):
    two = SimpleNamespace(num_replicas_in_sync=2)
    with caplog.at_level("INFO", logger="kerasguide"):
        assert steps_per_execution(_cfg("mirrored", 8), 12, two) == 1
    (asked,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "steps_per_execution=8" in asked.getMessage() and "2 replicas" in asked.getMessage()
    caplog.clear()
    with caplog.at_level("INFO", logger="kerasguide"):
        assert steps_per_execution(_cfg("mirrored", "auto"), 12, two) == 1
    assert [r.levelname for r in caplog.records] == ["INFO"]  # the default is not a warning
    caplog.clear()
    assert steps_per_execution(_cfg("mirrored", 1), 12, two) == 1
    assert not caplog.records


@pytest.mark.parametrize("workers, expected", [(1, 12), (2, 1)])
def test_multi_worker_replicas_from_tf_config_without_a_strategy(workers, expected, monkeypatch):
    cluster = {"worker": [f"127.0.0.1:{2000 + i}" for i in range(workers)]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert steps_per_execution(_cfg("multi_worker", "auto"), 12) == expected


_MIRRORED = r'''
import json, sys
import numpy as np
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from kerasguide.config import RunConfig
from kerasguide.training import compile_model, make_tf_dataset, steps_per_execution

cfg = RunConfig()
cfg.model.hidden = [16]
cfg.train.strategy = "mirrored"
rng = np.random.default_rng(0)
x = rng.normal(size=(384, 8)).astype("float32")
y = (x[:, 0] + x[:, 1] > 0).astype("int32")
cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
out = {}

def fit(strategy, spe):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        compile_model(model, cfg, 1e-2, spe)
    history = model.fit(make_tf_dataset(x, y, 32, True, 0), epochs=4, verbose=0)
    return model.steps_per_execution, history.history["loss"]

one = tf.distribute.MirroredStrategy(cpus[:1])
cfg.train.steps_per_execution = "auto"
out["auto_one"] = steps_per_execution(cfg, 12, one)
out["one_spe"], out["one_loss"] = fit(one, out["auto_one"])
out["plain_spe"], out["plain_loss"] = fit(one, 1)
two = tf.distribute.MirroredStrategy(cpus[:2])
out["auto_two"] = steps_per_execution(cfg, 12, two)
out["two_spe"], out["two_loss"] = fit(two, out["auto_two"])
try:  # Keras' own loop of several steps over two replicas: why the rule exists
    fit(two, 4)
    out["keras_two"] = "works"
except Exception as error:
    out["keras_two"] = type(error).__name__ + ": " + str(error)
print("RESULT " + json.dumps(out))
'''


def _run_python(code: str, env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_mirrored_trains_several_steps_a_call_with_one_replica_and_one_step_over_two():
    """A fresh process with two logical CPUs: both strategies side by side."""
    out = _run_python(_MIRRORED)
    # One replica: 12 steps a call, and the same losses as one step a call.
    assert out["auto_one"] == out["one_spe"] == 12
    assert out["plain_spe"] == 1
    assert out["one_loss"] == pytest.approx(out["plain_loss"], rel=1e-4, abs=1e-5)
    assert out["one_loss"][-1] < out["one_loss"][0]
    # Two replicas: one step a call, and it trains.
    assert out["auto_two"] == out["two_spe"] == 1
    assert out["two_loss"][-1] < out["two_loss"][0]
    # If this fails, Keras now trains several steps a call over two replicas: lift the rule in
    # kerasguide.training.steps_per_execution (and update benchmarks/mirrored_steps.py's table).
    assert "must feed a value for placeholder" in out["keras_two"], out["keras_two"]


def test_a_multi_worker_run_of_one_worker_keeps_auto(tmp_path):
    """The run's own path (the compile stage passes no strategy): one worker, one CPU, "auto" stays an epoch."""
    cfg = RunConfig()
    cfg.name = "mw-spe"
    cfg.model.hidden = [16]
    cfg.train.epochs = 2
    cfg.train.batch_size = 128
    cfg.train.strategy = "multi_worker"
    cfg.optimizer.learning_rate = 1e-2
    cfg.checks.enabled = False
    cfg.monitor.enabled = False
    save_config(cfg, tmp_path / "mw.toml")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}}
    code = (
        "import json\nfrom kerasguide.spine import run\n"
        f"r = run({str(tmp_path / 'mw.toml')!r}, out={str(tmp_path / 'runs')!r}, verbose=0)\n"
        "record = r.run_dir.read_run()\n"
        "print('RESULT ' + json.dumps({'status': r.status, 'spe': record['steps_per_execution'], "
        "'steps': record['steps_per_epoch']}))\n"
    )
    out = _run_python(code, env=dict(os.environ, TF_CONFIG=json.dumps(tf_config)))
    assert out["status"] == "completed"
    assert out["spe"] == out["steps"] > 1
