"""Monitoring overhead: kerasguide's monitors against a plain `model.fit` (issue 6 quality bar).

Goals, as ratios of wall time against a plain `model.fit` of the same model
on the same data, each side with its fastest `steps_per_execution` (one
epoch per call, at most 64 steps, as `kerasguide run` uses):

- default cadence, as the goal defines it (update ratios and batch losses
  every step inside the compiled step, probe histograms and first-layer
  images every epoch, divergence guard; `kerasguide run`'s own default
  draws the images every 5 epochs): <= 1.05x;
- every instrument every step: <= 1.5x.

Keras' `TensorBoard(histogram_freq=1)` (weight histograms only) is measured
in the same run as an anchor. All sides run in this one process,
interleaved (plain, default, every step, Keras TB, plain, ...), each on a
freshly built identical model (so each pays its own tracing), timed around
the whole `model.fit` call; the table reports the median of the per-round
ratios against that round's plain fit, and their range. Both sides create
their optimizer and metric state before `fit` (`build_for_fit`, as
`kerasguide run` does), so each traces its step once. "fastest epochs"
compares the fastest epoch (after the first) of each side over all rounds:
interference from the host only adds time, so this is the steadiest
estimate of the monitors' per-epoch cost.

"Every step" has two rows. At the fastest `steps_per_execution` a callback
runs once per execution: update ratios and batch losses are still taken at
every step (they are measured inside the compiled step), the probe
(activation/gradient/weight histograms) and the first-layer images run at
every execution. At `steps_per_execution=1` (both sides) every instrument
really runs at every step.

Usage: python benchmarks/monitor_overhead.py [--repeats 3] [--digits-epochs 40] [--mnist1d-epochs 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

import keras  # noqa: E402

from kerasguide.config import load_config  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402
from kerasguide.models import build_model  # noqa: E402
from kerasguide.monitors import (  # noqa: E402
    DivergenceGuard,
    FirstLayerImages,
    LossMonitor,
    ProbeMonitor,
    UpdateRatioMonitor,
    default_monitors,
)
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.training import build_for_fit, compile_model, make_tf_dataset  # noqa: E402


class _EveryExecutionImages(FirstLayerImages):
    """First-layer images at every execution (for the every-step rows)."""

    def on_train_batch_end(self, batch, logs=None):
        self._tick = getattr(self, "_tick", 0) + 1
        self._capture(self._tick - 1)

    def on_epoch_end(self, epoch, logs=None):
        pass

    def _due(self, epoch):
        return True


def _callbacks(kind: str, ds, out: Path, probe_batch: int):
    x, y = ds.x_train[:probe_batch], ds.y_train[:probe_batch]
    tb, rec = out / "tb", out / "monitor"
    if kind == "plain":
        return []
    if kind == "default":
        return default_monitors(x, y, log_dir=tb, record_dir=rec, image_shape=ds.image_shape,
                                images_every_epochs=1)
    if kind == "every_step":
        return [
            UpdateRatioMonitor(1, log_dir=tb, record_dir=rec),
            LossMonitor(log_dir=tb, record_dir=rec),
            ProbeMonitor(x, y, every_batches=1, log_dir=tb, record_dir=rec),
            _EveryExecutionImages(ds.image_shape, log_dir=tb, record_dir=rec),
            DivergenceGuard(record_dir=rec),
        ]
    if kind == "keras_tb":
        return [keras.callbacks.TensorBoard(log_dir=str(tb), histogram_freq=1, write_graph=False, profile_batch=0)]
    raise ValueError(kind)


class _EpochTimer(keras.callbacks.Callback):
    """Each epoch's wall time, hooks of the other callbacks included (it runs last)."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def fit_seconds(cfg, ds, kind: str, epochs: int, spe: int) -> tuple[float, list[float]]:
    """The whole fit's seconds (tracing included) and each epoch's after the first."""
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape)
    compile_model(model, cfg, 1e-3, spe)
    build_for_fit(model, ds.x_train, ds.y_train)  # as `kerasguide run` does, on both sides: one trace
    train = make_tf_dataset(ds.x_train, ds.y_train, cfg.train.batch_size, True, cfg.train.seed)
    val = make_tf_dataset(ds.x_val, ds.y_val, cfg.train.batch_size, False, cfg.train.seed)
    with tempfile.TemporaryDirectory() as out:
        timer = _EpochTimer()
        callbacks = [*_callbacks(kind, ds, Path(out), cfg.monitor.probe_batch), timer]
        started = time.perf_counter()
        model.fit(train, validation_data=val, epochs=epochs, callbacks=callbacks, verbose=0)
        return time.perf_counter() - started, timer.seconds[1:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--digits-epochs", type=int, default=40)
    parser.add_argument("--mnist1d-epochs", type=int, default=15)
    parser.add_argument("--no-spe1", action="store_true", help="skip the steps_per_execution=1 rows")
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    rows = []
    for preset, epochs in (("digits", args.digits_epochs), ("mnist1d_cnn", args.mnist1d_epochs)):
        cfg = load_config(preset_path(preset))
        ds = load_dataset(cfg.data, cfg.train.seed)
        steps = -(-len(ds.x_train) // cfg.train.batch_size)
        fastest = max(1, min(steps, 64))
        plans = [(fastest, ("plain", "default", "every_step", "keras_tb"))]
        if not args.no_spe1:
            plans.append((1, ("plain", "every_step", "keras_tb")))
        for spe, kinds in plans:
            for kind in kinds:  # warm-up: imports, first tracing of each code path
                fit_seconds(cfg, ds, kind, 1, spe)
            times: dict[str, list[float]] = {k: [] for k in kinds}
            epoch_times: dict[str, list[float]] = {k: [] for k in kinds}
            for _ in range(args.repeats):
                for kind in kinds:
                    seconds, per_epoch = fit_seconds(cfg, ds, kind, epochs, spe)
                    times[kind].append(seconds)
                    epoch_times[kind].extend(per_epoch)
            for kind in kinds[1:]:
                ratios = [t / p for t, p in zip(times[kind], times["plain"], strict=True)]
                # The host's interference only ever adds time (one fit's identical epochs vary up to
                # 2x here): the fastest epoch of each side is the steadiest estimate of its own cost.
                fastest = min(epoch_times[kind]) / min(epoch_times["plain"])
                rows.append((preset, epochs, spe, kind, statistics.median(times["plain"]),
                             statistics.median(times[kind]), statistics.median(ratios), min(ratios), max(ratios),
                             fastest))
                print(f"{preset} spe={spe} {kind}: {rows[-1][6]:.3f}x (fastest epochs {fastest:.3f}x)",
                      file=sys.stderr, flush=True)
    labels = {
        "default": "kerasguide monitors, default cadence",
        "every_step": "kerasguide monitors, every step / every execution",
        "keras_tb": "Keras TensorBoard(histogram_freq=1)",
    }
    print(f"\n{args.repeats} interleaved rounds, median of per-round ratios (range)\n")
    print("| workload | steps/execution | monitoring | plain fit s | monitored s | ratio | range | fastest epochs |")
    print("|---|---|---|---|---|---|---|---|")
    for preset, epochs, spe, kind, p, m, r, lo, hi, fastest in rows:
        print(f"| {preset} ({epochs} epochs) | {spe} | {labels[kind]} | {p:.2f} | {m:.2f} | **{r:.3f}x** | "
              f"{lo:.3f}–{hi:.3f} | {fastest:.3f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
