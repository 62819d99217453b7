"""`kerasguide.Babysitter`: a user's own `model.fit` recorded as a complete run directory."""

from __future__ import annotations

import json
import os
import signal

import keras
import pytest
from sklearn.datasets import load_digits

from kerasguide.babysitter import Babysitter
from kerasguide.cli import EXIT_OK, main
from kerasguide.data import fingerprint
from kerasguide.diagnosis import diagnose_run, read_diagnosis
from kerasguide.monitors import default_monitors
from kerasguide.rundir import list_runs, read_json, read_metrics


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return x[:1200], y[:1200], x[1200:], y[1200:]


def mlp(lr=1e-2, optimizer=None, activation="relu", **dense):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation=activation, **dense),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer or keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_users_fit_becomes_a_complete_run_directory(digits, tmp_path, capsys):
    x, y, xv, yv = digits
    model = mlp()
    sitter = Babysitter(tmp_path / "my-fit", x=x, y=y, validation_data=(xv, yv), seed=0)
    model.fit(x, y, validation_data=(xv, yv), epochs=3, batch_size=64, callbacks=[sitter], verbose=0)
    run = tmp_path / "my-fit"
    record = read_json(run / "run.json")
    assert record["kind"] == "fit" and record["status"] == "completed" and record["seed"] == 0
    assert record["versions"]["keras"] == keras.__version__ and record["ended"]
    assert record["fingerprints"] == {"train": fingerprint(x, y), "validation": fingerprint(xv, yv)}
    assert record["data"]["train"] == len(x) and record["parameters"] == model.count_params()
    assert set(record["final_metrics"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert record["best"]["metric"] == "val_accuracy" and record["epochs_done"] == 3
    rows = read_metrics(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and "update_ratio" in rows[0]
    for folder in ("train", "validation", "monitor"):
        assert list((run / "tb" / folder).glob("events.out.tfevents.*")), folder
    for name in ("update_ratio.jsonl", "loss.jsonl", "probe.jsonl", "images.jsonl"):
        assert len((run / "monitor" / name).read_text().splitlines()) >= 1, name
    (best,) = (run / "checkpoints").glob("best-*.keras")
    assert "val_accuracy" in best.name and (run / "checkpoints" / "last.keras").exists()
    assert read_json(run / "diagnosis.json")["format_version"] == 1
    report = (run / "report.md").read_text()
    assert "kerasguide.Babysitter" in report and "## Diagnosis" in report
    # Every reader takes it as a run: diagnose, the runs browser's listing.
    assert main(["diagnose", str(run)]) == EXIT_OK
    assert "diagnosis.json" in capsys.readouterr().out
    (info,) = list_runs(tmp_path)
    assert info.kind == "fit" and info.status == "completed" and info.best["metric"] == "val_accuracy"


def test_a_diverging_fit_is_recorded_diverged_with_its_diagnosis(digits, tmp_path):
    x, y, xv, yv = digits
    model = mlp(optimizer=keras.optimizers.SGD(learning_rate=5.0))
    sitter = Babysitter(tmp_path / "diverged", x=x, y=y)
    model.fit(x, y, validation_data=(xv, yv), epochs=20, batch_size=64, callbacks=[sitter], verbose=0)
    record = read_json(tmp_path / "diverged" / "run.json")
    assert record["status"] == "diverged" and "divergence guard" in record["stop_reason"]
    assert record["epochs_done"] < 20
    assert "diverged" in {f.code for f in read_diagnosis(tmp_path / "diverged")}
    assert (tmp_path / "diverged" / "report.md").exists()


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    # A Babysitter that leaves its SIGINT/SIGTERM handler installed would swallow the next Ctrl-C of the process.
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    yield
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


class _SignalAt(keras.callbacks.Callback):
    """Sends this process a signal after `batch` batches of epoch 2 (as Ctrl-C or `kill` would)."""

    def __init__(self, signum, batch=3):
        super().__init__()
        self.signum, self.batch = signum, batch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == self.batch:
            os.kill(os.getpid(), self.signum)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_the_fit_cleanly_and_records_it_interrupted(digits, tmp_path, signum):
    x, y, xv, yv = digits
    before = signal.getsignal(signum)
    sitter = Babysitter(tmp_path / "stopped", x=x, y=y)
    history = mlp().fit(x, y, validation_data=(xv, yv), epochs=10, batch_size=32, verbose=0,
                        callbacks=[sitter, _SignalAt(signum)])
    record = read_json(tmp_path / "stopped" / "run.json")
    assert record["status"] == "interrupted" and "Ctrl-C" in record["error"]
    assert len(history.history["loss"]) == 2  # the epoch it was in, then no more
    assert (tmp_path / "stopped" / "diagnosis.json").exists() and (tmp_path / "stopped" / "report.md").exists()
    assert signal.getsignal(signum) is before  # the caller's handler is back


def test_without_signal_handling_a_context_manager_still_records_the_interrupt(digits, tmp_path, request):
    # The planted bug the default guards against: Keras skips on_train_end on KeyboardInterrupt, so a
    # bare callback would leave run.json `running`; the `with` block records it all the same.
    x, y, xv, yv = digits
    # Python's own Ctrl-C handler, as in a terminal (a process started in the background inherits SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    bare = Babysitter(tmp_path / "bare", x=x, y=y, handle_signals=False)
    with pytest.raises(KeyboardInterrupt):
        mlp().fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[bare, _SignalAt(signal.SIGINT)])
    assert read_json(tmp_path / "bare" / "run.json")["status"] == "running"  # what the planted bug leaves
    with pytest.raises(KeyboardInterrupt):
        with Babysitter(tmp_path / "with", x=x, y=y, handle_signals=False) as sitter:
            mlp().fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[sitter, _SignalAt(signal.SIGINT)])
    record = read_json(tmp_path / "with" / "run.json")
    assert record["status"] == "interrupted" and record["epochs_done"] == 1
    assert len((tmp_path / "with" / "monitor" / "loss.jsonl").read_text().splitlines()) == 1
    assert (tmp_path / "with" / "report.md").exists()


def test_a_fit_that_raises_is_recorded_failed_with_its_traceback(digits, tmp_path):
    x, y, _, _ = digits

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("a callback of yours failed")

    with pytest.raises(RuntimeError):
        with Babysitter(tmp_path / "failed") as sitter:
            mlp().fit(x, y, epochs=3, verbose=0, callbacks=[sitter, Boom()])
    record = read_json(tmp_path / "failed" / "run.json")
    assert record["status"] == "failed" and record["error"] == "RuntimeError: a callback of yours failed"
    assert "Traceback" in (tmp_path / "failed" / "error.txt").read_text()


def test_without_arrays_it_still_records_what_it_can(digits, tmp_path):
    x, y, xv, yv = digits
    sitter = Babysitter(tmp_path / "stream", checkpoints=False)
    train = __import__("tensorflow").data.Dataset.from_tensor_slices((x, y)).batch(64)
    mlp().fit(train, epochs=2, verbose=0, callbacks=[sitter])
    run = tmp_path / "stream"
    record = read_json(run / "run.json")
    assert record["status"] == "completed" and "fingerprints" not in record
    assert record["best"]["metric"] == "accuracy"  # no validation: the training accuracy
    assert (run / "monitor" / "update_ratio.jsonl").exists() and not (run / "monitor" / "probe.jsonl").exists()
    assert not (run / "checkpoints").exists()


def test_it_never_writes_over_a_recorded_run(digits, tmp_path):
    x, y, _, _ = digits
    sitter = Babysitter(tmp_path / "once", checkpoints=False, monitors=False)
    model = mlp()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[sitter])
    before = (tmp_path / "once" / "run.json").read_text()
    with pytest.raises(ValueError, match="already holds a run"):
        Babysitter(tmp_path / "once")
    with pytest.raises(RuntimeError, match="recorded a fit"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[sitter])
    assert (tmp_path / "once" / "run.json").read_text() == before
    with pytest.raises(ValueError, match="go together"):
        Babysitter(tmp_path / "x-only", x=x)


def test_diagnose_run_on_a_folder_of_monitor_records_only(digits, tmp_path):
    # What `default_monitors` wrote for a fit of a ReLU net whose biases start at -5 (dead units), and
    # nothing else: the diagnosis says what the records support instead of "not a run directory".
    x, y, _, _ = digits
    model = mlp(bias_initializer=keras.initializers.Constant(-5.0))
    records = tmp_path / "records"
    model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=default_monitors(x[:64], y[:64], record_dir=records))
    assert not (records / "run.json").exists()
    codes = {f.code for f in diagnose_run(records)}
    assert "dead_units" in codes
    assert main(["diagnose", str(records)]) == EXIT_OK
    assert json.loads((records / "diagnosis.json").read_text())["findings"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no monitors' records"):
        diagnose_run(empty)
