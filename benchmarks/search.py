"""Hyperparameter search: what worker processes cost, and random vs grid search.

Two measurements, each side by side in this one process:

1. `workers` (recipe H30): the wall time of one real search stage (digits,
   hidden [64], N trials of E epochs, random search) run with
   `search.workers = 0` (trials in this process), `1` (one worker child
   process at a time) and `2` (two at once), interleaved (0 1 2 0 1 2 ...).
   Reported: seconds per trial and the ratios. Goals: two workers on this
   2-core box finish a stage in <= 0.75x the time of one; a worker
   process costs <= 6 s per trial over running the trial in-process (the
   price of isolation and timeouts).

2. `random_vs_grid` (recipe H26, Bergstra & Bengio): keras-tuner's grid and
   random oracles, as kerasguide builds them (baseline first, log scale),
   given the same 9 trials on a function of two hyperparameters of which
   only one matters (the learning rate, on a log scale; dropout barely).
   No training: the objective is synthetic, its optimum drawn at random for
   each repetition. Reported: the median distance, in decades, between the
   best trial's learning rate and the optimum. Goal: random <= 0.6x grid.

Usage: python benchmarks/search.py [--repeats 2] [--trials 4] [--epochs 3] [--skip-workers]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

from kerasguide.config import RunConfig, SearchConfig  # noqa: E402
from kerasguide.search.oracle import build_hyperparameters, make_oracle  # noqa: E402
from kerasguide.search.runner import tune  # noqa: E402
from kerasguide.search.space import ParamRange  # noqa: E402


def _config(workers: int, trials: int, epochs: int, tag: str) -> RunConfig:
    cfg = RunConfig()
    cfg.name = f"bench-w{workers}-{tag}"
    cfg.model.hidden = [64]
    cfg.train.epochs = epochs
    cfg.train.batch_size = 64
    cfg.checks.enabled = False
    cfg.search = SearchConfig(algorithm="random", workers=workers, stages=[{"epochs": epochs, "trials": trials}],
                              widen_on_border=False)
    return cfg


def bench_workers(repeats: int, trials: int, epochs: int) -> None:
    seconds: dict[int, list[float]] = {0: [], 1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            for workers in (0, 1, 2):
                start = time.perf_counter()
                result = tune(_config(workers, trials, epochs, str(rep)), out=Path(tmp) / f"w{workers}-{rep}")
                seconds[workers].append(time.perf_counter() - start)
                assert result.status == "completed", result.error
                print(f"  rep {rep} workers={workers}: {seconds[workers][-1]:.1f} s", file=sys.stderr)
    med = {w: statistics.median(s) for w, s in seconds.items()}
    two_vs_one = [b / a for a, b in zip(seconds[1], seconds[2], strict=True)]
    overhead = [(b - a) / trials for a, b in zip(seconds[0], seconds[1], strict=True)]
    print(f"\nworkers: one stage of {trials} trials x {epochs} epochs (digits, hidden [64]), {repeats} interleaved repetitions")
    print("| workers | stage seconds (median) | seconds per trial |")
    print("|---|---|---|")
    for w in (0, 1, 2):
        print(f"| {w} | {med[w]:.1f} | {med[w] / trials:.2f} |")
    print(f"two workers vs one: {statistics.median(two_vs_one):.2f}x the time "
          f"(range {min(two_vs_one):.2f}-{max(two_vs_one):.2f})")
    print(f"worker process overhead: {statistics.median(overhead):.2f} s per trial "
          f"(range {min(overhead):.2f}-{max(overhead):.2f})")


def _best_distance(algorithm: str, optimum_lr: float, optimum_dropout: float, trials: int, seed: int, tmp: str) -> float:
    lr = ParamRange("optimizer.learning_rate", "float", 1e-5, 1e-1, log=True)
    dropout = ParamRange("model.dropout", "float", 0.0, 0.6)
    hp = build_hyperparameters([lr, dropout], {"optimizer.learning_rate": 1e-3, "model.dropout": 0.2},
                               grid_points=3 if algorithm == "grid" else None)
    oracle = make_oracle(algorithm, hp, "score", "max", trials=trials, seed=seed)
    oracle._set_project_dir(tmp, f"{algorithm}-{seed}")
    best, best_values = -math.inf, None
    while True:
        trial = oracle.create_trial("bench")
        if trial.status != "RUNNING":
            break
        values = trial.hyperparameters.values
        # Only the learning rate matters much (the Bergstra & Bengio picture).
        score = (-(math.log10(values["optimizer.learning_rate"]) - math.log10(optimum_lr)) ** 2
                 - 0.05 * (values["model.dropout"] - optimum_dropout) ** 2)
        oracle.update_trial(trial.trial_id, {"score": score})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        if score > best:
            best, best_values = score, values
    return abs(math.log10(best_values["optimizer.learning_rate"]) - math.log10(optimum_lr))


def bench_random_vs_grid(repeats: int = 60, trials: int = 9) -> None:
    rng = random.Random(0)
    distances = {"grid": [], "random": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            optimum_lr = 10 ** rng.uniform(-4.5, -1.5)
            optimum_dropout = rng.uniform(0.1, 0.5)
            for algorithm in ("grid", "random"):
                distances[algorithm].append(
                    _best_distance(algorithm, optimum_lr, optimum_dropout, trials, seed=rep + 1, tmp=tmp))
    grid, rand = (statistics.median(distances[a]) for a in ("grid", "random"))
    print(f"\nrandom_vs_grid: {trials} trials, {repeats} random optima; distance of the best trial's "
          "learning rate from the optimum, in decades")
    print("| oracle | median | mean | 90th percentile |")
    print("|---|---|---|---|")
    for name in ("grid", "random"):
        d = sorted(distances[name])
        print(f"| {name} | {statistics.median(d):.3f} | {statistics.mean(d):.3f} | {d[int(0.9 * len(d))]:.3f} |")
    print(f"random / grid (median): {rand / grid:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skip-workers", action="store_true")
    args = parser.parse_args()
    set_verbosity("WARNING")
    bench_random_vs_grid()
    if not args.skip_workers:
        bench_workers(args.repeats, args.trials, args.epochs)


if __name__ == "__main__":
    main()
