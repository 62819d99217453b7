"""What the LR range test costs beside the training it precedes (issue 4 quality bar).

Goal: the range test takes <= 10 % of the wall time of the default training
run it precedes. Each repetition is one real `kerasguide run` of the
digits default (in this process, `learning_rate = "auto"`, one-cycle): the
pipeline's stages are timed from inside the same run, so the range test
and the training it sets up share the machine's load of the moment.

Reported per repetition: the "lr_find" stage (compile, sweep, lr_find.json,
lr_find.png, TensorBoard), the sweep alone (lr_find.json `seconds`, which
includes tracing the train step), the "fit" stage, and the whole run.

Usage: python benchmarks/lr_find_cost.py [--repeats 3] [--config digits]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

from kerasguide.config import load_config  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.spine import loop as pipeline  # noqa: E402


def _timed_stages(times: dict[str, float]):
    def wrap(name, stage):
        def timed(ctx):
            started = time.perf_counter()
            try:
                stage(ctx)
            finally:
                times[name] = times.get(name, 0.0) + time.perf_counter() - started
        return timed
    return [(name, wrap(name, stage)) for name, stage in pipeline.STAGES]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default="digits")
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    original = list(pipeline.STAGES)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for repeat in range(args.repeats):
            cfg = load_config(preset_path(args.config))
            if cfg.optimizer.learning_rate != "auto":
                cfg.optimizer.learning_rate = "auto"
            times: dict[str, float] = {}
            pipeline.STAGES[:] = _timed_stages(times)
            try:
                started = time.perf_counter()
                result = pipeline.run(cfg, out=out, verbose=0)
                total = time.perf_counter() - started
            finally:
                pipeline.STAGES[:] = original
            record = result.run_dir.read_run()
            sweep = record["lr_find"]["seconds"]
            rows.append((times["lr_find"], sweep, times["fit"], total, record["lr_find"]["steps"],
                         result.final_metrics.get("val_accuracy")))
            print(f"repeat {repeat}: lr_find stage {times['lr_find']:.2f}s (sweep {sweep:.2f}s, "
                  f"{record['lr_find']['steps']} steps), fit {times['fit']:.2f}s, run {total:.2f}s, "
                  f"val_accuracy {rows[-1][5]:.4f}", flush=True)
    med = statistics.median
    stage, sweep, fit, total = (med(r[i] for r in rows) for i in range(4))
    print()
    print("| what | seconds (median) | ratio to the run | ratio to fit | range (ratio to the run) |")
    print("|---|---|---|---|---|")
    print(f"| lr_find stage (compile, sweep, files, TensorBoard) | {stage:.2f} | **{stage / total:.3f}** | "
          f"{stage / fit:.3f} | {min(r[0] / r[3] for r in rows):.3f}–{max(r[0] / r[3] for r in rows):.3f} |")
    print(f"| the sweep alone ({rows[0][4]} steps, tracing included) | {sweep:.2f} | {sweep / total:.3f} | "
          f"{sweep / fit:.3f} | {min(r[1] / r[3] for r in rows):.3f}–{max(r[1] / r[3] for r in rows):.3f} |")
    print(f"| fit stage ({cfg.train.epochs} epochs) | {fit:.2f} | {fit / total:.3f} | 1 | |")
    print(f"| whole run (in process) | {total:.2f} | 1 | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
