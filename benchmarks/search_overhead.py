"""What a search trial costs beyond its training, in this process, and whether memory grows (issue 14, part 4).

Two measurements:

1. Per-trial overhead in process (`workers = 0`): a random search of N
   one-epoch trials of a small digits MLP, against N plain Keras trials of
   the same model (build, compile, `fit` one epoch on the same tf.data
   batches, `clear_session`), interleaved in blocks. Overhead per trial =
   (search seconds - plain seconds) / N: everything kerasguide adds (run
   directory, records, checkpoints, diagnosis, pruning, report, keras-tuner's
   state, search.json, `best/`). Goal: <= 0.3 s.
2. Memory: the resident set size (VmRSS) after each of 50 in-process trials;
   growth = last - after the 5th (the first trials load libraries).
   Goal: <= 100 MB over 50 trials (keras-tuner#395, #873, #1031: memory
   grows until the process dies).

Usage: python benchmarks/search_overhead.py [--trials 10] [--blocks 3] [--memory-trials 50]
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

from kerasguide import callbacks as kg_callbacks  # noqa: E402
from kerasguide.config import RunConfig, SearchConfig  # noqa: E402
from kerasguide.search.runner import tune  # noqa: E402
from kerasguide.training import compile_model, prepare, split_batches, steps_per_execution  # noqa: E402


def _config(name: str, trials: int) -> RunConfig:
    cfg = RunConfig()
    cfg.name = name
    cfg.model.hidden = [32]
    cfg.optimizer.learning_rate = 1e-2
    cfg.train.epochs = 1
    cfg.train.batch_size = 128
    cfg.checks.enabled = False
    cfg.search = SearchConfig(algorithm="random", workers=0, stages=[{"epochs": 1, "trials": trials}],
                              widen_on_border=False)
    return cfg


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def plain_trials(cfg: RunConfig, n: int) -> float:
    dataset, _ = prepare(cfg)
    steps = dataset.steps("train", cfg.train.batch_size)
    start = time.perf_counter()
    for _ in range(n):
        keras.backend.clear_session()
        _, model = prepare(cfg)
        compile_model(model, cfg, cfg.optimizer.learning_rate, steps_per_execution(cfg, steps))
        model.fit(split_batches(dataset, "train", cfg.train.batch_size, True, cfg.train.seed),
                  validation_data=split_batches(dataset, "validation", cfg.train.batch_size), epochs=1, verbose=0)
    return time.perf_counter() - start


def overhead(trials: int, blocks: int) -> list[float]:
    per_trial = []
    with tempfile.TemporaryDirectory() as tmp:
        plain_trials(_config("warm", 1), 1)
        tune(_config("warm", 2), out=Path(tmp) / "warm")
        for block in range(blocks):
            plain = plain_trials(_config(f"plain{block}", trials), trials)
            start = time.perf_counter()
            result = tune(_config(f"kg{block}", trials), out=Path(tmp) / f"kg{block}")
            searched = time.perf_counter() - start
            assert result.status == "completed", result.error
            per_trial.append((searched - plain) / trials)
            print(f"block {block}: search {searched:.1f} s, plain {plain:.1f} s, {trials} trials: "
                  f"{per_trial[-1]:.3f} s a trial", file=sys.stderr, flush=True)
    return per_trial


def memory(trials: int) -> list[float]:
    samples: list[float] = []
    original = kg_callbacks.RunRecorder.on_train_end

    def sample(self, logs=None):
        samples.append(_rss_mb())
        return original(self, logs)

    kg_callbacks.RunRecorder.on_train_end = sample  # once per trial, in the trial's own fit
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tune(_config("mem", trials), out=tmp)
    finally:
        kg_callbacks.RunRecorder.on_train_end = original
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--memory-trials", type=int, default=50)
    args = parser.parse_args()
    set_verbosity("WARNING")
    per_trial = overhead(args.trials, args.blocks) if args.blocks else []
    if per_trial:
        print(f"per-trial overhead in process: {statistics.median(per_trial):.3f} s median "
              f"(range {min(per_trial):.3f}-{max(per_trial):.3f}; {args.blocks} blocks of {args.trials} trials)")
    if args.memory_trials:
        rss = memory(args.memory_trials)
        base = rss[min(4, len(rss) - 1)]
        print(f"resident memory over {len(rss)} in-process trials: {rss[0]:.0f} MB after the first, "
              f"{base:.0f} MB after the 5th, {rss[-1]:.0f} MB after the last: +{rss[-1] - base:.0f} MB "
              f"(max {max(rss):.0f} MB)")
        print("  every 10th: " + ", ".join(f"{v:.0f}" for v in rss[::10]))


if __name__ == "__main__":
    main()
