"""`mirrored` with Keras' multi-step loop: epoch time at steps_per_execution=1 vs "auto", and where it fails.

Issue 16: under any `tf.distribute` strategy kerasguide used one step per
compiled call. `kerasguide.training.steps_per_execution` now keeps "auto"
(one epoch per call, at most 64 steps) where Keras' loop works: a strategy
with one replica in sync (`mirrored` or `multi_worker` on one GPU or one
CPU). This script measures what that is worth, and checks the limit.

One process, two devices (made before TensorFlow's runtime starts), so that
both strategies exist side by side: `mirrored` over one device (what a
one-GPU machine gets) and over two (a two-GPU machine's): two logical CPUs,
or with `--device gpu` two GPUs (one GPU split in two on a one-GPU machine). Each workload is
the digits preset's MLP and data built with kerasguide's own pieces
(`load_dataset`, `build_model`, `compile_model`, `make_tf_dataset`), with the
steps per execution that `steps_per_execution(config, steps, strategy)`
gives; the pair (1, auto) runs interleaved `--repeats` times, and the table
shows the median epoch time of epochs 2..N (the first one traces) and the
median of the per-pair ratios. Last, a raw probe: `fit` with
steps_per_execution=8 over two replicas, to see whether Keras still fails
there (if it ever passes, the rule in training.py can go).

Usage: python benchmarks/mirrored_steps.py [--repeats 3] [--epochs 6] [--batch-size 32] [--device cpu|gpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

from kerasguide._logging import import_tensorflow, set_verbosity

tf = import_tensorflow()

import keras  # noqa: E402

from kerasguide.config import load_config  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402
from kerasguide.models import build_model  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.training import compile_model, make_tf_dataset, steps_per_execution  # noqa: E402


def two_devices(kind: str, gpu_memory_mb: int) -> list[str]:
    """Two devices to mirror over, made before TensorFlow's runtime starts (so: first thing in `main`).

    cpu: two logical CPUs. gpu: the first two GPUs, or on a one-GPU machine the
    GPU split into two logical GPUs of `gpu_memory_mb` each.
    """
    if kind == "cpu":
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
        return [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise SystemExit("mirrored_steps.py --device gpu: TensorFlow sees no GPU")
    if len(gpus) == 1:
        tf.config.set_logical_device_configuration(
            gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=gpu_memory_mb)] * 2)
    return [d.name for d in tf.config.list_logical_devices("GPU")][:2]


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def fit_once(cfg, ds, strategy, spe_setting, epochs: int) -> tuple[float, int, list[float]]:
    """(median seconds of epochs 2..N, the steps per execution used, the loss of each epoch)."""
    cfg = cfg.model_copy(deep=True)
    cfg.train.steps_per_execution = spe_setting
    steps = ds.steps("train", cfg.train.batch_size)
    spe = steps_per_execution(cfg, steps, strategy)
    keras.utils.set_random_seed(cfg.train.seed)
    with strategy.scope():
        model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape)
        compile_model(model, cfg, 1e-3, spe)
    train = make_tf_dataset(ds.x_train, ds.y_train, cfg.train.batch_size, True, cfg.train.seed)
    val = make_tf_dataset(ds.x_val, ds.y_val, cfg.train.batch_size, False, cfg.train.seed)
    timer = _EpochTimer()
    history = model.fit(train, validation_data=val, epochs=epochs, callbacks=[timer], verbose=0)
    assert model.steps_per_execution == spe
    return statistics.median(timer.seconds[1:]), spe, [round(v, 4) for v in history.history["loss"]]


def probe_two_replicas(cfg, ds, strategy) -> str:
    """Whether Keras' own fit with steps_per_execution=8 works over two replicas."""
    with strategy.scope():
        model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape)
        model.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=8)
    train = make_tf_dataset(ds.x_train, ds.y_train, cfg.train.batch_size, True, cfg.train.seed)
    try:
        model.fit(train, epochs=1, verbose=0)
    except Exception as error:  # what Keras raises is the finding
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        said = next((line for line in lines if "must feed" in line), lines[0] if lines else "")
        return f"fails: {type(error).__name__}: {said[:120]}"
    return "works"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                        help="gpu: two GPUs, or one split in two logical GPUs (--gpu-memory-mb each)")
    parser.add_argument("--gpu-memory-mb", type=int, default=8192)
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.repeats < 1:
        parser.error("--epochs must be >= 2 (the first epoch traces) and --repeats >= 1")
    devices = two_devices(args.device, args.gpu_memory_mb)
    set_verbosity("ERROR")
    tf.get_logger().setLevel("ERROR")  # "triggered tf.function retracing": each model here is new, on purpose
    cfg = load_config(preset_path("digits"))
    cfg.train.batch_size = args.batch_size
    cfg.train.strategy = "mirrored"
    ds = load_dataset(cfg.data, cfg.train.seed)
    short = [d.split("device:")[-1] for d in devices]
    workloads = [
        ("default (no strategy)", tf.distribute.get_strategy()),
        (f"mirrored, 1 replica ({short[0]})", tf.distribute.MirroredStrategy(devices[:1])),
        (f"mirrored, 2 replicas ({' + '.join(short)})", tf.distribute.MirroredStrategy(devices[:2])),
    ]
    rows = []
    for name, strategy in workloads:
        run_cfg = cfg.model_copy(deep=True)
        if strategy is tf.distribute.get_strategy():
            run_cfg.train.strategy = "default"
        fit_once(run_cfg, ds, strategy, "auto", 2)  # warm-up: caches, first traces of the shared code
        one, auto, ratios, spe_auto, losses = [], [], [], 1, {}
        for _ in range(args.repeats):
            t1, _, losses[1] = fit_once(run_cfg, ds, strategy, 1, args.epochs)
            ta, spe_auto, losses["auto"] = fit_once(run_cfg, ds, strategy, "auto", args.epochs)
            one.append(t1)
            auto.append(ta)
            ratios.append(t1 / ta)
        same = max(abs(a - b) for a, b in zip(losses[1], losses["auto"], strict=True))
        rows.append((name, ds.steps("train", cfg.train.batch_size), spe_auto, statistics.median(one),
                     statistics.median(auto), statistics.median(ratios), min(ratios), max(ratios), same))
        print(f"{name}: auto = {spe_auto}, ratio {rows[-1][5]:.2f}x", file=sys.stderr, flush=True)
    probe = probe_two_replicas(cfg, ds, workloads[2][1])
    print(f"\nKeras {keras.__version__}, TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, devices {', '.join(devices)}; digits MLP {cfg.model.hidden}, batch "
          f"{cfg.train.batch_size}, {args.epochs} epochs, {args.repeats} interleaved pairs\n")
    print("| strategy | steps/epoch | auto gives | epoch s, spe=1 | epoch s, auto | speed-up (median) | range "
          "| max loss difference |")
    print("|---|---|---|---|---|---|---|---|")
    for name, steps, spe, t1, ta, ratio, low, high, same in rows:
        print(f"| {name} | {steps} | {spe} | {t1:.3f} | {ta:.3f} | **{ratio:.2f}x** | {low:.2f}–{high:.2f} "
              f"| {same:.1e} |")
    print(f"\nKeras' own fit, steps_per_execution=8, mirrored over 2 replicas: {probe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
