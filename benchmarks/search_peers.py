"""kerasguide's default search (ASHA) against keras-tuner and Optuna, on one model, split, space and budget.

Issue 14's quality bar. In this one process, interleaved by seed (for each
seed: kerasguide, keras-tuner RandomSearch, keras-tuner Hyperband, Optuna),
each method searches the learning rate and the L2 strength (log scales,
1e-5..1e-1 and 1e-6..1e-2) and the dropout rate (0..0.6) of the mnist1d 1-D
CNN (`resources/configs/mnist1d_cnn.toml`: kerasguide builds the model for
every method, from the same config, on the same train/validation split and
the same tf.data batches), at most `--max-epochs` epochs a trial and about
`--budget` epochs in all:

- kerasguide `tune`, its default algorithm (ASHA, promoted trials continued
  from their checkpoints, TPE after the first trials), trials in this
  process (`workers = 0`), `search.trials` chosen so that its plan is about
  the budget, stopped (`request_stop`) once it is spent; `widen_on_border
  = false` (the extra stage would pass it);
- keras-tuner `RandomSearch`, budget / max-epochs trials of max-epochs;
- keras-tuner `Hyperband` (max-epochs, factor 3, one iteration: it continues
  a promoted trial from its parent's weights);
- Optuna `TPESampler` + `HyperbandPruner` (min 1, max max-epochs, factor 3),
  reporting validation accuracy after every epoch; the study stops when the
  budget is spent.

A callback on every fit records (seconds since the method started, epochs
so far, validation accuracy) after each epoch. Reported per method, medians
over the seeds: the epochs and the seconds until the best validation
accuracy so far reaches `--threshold` (0.95), the final best, the epochs and
the seconds used. Goal: kerasguide needs the fewest epochs and the least
time to the threshold, and its final best is >= the best peer's.

Usage: python benchmarks/search_peers.py [--seeds 0 1 2] [--budget 600] [--max-epochs 27] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

from kerasguide import callbacks as kg_callbacks  # noqa: E402
from kerasguide.config import SearchConfig, load_config  # noqa: E402
from kerasguide.models import build_model  # noqa: E402
from kerasguide.search.asha_plan import asha_plan, asha_rungs  # noqa: E402
from kerasguide.search.runner import tune  # noqa: E402
from kerasguide.search.space import apply_values  # noqa: E402
from kerasguide.search.status import request_stop  # noqa: E402
from kerasguide.training import compile_model, prepare, split_batches, steps_per_execution  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "resources" / "configs" / "mnist1d_cnn.toml"
LR, L2, DROPOUT = "optimizer.learning_rate", "model.l2", "model.dropout"


class Timeline:
    """Every epoch any method trains: (seconds since start, epochs so far, val_accuracy)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.rows: list[tuple[float, int, float]] = []

    def add(self, value) -> None:
        value = float(value) if value is not None else float("nan")
        self.rows.append((time.perf_counter() - self.start, len(self.rows) + 1, value))

    def callback(self) -> keras.callbacks.Callback:
        timeline = self

        class _Record(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                timeline.add((logs or {}).get("val_accuracy"))

        return _Record()

    def summary(self, threshold: float, budget: int) -> dict:
        best, reached = -math.inf, None
        rows = self.rows[:budget]  # the same budget for every method: epochs past it do not count
        for seconds, epochs, value in rows:
            if math.isfinite(value) and value > best:
                best = value
                if reached is None and best >= threshold:
                    reached = (epochs, seconds)
        return {"epochs_to": reached[0] if reached else None, "seconds_to": reached[1] if reached else None,
                "best": best, "epochs": len(rows),
                "seconds": rows[-1][0] if rows else 0.0}


def base_config(seed: int, max_epochs: int):
    cfg = load_config(CONFIG)
    cfg.train.epochs = max_epochs
    cfg.train.seed = seed
    return cfg


class Peers:
    """What keras-tuner and Optuna train: kerasguide's model of the config, with the sampled values."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.dataset, _ = prepare(cfg)
        keras.backend.clear_session()
        self.steps = self.dataset.steps("train", cfg.train.batch_size)
        self.train = split_batches(self.dataset, "train", cfg.train.batch_size, True, cfg.train.seed)
        self.val = split_batches(self.dataset, "validation", cfg.train.batch_size)

    def model(self, values: dict) -> keras.Model:
        cfg = apply_values(self.cfg, values)
        ds = self.dataset
        model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape, target_stats=ds.target_stats)
        compile_model(model, cfg, cfg.optimizer.learning_rate, steps_per_execution(cfg, self.steps))
        return model


def run_kerasguide(seed: int, budget: int, max_epochs: int, tmp: Path, timeline: Timeline) -> dict:
    cfg = base_config(seed, max_epochs)
    trials = 1
    while True:  # the most first-rung configurations whose full plan fits the budget
        rungs = asha_rungs(max_epochs, 3, None, trials + 1)
        if sum(n * each for n, _, each in asha_plan(rungs, trials + 1, 3)) > budget:
            break
        trials += 1
    cfg.name = f"peers-kg-{seed}"
    cfg.search = SearchConfig(workers=0, trials=trials, widen_on_border=False)
    original = kg_callbacks.RunRecorder.on_epoch_end
    out = tmp / f"kg-{seed}"

    def recording(self, epoch, logs=None):
        timeline.add((logs or {}).get("val_accuracy"))
        if len(timeline.rows) == budget:  # spent: the search stops after this trial, as `search-status --stop` does
            for search_dir in out.glob("*-search"):
                request_stop(search_dir)
        return original(self, epoch, logs)

    kg_callbacks.RunRecorder.on_epoch_end = recording  # every epoch of every trial, continued ones too
    try:
        result = tune(cfg, out=out, new=True)
    finally:
        kg_callbacks.RunRecorder.on_epoch_end = original
    return {"trials": trials, "status": result.status}


def _hp_values(hp) -> dict:
    return {LR: hp.Float(LR, 1e-5, 1e-1, sampling="log"), L2: hp.Float(L2, 1e-6, 1e-2, sampling="log"),
            DROPOUT: hp.Float(DROPOUT, 0.0, 0.6)}


def run_keras_tuner(kind: str, seed: int, budget: int, max_epochs: int, tmp: Path, timeline: Timeline) -> dict:
    peers = Peers(base_config(seed, max_epochs))

    def build(hp):
        return peers.model(_hp_values(hp))

    common = dict(objective="val_accuracy", seed=seed + 1, directory=str(tmp / f"kt-{kind}-{seed}"),
                  project_name="p", overwrite=True)
    if kind == "random":
        tuner = kt.RandomSearch(build, max_trials=max(1, budget // max_epochs), **common)
    else:
        tuner = kt.Hyperband(build, max_epochs=max_epochs, factor=3, hyperband_iterations=1, **common)
    tuner.search(peers.train, validation_data=peers.val, epochs=max_epochs, callbacks=[timeline.callback()],
                 verbose=0)
    return {"trials": len(tuner.oracle.trials)}


def run_optuna(seed: int, budget: int, max_epochs: int, tmp: Path, timeline: Timeline) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    peers = Peers(base_config(seed, max_epochs))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed + 1),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs,
                                                                      reduction_factor=3))

    class Report(keras.callbacks.Callback):
        def __init__(self, trial):
            super().__init__()
            self.trial, self.pruned = trial, False

        def on_epoch_end(self, epoch, logs=None):
            value = float((logs or {}).get("val_accuracy", float("nan")))
            self.trial.report(value, epoch)
            if self.trial.should_prune():
                self.pruned, self.model.stop_training = True, True

    def objective(trial):
        keras.backend.clear_session()
        model = peers.model({LR: trial.suggest_float(LR, 1e-5, 1e-1, log=True),
                             L2: trial.suggest_float(L2, 1e-6, 1e-2, log=True),
                             DROPOUT: trial.suggest_float(DROPOUT, 0.0, 0.6)})
        report = Report(trial)
        history = model.fit(peers.train, validation_data=peers.val, epochs=max_epochs, verbose=0,
                            callbacks=[timeline.callback(), report])
        if report.pruned:
            raise optuna.TrialPruned()
        return max(history.history["val_accuracy"])

    def spent(study, trial):
        if len(timeline.rows) >= budget:
            study.stop()

    study.optimize(objective, n_trials=10**6, callbacks=[spent])
    return {"trials": len(study.trials)}


METHODS = {
    "kerasguide asha (default)": run_kerasguide,
    "keras-tuner RandomSearch": lambda *a: run_keras_tuner("random", *a),
    "keras-tuner Hyperband": lambda *a: run_keras_tuner("hyperband", *a),
    "Optuna TPE + HyperbandPruner": run_optuna,
}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, digits=0):
    if value is None:
        return "not reached"
    return f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=600, help="epochs in all, per method and seed")
    parser.add_argument("--max-epochs", type=int, default=27)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--json", type=Path, default=None, help="also write every timeline here")
    args = parser.parse_args()
    set_verbosity("WARNING")
    results: dict[str, list[dict]] = {m: [] for m in args.methods}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for method in args.methods:
                keras.backend.clear_session()
                timeline = Timeline()
                extra = METHODS[method](seed, args.budget, args.max_epochs, Path(tmp), timeline)
                summary = dict(timeline.summary(args.threshold, args.budget), seed=seed, **extra)
                results[method].append(dict(summary, timeline=timeline.rows))
                print(f"seed {seed} {method}: {json.dumps({k: v for k, v in summary.items()})}", file=sys.stderr,
                      flush=True)
    print(f"\nmnist1d CNN, lr/L2 (log) and dropout, ~{args.budget} epochs, <= {args.max_epochs} a trial, "
          f"seeds {args.seeds}; threshold {args.threshold}")
    print("| method | epochs used (median) | wall s (median) | best val acc (per seed) | "
          f"epochs to >= {args.threshold} (per seed; median) | seconds to >= {args.threshold} (median) |")
    print("|---|---|---|---|---|---|")
    for method, rows in results.items():
        bests = " / ".join(f"{r['best']:.3f}" for r in rows)
        to = " / ".join(_fmt(r["epochs_to"]) for r in rows)
        print(f"| {method} | {_median([r['epochs'] for r in rows]):.0f} | {_median([r['seconds'] for r in rows]):.0f} "
              f"| {bests} | {to}; **{_fmt(_median([r['epochs_to'] for r in rows]))}** | "
              f"**{_fmt(_median([r['seconds_to'] for r in rows]))}** |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
