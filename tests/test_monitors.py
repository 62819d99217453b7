"""The monitors (recipes E16-E20) on tiny real trainings: what they measure is what happens."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasguide.monitors import (  # noqa: E402
    DivergenceGuard,
    EventWriter,
    FirstLayerImages,
    LossMonitor,
    ProbeMonitor,
    UpdateRatioMonitor,
    activation_kind,
    loss_noise,
    roughness,
    weight_grid,
)
from kerasguide.monitors.signals import histogram, png_bytes, unit_stats  # noqa: E402


def data(n=96, d=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, :classes].argmax(axis=1)).astype("int64")
    return x, y


def mlp(d=16, classes=4, activation="relu", bias=0.0, stddev=None, constraint=None, seed=0):
    keras.utils.set_random_seed(seed)
    init = keras.initializers.RandomNormal(stddev=stddev, seed=seed) if stddev else "he_normal"
    inputs = keras.Input((d,))
    h = keras.layers.Dense(12, kernel_initializer=init, bias_initializer=keras.initializers.Constant(bias),
                           kernel_constraint=constraint, name="hidden")(inputs)
    h = keras.layers.Activation(activation, name="act")(h)
    outputs = keras.layers.Dense(classes, activation="softmax", name="out")(h)
    return keras.Model(inputs, outputs)


def compiled(model, spe=1, optimizer=None):
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=spe)
    return model


class StepSnapshots(keras.callbacks.Callback):
    """Reference: weights around every step, with steps_per_execution=1."""

    def on_train_batch_begin(self, batch, logs=None):
        self.before = [np.array(v.numpy(), dtype=np.float64) for v in self.model.trainable_weights]

    def on_train_batch_end(self, batch, logs=None):
        after = [np.array(v.numpy(), dtype=np.float64) for v in self.model.trainable_weights]
        self.ratios.append([np.linalg.norm(a - b) / np.linalg.norm(b) if np.linalg.norm(b) > 0 else np.nan
                            for a, b in zip(after, self.before, strict=True)])

    def on_train_begin(self, logs=None):
        self.ratios = []


# ---------------------------------------------------------------- pure helpers
def test_loss_noise_measures_relative_jitter_not_trend():
    trend = np.exp(-np.linspace(0, 3, 200))
    assert loss_noise(trend) < 1e-3
    rng = np.random.default_rng(0)
    noisy = trend * np.exp(rng.normal(0, 0.2, 200))
    assert loss_noise(noisy) == pytest.approx(0.2, rel=0.15)
    assert math.isnan(loss_noise([1.0, float("nan")]))


def test_roughness_smooth_vs_noise():
    rng = np.random.default_rng(0)
    assert roughness(rng.normal(size=(20, 8, 8))) == pytest.approx(1.0, abs=0.15)
    x = np.linspace(0, 1, 8)
    assert roughness(np.outer(x, x)[None]) < 0.1
    assert math.isnan(roughness(np.ones((3, 1, 5))))


def test_weight_grid_shapes():
    grid, tiles = weight_grid(np.random.rand(64, 16), (8, 8, 1), scale=1)
    assert tiles.shape == (16, 8, 8, 1) and grid.dtype == np.uint8 and grid.shape[-1] == 1
    assert grid.shape[:2] == (4 * 9 + 1, 4 * 9 + 1)  # 4x4 tiles of 8x8 with 1-pixel borders
    _, tiles = weight_grid(np.random.rand(3, 3, 3, 10))  # Conv2D RGB kernels
    assert tiles.shape == (10, 3, 3, 3)
    _, tiles = weight_grid(np.random.rand(5, 1, 7))  # Conv1D
    assert tiles.shape == (7, 1, 5, 1)
    _, tiles = weight_grid(np.random.rand(10, 4))  # not square: strips
    assert tiles.shape == (4, 1, 10, 1)
    with pytest.raises(ValueError, match="rank 2, 3 or 4"):
        weight_grid(np.zeros(5))


def test_png_bytes_decode_to_the_grid():
    rng = np.random.default_rng(0)
    for channels in (1, 3):
        grid, _ = weight_grid(rng.normal(size=(3, 3, channels, 10)))  # enlarged: repeated rows and columns
        assert grid.shape[-1] == channels
        np.testing.assert_array_equal(tf.io.decode_png(png_bytes(grid)).numpy(), grid)


def test_activation_kind():
    assert activation_kind(keras.layers.Activation("tanh")) == "tanh"
    assert activation_kind(keras.layers.Dense(3, activation="relu")) == "relu"
    assert activation_kind(keras.layers.Dense(3)) is None
    assert activation_kind(keras.layers.LeakyReLU()) == "leaky_relu"


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="every_steps=-1"):
        UpdateRatioMonitor(every_steps=-1)
    with pytest.raises(ValueError, match="factor=1"):
        DivergenceGuard(factor=1)
    with pytest.raises(ValueError, match="every_epochs=0"):
        FirstLayerImages(every_epochs=0)
    with pytest.raises(ValueError, match="equal length"):
        ProbeMonitor(np.zeros((3, 2)), np.zeros(2))


# -------------------------------------------------------------- update ratios
def test_update_ratio_is_per_step_whatever_steps_per_execution():
    """Measured inside the compiled step: with 4 steps per execution, still each step's own ratio."""
    x, y = data()
    reference = StepSnapshots()
    compiled(mlp(), spe=1).fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[reference])
    expected = np.mean(np.asarray(reference.ratios)[-6:], axis=0)  # epoch 2: 6 steps
    monitor = UpdateRatioMonitor()
    model = compiled(mlp(), spe=4)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[monitor])
    record = monitor.records[-1]
    assert record["steps"] == 6
    measured = np.array(list(record["tensors"].values()))
    # A ratio taken across each execution (the planted bug) would be ~2-4x these.
    np.testing.assert_allclose(measured, expected, rtol=1e-3)
    assert model.steps_per_execution == 4
    assert set(record["layers"]) == {"hidden", "out"}


def test_update_ratio_at_the_first_step_of_each_execution():
    x, y = data()
    reference = StepSnapshots()
    compiled(mlp(), spe=1).fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[reference])
    monitor = UpdateRatioMonitor(every_steps=0)
    compiled(mlp(), spe=2).fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    assert monitor.records[0]["steps"] == 3  # 6 steps in 3 executions
    expected = np.nanmean(np.asarray(reference.ratios)[[0, 2, 4]], axis=0)  # zero biases at step 0: no ratio
    np.testing.assert_allclose(list(monitor.records[0]["tensors"].values()), expected, rtol=1e-3)


def test_update_ratio_every_n_steps_and_fallback_agree():
    x, y = data()
    every = UpdateRatioMonitor(every_steps=3)
    compiled(mlp(), spe=2).fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[every])
    assert every.records[0]["steps"] == 2  # steps 0 and 3 of 6
    exact = UpdateRatioMonitor()
    compiled(mlp(), spe=1).fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[exact])
    fallback = UpdateRatioMonitor()
    fallback._force_fallback = True  # what a multi-replica strategy uses: weights compared across executions
    model = compiled(mlp(), spe=1)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[fallback])
    assert fallback.records[0]["median"] == pytest.approx(exact.records[0]["median"], rel=1e-3)


def test_hooks_keep_constraints_and_are_removed():
    x, y = data()
    constraint = keras.constraints.MaxNorm(0.05)
    model = compiled(mlp(constraint=constraint), spe=3, optimizer=keras.optimizers.SGD(1.0))
    monitor, losses = UpdateRatioMonitor(), LossMonitor()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[monitor, losses])
    kernel = model.get_layer("hidden").kernel
    assert kernel.constraint is constraint  # the original constraint is back
    assert np.linalg.norm(kernel.numpy(), axis=0).max() <= 0.05 + 1e-6  # and it was applied all along
    assert all(v.constraint is None for v in model.trainable_weights if v is not kernel)
    # One instance, a second fit: state reset, hooks installed again, and a later plain fit is untouched.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[monitor])
    assert len(monitor.records) == 1
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert kernel.constraint is constraint


# ---------------------------------------------------------------------- losses
def test_batch_losses_are_every_step_and_match_steps_per_execution_1():
    x, y = data()
    slow = LossMonitor()
    compiled(mlp(), spe=1).fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[slow])
    fast = LossMonitor()
    logs_seen = {}

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs_seen.update(logs)

    compiled(mlp(), spe=6).fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[fast, Keep()],
                               validation_data=(x[:32], y[:32]))
    assert [len(r["losses"]) for r in fast.records] == [6, 6]
    np.testing.assert_allclose(fast.records[1]["losses"], slow.records[1]["losses"], rtol=1e-4)
    assert np.mean(fast.records[1]["losses"]) == pytest.approx(logs_seen["loss"], rel=1e-4)
    assert logs_seen["accuracy_gap"] == pytest.approx(logs_seen["accuracy"] - logs_seen["val_accuracy"])
    assert "loss_noise" in logs_seen


# ----------------------------------------------------------------------- probe
# A fit with at most three probes left runs them eagerly, a longer one traces its function: the same numbers.
@pytest.mark.parametrize("epochs", [1, 5])
def test_probe_statistics_match_a_direct_computation(epochs):
    x, y = data()
    model = compiled(mlp(bias=-0.5))
    probe = ProbeMonitor(x[:64], y[:64])
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[probe])
    assert probe._traced == (epochs == 5) and len(probe.records) == epochs
    record = probe.records[-1]
    act = keras.Model(model.inputs, model.get_layer("act").output)(x[:64]).numpy()
    stats = unit_stats(act, "relu")
    assert record["layers"]["act"]["dead_fraction"] == pytest.approx(stats["dead_fraction"])
    assert record["layers"]["act"]["act_std"] == pytest.approx(stats["std"], rel=1e-4)
    assert sum(record["layers"]["act"]["act_hist"]["counts"]) == act.size
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y[:64], model(x[:64], training=False))
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, model.get_layer("hidden").trainable_weights)
    norm = math.sqrt(sum(float(tf.reduce_sum(g ** 2)) for g in grads))
    assert record["layers"]["hidden"]["grad_norm"] == pytest.approx(norm, rel=1e-4)
    assert record["order"] == ["hidden", "out"]


@pytest.mark.parametrize("epochs", [1, 5])
def test_probe_histograms_counted_in_its_graph_match_numpy(epochs):
    x, y = data()
    model = compiled(mlp())
    probe = ProbeMonitor(x[:64], y[:64])
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[probe])
    assert probe._traced == (epochs == 5)
    layer = probe.records[-1]["layers"]["hidden"]
    expected = histogram(model.get_layer("hidden").kernel.numpy())  # the NumPy reference, same bins
    assert layer["weight_hist"]["counts"] == expected["counts"]
    np.testing.assert_allclose(layer["weight_hist"]["edges"], expected["edges"], rtol=1e-5)
    act = keras.Model(model.inputs, model.get_layer("act").output)(x[:64]).numpy()
    assert probe.records[-1]["layers"]["act"]["act_hist"]["counts"] == histogram(act)["counts"]


def test_one_compiled_call_at_each_epochs_end_for_every_monitor():
    # Update ratios, batch losses, the probe's copy of the weights and the first layer's kernel: one
    # tf.function call an epoch (each call costs 0.2-0.5 ms of Python).
    from kerasguide.monitors import default_monitors
    from kerasguide.monitors.epoch_end import EpochEnd

    x, y = data()
    calls = []
    run = EpochEnd._run

    def counted(self, keys):
        calls.append((epochs_seen[-1] if epochs_seen else -1, tuple(k.split("/")[0] + k.split("/")[-1] * k.startswith("probe")
                                                                    for k in keys)))
        return run(self, keys)

    epochs_seen = []

    class Wait(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_seen.append(epoch)

    callbacks = [Wait(), *default_monitors(x[:64], y[:64], image_shape=(4, 4, 1), images_every_epochs=1)]
    EpochEnd._run = counted
    try:
        compiled(mlp(), spe=3).fit(x, y, batch_size=16, epochs=6, verbose=0, callbacks=callbacks)
    finally:
        EpochEnd._run = run
    assert [epoch for epoch, _ in calls] == list(range(6))  # one call an epoch
    assert all(keys == ("update_ratio", "loss", "probesnapshot", "images") for _, keys in calls)
    probe = next(c for c in callbacks if isinstance(c, ProbeMonitor))
    assert len(probe.records) == 6 and all(len(r["losses"]) == 6 for r in callbacks[2].records)


def test_probe_sees_dead_and_saturated_units():
    x, y = data()
    dead = ProbeMonitor(x[:64], y[:64])
    compiled(mlp(bias=-20.0)).fit(x, y, epochs=1, verbose=0, callbacks=[dead])
    assert dead.records[0]["layers"]["act"]["dead_fraction"] == 1.0
    saturated = ProbeMonitor(x[:64], y[:64])
    compiled(mlp(activation="tanh", stddev=5.0)).fit(x, y, epochs=1, verbose=0, callbacks=[saturated])
    assert saturated.records[0]["layers"]["act"]["saturated_fraction"] > 0.7
    assert saturated.records[0]["layers"]["act"]["dead_fraction"] == 0.0


@pytest.mark.parametrize("busy", [True, False])
def test_probe_measures_its_epochs_weights_while_training_goes_on(busy):
    # Until its function is traced (by its first call, on the background thread; in a fit of at most
    # three epochs, busy here, every probe runs eagerly there), the probe runs
    # there on a copy of the weights taken at the epoch's end; afterwards it runs at the epoch's end
    # on the training thread, on the weights copied in the epoch's one compiled call of every
    # monitor. Busy: the thread is kept busy so that it probes only after later
    # epochs have trained: a probe that read the live variables (the planted bug) would see the
    # last weights in every record. Not busy: the later epochs take the training-thread path.
    import threading
    import time

    from kerasguide.monitors import background

    x, y = data()
    model = compiled(mlp(), spe=2, optimizer=keras.optimizers.SGD(0.5))
    seen = []

    class Capture(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([np.array(w.numpy(), dtype=np.float64) for w in self.model.get_layer("hidden").weights])
            if not busy:
                time.sleep(0.2)  # room for the background tracing: later probes run here

    probe = ProbeMonitor(x[:64], y[:64])
    threads = []
    run = probe._run
    probe._run = lambda *args: (threads.append(threading.current_thread() is threading.main_thread()), run(*args))[1]
    if busy:
        background.executor().submit(time.sleep, 1.5)
    epochs = 3 if busy else 6
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[Capture(), probe])
    assert len(probe.records) == epochs  # complete when fit() returns
    assert threads[0] is False  # the first probe traces (or runs eagerly), in the background
    if not busy:
        assert any(threads)  # later ones ran at their epoch's end
    norms = [math.sqrt(sum(float(np.sum(w ** 2)) for w in weights)) for weights in seen]
    assert abs(norms[0] - norms[-1]) > 1e-3 * norms[-1]  # the weights did move between epochs
    for record, norm in zip(probe.records, norms, strict=True):
        assert record["layers"]["hidden"]["weight_norm"] == pytest.approx(norm, rel=1e-5)


def test_an_interrupted_fit_keeps_the_records_of_its_epochs(tmp_path):
    # Ctrl-C in epoch 3: Keras never calls on_train_end, and epoch 2's probe is still queued for
    # the background thread. finish_monitors (the pipeline's diagnosis stage) writes it anyway.
    from kerasguide.monitors import finish_monitors

    x, y = data()
    probe = ProbeMonitor(x[:32], y[:32], record_dir=tmp_path)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compiled(mlp()).fit(x, y, epochs=5, verbose=0, callbacks=[probe, Interrupt()])
    finish_monitors([probe])
    lines = (tmp_path / "probe.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_a_failing_background_job_is_logged_and_training_goes_on(caplog):
    x, y = data()
    images = FirstLayerImages((4, 4, 1), every_epochs=1)

    def broken(*args):
        raise RuntimeError("planted")

    images._draw = broken
    with caplog.at_level("WARNING", logger="kerasguide"):
        history = compiled(mlp()).fit(x, y, epochs=2, verbose=0, callbacks=[images])
    assert len(history.history["loss"]) == 2
    assert images._errors == ["RuntimeError: planted"] * 2
    assert sum("planted" in r.getMessage() for r in caplog.records) == 1  # said once, not every epoch


# ------------------------------------------------------------ images and files
def test_images_records_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = data(d=16)
    callbacks = [
        UpdateRatioMonitor(log_dir=tmp_path / "tb", record_dir=tmp_path / "mon"),
        LossMonitor(log_dir=tmp_path / "tb", record_dir=tmp_path / "mon"),
        ProbeMonitor(x[:32], y[:32], log_dir=tmp_path / "tb", record_dir=tmp_path / "mon"),
        FirstLayerImages((4, 4, 1), every_epochs=2, log_dir=tmp_path / "tb", record_dir=tmp_path / "mon"),
    ]
    compiled(mlp(), spe=3).fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=callbacks)
    files = sorted(p.name for p in (tmp_path / "mon").iterdir())
    assert files == ["first_layer_epoch=002.png", "first_layer_epoch=003.png", "images.jsonl", "loss.jsonl",
                     "probe.jsonl", "update_ratio.jsonl"]
    assert (tmp_path / "mon" / "first_layer_epoch=002.png").read_bytes()[:4] == b"\x89PNG"
    images = [json.loads(line) for line in (tmp_path / "mon" / "images.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in images] == [2, 3] and images[0]["tiles"] == 12
    assert len(list((tmp_path / "tb").glob("events.*"))) == 1  # one shared writer
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0, "images": 0}).Reload()
    tags = set(events.Tags()["tensors"])
    assert {"batch_loss", "update_ratio/hidden", "dead_fraction/act", "gradient_norm/hidden",
            "activations/act", "gradients/hidden/kernel", "weights/hidden/kernel"} <= tags
    assert len(events.Tensors("batch_loss")) == 18  # every step of 3 epochs
    assert len(events.Tensors("first_layer")) == 2


def test_event_writer_text_and_histogram(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writer = EventWriter(tmp_path)
    writer.text("diagnosis", "| a | b |", 1)
    writer.histogram("h", [0, 1, 2], [3, 4], 1)
    writer.histogram("skipped", [0, 1], [1, 2], 1)  # malformed: ignored, no crash
    writer.flush()
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0}).Reload()
    assert set(events.Tags()["tensors"]) == {"diagnosis", "h"}
    buckets = tf.make_ndarray(events.Tensors("h")[0].tensor_proto)
    np.testing.assert_array_equal(buckets, [[0, 1, 3], [1, 2, 4]])


# ------------------------------------------------------------------- the guard
def test_guard_rules_on_synthetic_losses():
    guard = DivergenceGuard(factor=4.0, smoothing=0.5)
    guard.on_train_begin()
    assert not any(guard.check(v) for v in [2.3, 2.0, 1.5, 1.0, 0.5])
    guard.on_train_begin()
    assert not guard.check(2.3)
    assert guard.check(float("nan")) and "nan" in guard.reason
    guard.on_train_begin()
    results = [guard.check(v) for v in [2.0, 3.0, 10.0, 20.0, 40.0]]
    assert results[-1] and "4x" in guard.reason and guard.evidence["start_loss"] == 2.0


def test_guard_stops_a_real_divergence(tmp_path):
    x, y = data(n=256)
    reasons = []
    guard = DivergenceGuard(on_diverge=reasons.append, record_dir=tmp_path)
    model = compiled(mlp(stddev=3.0), spe=1, optimizer=keras.optimizers.SGD(50.0, momentum=0.9))
    history = model.fit(x, y, batch_size=16, epochs=20, verbose=0, callbacks=[guard])
    assert guard.diverged and reasons == [guard.reason]
    assert len(history.history["loss"]) < 20
    saved = json.loads((tmp_path / "divergence.json").read_text())
    assert saved["reason"] == guard.reason


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_background_thread_runs_at_the_lowest_priority():
    # The monitors' thread must take only what training leaves idle (nice 19); at the training
    # threads' own priority its work slowed the compiled epochs by about its CPU time.
    import os
    import threading

    from kerasguide.monitors import background

    def nice():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    assert background.executor().submit(nice).result() == 19


def test_event_records_are_checksummed_in_c_with_tensorboards_value():
    import os

    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
    from tensorboard.summary.writer import record_writer

    from kerasguide import tb_events

    assert record_writer.masked_crc32c is tb_events._masked_crc32c  # the writer uses the C checksum
    for data in (b"", b"abc", os.urandom(37_000)):
        assert tb_events._masked_crc32c(data) == masked_crc32c(data)
