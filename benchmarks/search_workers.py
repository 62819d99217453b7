"""Per-trial overhead of the search workers: a warm Ray actor vs today's child process (issue 14 part 4).

Goal: <= 1 s of overhead per trial on a warm worker. The same tiny digits
trial config runs, interleaved (A B C A B C ...), as

- in-process: `kerasguide.spine.run` in this process (the baseline: no
  worker at all);
- Ray: `RayPool(workers=1)` (`kerasguide.search.ray_workers`), its one actor
  warmed by a first trial; wall time from `submit` to `poll` returning it;
- child process: `python -m kerasguide.cli run CONFIG --out DIR
  --json-progress --quiet`, as `SearchTuner` launches trials today.

Overhead = a side's median wall time minus the in-process median. For Ray
also the dispatch alone: driver wall minus the actor's own run time.

Usage: python benchmarks/search_workers.py [--rounds 5] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")

from kerasguide._logging import import_tensorflow, set_verbosity  # noqa: E402

import_tensorflow()

import keras  # noqa: E402

from kerasguide.config import RunConfig, load_config, save_config  # noqa: E402
from kerasguide.search.ray_workers import RayPool  # noqa: E402
from kerasguide.spine import run  # noqa: E402


def _config(folder: Path, epochs: int) -> Path:
    cfg = RunConfig()
    cfg.name = "bench-trial"
    cfg.model.hidden = [16]
    cfg.optimizer.learning_rate = 1e-2
    cfg.train.epochs = epochs
    cfg.train.batch_size = 128
    cfg.checks.enabled = False
    cfg.monitor.enabled = False
    path = folder / "trial.toml"
    save_config(cfg, path)
    return path


def _in_process(path: Path, out: Path) -> float:
    started = time.perf_counter()
    keras.backend.clear_session()  # as the Ray worker does before each trial
    result = run(load_config(path), out=out, verbose=0)
    assert result.status == "completed", result.error
    return time.perf_counter() - started


def _ray(pool: RayPool, key: str, path: Path, out: Path) -> tuple[float, float]:
    started = time.perf_counter()
    pool.submit(key, path, out=out)
    done = []
    while not done:
        done = pool.poll(timeout=60)
    wall = time.perf_counter() - started
    outcome = done[0][1]
    assert outcome["status"] == "completed", outcome
    return wall, wall - outcome["seconds"]


def _child(path: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kerasguide.cli", "run", str(path), "--out", str(out),
                    "--json-progress", "--quiet"], check=True, capture_output=True,
                   env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, out = _config(folder, args.epochs), folder / "trials"
        pool_started = time.perf_counter()
        pool = RayPool(workers=1, object_store_memory=100 * 2**20)
        try:
            _ray(pool, "warm-up", path, out)  # the actor's TensorFlow import and first trace
            cold = time.perf_counter() - pool_started
            _in_process(path, out)  # this process's first trace
            inproc, ray_wall, ray_dispatch, child = [], [], [], []
            for i in range(args.rounds):
                inproc.append(_in_process(path, out))
                wall, dispatch = _ray(pool, f"r{i}", path, out)
                ray_wall.append(wall)
                ray_dispatch.append(dispatch)
                child.append(_child(path, out))
                print(f"round {i}: in-process {inproc[-1]:.2f} s, Ray {wall:.2f} s "
                      f"(dispatch {dispatch:.3f} s), child process {child[-1]:.2f} s", flush=True)
        finally:
            pool.shutdown()
    base = statistics.median(inproc)
    print(f"\nRay pool start + first trial (cold actor): {cold:.1f} s")
    print("| worker | trial wall (median) | range | overhead vs in-process |")
    print("|---|---|---|---|")
    for name, times in (("in-process", inproc), ("warm Ray actor", ray_wall), ("child process", child)):
        med = statistics.median(times)
        print(f"| {name} | {med:.2f} s | {min(times):.2f}-{max(times):.2f} | {med - base:+.2f} s |")
    print(f"Ray dispatch alone (driver wall - actor's run time), median: {statistics.median(ray_dispatch):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
