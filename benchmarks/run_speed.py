"""Training speed: `kerasguide run` against a plain `model.fit` with Keras defaults.

Quality bar (Foundation issue): `kerasguide run` trains the digits and
mnist1d defaults at >= 1.5x the steps per second of a plain `model.fit` on
the same model and data.

Both sides run in this one process, interleaved (A B A B ...), because this
machine is shared and noisy; the table reports the median of the per-pair
ratios. The kerasguide side is the real pipeline (`kerasguide.run`, with its
recorder, checkpoints, TensorBoard and default monitors); its training time
is `train_seconds` from run.json (fit only: no data loading, checks or
report). The plain side is `model.fit(x, y, batch_size, epochs,
validation_data)` on a freshly built identical model compiled with Keras
defaults (`steps_per_execution=1`), timed from `on_train_begin` to
`on_train_end`.

Usage: python benchmarks/run_speed.py [--repeats 3] [--epochs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

import keras  # noqa: E402

from kerasguide.config import load_config  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402
from kerasguide.models import build_model, make_loss, make_metrics, make_optimizer  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.spine import run  # noqa: E402


class _Timer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(time.perf_counter() - self._epoch)

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.start


def plain_fit_seconds(cfg, epochs: int) -> tuple[float, int]:
    keras.utils.set_random_seed(cfg.train.seed)
    ds = load_dataset(cfg.data, cfg.train.seed)
    model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape)
    model.compile(optimizer=make_optimizer(cfg.optimizer, 1e-3), loss=make_loss(cfg), metrics=make_metrics(cfg))
    timer = _Timer()
    model.fit(ds.x_train, ds.y_train, batch_size=cfg.train.batch_size, epochs=epochs,
              validation_data=(ds.x_val, ds.y_val), callbacks=[timer], verbose=0)
    steps = epochs * -(-len(ds.x_train) // cfg.train.batch_size)
    return timer.seconds, steps, sum(timer.epochs[1:])


def kerasguide_seconds(cfg, epochs: int, out: str) -> tuple[float, int]:
    cfg = cfg.model_copy(deep=True)
    cfg.train.epochs = epochs
    cfg.checks.enabled = False
    if cfg.optimizer.learning_rate == "auto":
        cfg.optimizer.learning_rate = 1e-3  # time the training, not the range test
    result = run(cfg, out=out, verbose=0)
    record = result.run_dir.read_run()
    assert result.status == "completed", result.error
    later = sum(row["seconds"] for row in result.run_dir.read_metrics()[1:])
    return record["train_seconds"], epochs * record["steps_per_epoch"], later


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=0, help="0: each preset's own epochs")
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for preset in ("digits", "mnist1d_cnn"):
            cfg = load_config(preset_path(preset))
            epochs = args.epochs or cfg.train.epochs
            ratios, plain_sps, kg_sps, steady = [], [], [], []
            # one warm-up of each (graph tracing, caches), then interleaved pairs
            plain_fit_seconds(cfg, 1)
            kerasguide_seconds(cfg, 1, out)
            for _ in range(args.repeats):
                p_sec, p_steps, p_later = plain_fit_seconds(cfg, epochs)
                k_sec, k_steps, k_later = kerasguide_seconds(cfg, epochs, out)
                plain_sps.append(p_steps / p_sec)
                kg_sps.append(k_steps / k_sec)
                ratios.append(kg_sps[-1] / plain_sps[-1])
                steady.append(p_later / k_later)  # epochs 2..N: the first one traces the graphs
            rows.append((f"{preset} ({epochs} epochs)", statistics.median(plain_sps), statistics.median(kg_sps),
                         statistics.median(ratios), min(ratios), max(ratios), statistics.median(steady)))
            print(f"{preset}: ratio {rows[-1][3]:.2f}x, after the first epoch {rows[-1][6]:.2f}x",
                  file=sys.stderr, flush=True)
    print(f"\n{args.repeats} interleaved pairs per workload, median of pair ratios\n")
    print("| workload | plain fit steps/s | kerasguide run steps/s | ratio (median) | ratio range "
          "| ratio after the first epoch |")
    print("|---|---|---|---|---|---|")
    for preset, p, k, r, lo, hi, st in rows:
        print(f"| {preset} | {p:.0f} | {k:.0f} | **{r:.2f}x** | {lo:.2f}–{hi:.2f} | {st:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
