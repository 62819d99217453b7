"""One-cycle at the range test's learning rate vs a grid of constant rates (issue 4 quality bar).

Goals, per workload (digits MLP, a digits CNN, the mnist1d CNN):
- one-cycle at the LR range test's chosen rate reaches a final validation
  accuracy within 1 percentage point of the best of a 9-point log grid of
  constant rates (1e-4 ... 1, same epochs, same seed), and never below the
  grid's median;
- epochs one-cycle needs to reach the best constant run's final accuracy,
  as a ratio (budgets E, E/2, E/4 tried; Smith reports 2.8x-8x fewer
  iterations on CIFAR-10).

Every arm trains the same model from the same seed (same initial weights,
same shuffling) with the workload's optimizer; only the learning rate and
its schedule differ. The range test is kerasguide's own (`lr_finder`), run
on the fresh model exactly as the "lr_find" stage of `kerasguide run` does.

Usage: python benchmarks/one_cycle_quality.py [--workloads digits_mlp digits_cnn mnist1d_cnn] [--all-rules]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

import keras  # noqa: E402

from kerasguide.config import load_config  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402
from kerasguide.lr_finder import find_on_config as _find_on_config  # noqa: E402
from kerasguide.models import build_model  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.schedules import schedule_from_config  # noqa: E402
from kerasguide.training import compile_model, make_tf_dataset, steps_per_execution  # noqa: E402

GRID = [10 ** (-4 + i / 2) for i in range(9)]  # 1e-4, 3.2e-4, ..., 1


def _workload(name: str):
    if name == "digits_mlp":
        return load_config(preset_path("digits"))
    if name == "digits_cnn":
        cfg = load_config(preset_path("digits"))
        cfg.name = "digits-cnn"
        cfg.model.kind = "cnn"
        cfg.model.conv_dims = "2d"
        cfg.model.filters = [16, 32]
        cfg.model.kernel_size = 3
        cfg.model.pool = 2
        cfg.model.hidden = [64]
        cfg.model.l2 = 0.0
        cfg.train.epochs = 20
        cfg.lr_find.rule = "auto"  # the digits preset forces minimum_div_10 for its MLP
        return cfg
    if name == "mnist1d_cnn":
        cfg = load_config(preset_path("mnist1d_cnn"))
        cfg.train.epochs = 20  # the preset's 60 would take ~10 minutes for the 13 runs
        return cfg
    raise SystemExit(f"unknown workload {name!r}")


def _train(cfg, dataset, kind: str, lr: float, epochs: int) -> list[float]:
    cfg = cfg.model_copy(deep=True)
    cfg.train.epochs = epochs
    cfg.schedule.kind = kind
    cfg.optimizer.learning_rate = lr
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(cfg, dataset.input_shape, dataset.num_classes, dataset.image_shape)
    spe = math.ceil(len(dataset.x_train) / cfg.train.batch_size)
    schedule, callbacks = schedule_from_config(cfg, spe, lr)
    compile_model(model, cfg, schedule, steps_per_execution(cfg, spe))
    train = make_tf_dataset(dataset.x_train, dataset.y_train, cfg.train.batch_size, True, cfg.train.seed)
    val = make_tf_dataset(dataset.x_val, dataset.y_val, cfg.train.batch_size, False, 0)
    history = model.fit(train, validation_data=val, epochs=epochs, callbacks=callbacks, verbose=0)
    return [float(v) for v in history.history["val_accuracy"]]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def run_workload(name: str, all_rules: bool) -> dict:
    cfg = _workload(name)
    cfg.schedule.kind = "one_cycle"
    epochs = cfg.train.epochs
    dataset = load_dataset(cfg.data, cfg.train.seed)
    started = time.perf_counter()
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(cfg, dataset.input_shape, dataset.num_classes, dataset.image_shape)
    found = _find_on_config(cfg, dataset, model)
    find_seconds = time.perf_counter() - started
    grid = {}
    for lr in GRID:
        grid[lr] = _train(cfg, dataset, "constant", lr, epochs)
        print(f"  {name} constant {lr:.2g}: final {grid[lr][-1]:.4f}", flush=True)
    finals = {lr: _finite(curve[-1]) for lr, curve in grid.items()}
    best_lr = max(finals, key=finals.get)
    best, median = finals[best_lr], statistics.median(finals.values())
    one_cycle = _train(cfg, dataset, "one_cycle", found.chosen, epochs)[-1]
    print(f"  {name} one-cycle at {found.chosen:.2g} ({found.chosen_rule}): final {one_cycle:.4f}", flush=True)
    budgets = {}
    for divisor in (2, 4):
        budget = max(1, epochs // divisor)
        budgets[budget] = _train(cfg, dataset, "one_cycle", found.chosen, budget)[-1]
        print(f"  {name} one-cycle {budget} epochs: final {budgets[budget]:.4f}", flush=True)
    budgets[epochs] = one_cycle
    reached = [b for b, acc in budgets.items() if acc >= best]
    rules = {}
    if all_rules:
        for rule, lr in found.suggestions.items():
            if lr is not None and rule != found.chosen_rule:
                rules[rule] = (lr, _train(cfg, dataset, "one_cycle", lr, epochs)[-1])
                print(f"  {name} one-cycle at {rule} {lr:.2g}: final {rules[rule][1]:.4f}", flush=True)
    return {
        "name": name, "epochs": epochs, "chosen": found.chosen, "rule": found.chosen_rule,
        "suggestions": found.suggestions, "find_steps": found.steps, "find_seconds": find_seconds,
        "best_lr": best_lr, "best": best, "median": median, "one_cycle": one_cycle, "finals": finals,
        "fewest": min(reached) if reached else None, "budgets": budgets, "rules": rules,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["digits_mlp", "digits_cnn", "mnist1d_cnn"])
    parser.add_argument("--all-rules", action="store_true", help="also train one-cycle at every other rule's rate")
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    results = [run_workload(name, args.all_rules) for name in args.workloads]
    print()
    print("| workload | epochs | range test (steps, s) | chosen rate (rule) | one-cycle val acc | best constant "
          "(rate) | grid median | one-cycle minus best (pp) | >= median | epochs to best constant's accuracy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        gap = 100 * (r["one_cycle"] - r["best"])
        ratio = f"{r['fewest']} ({r['epochs'] / r['fewest']:.0f}x fewer)" if r["fewest"] else f"not reached in {r['epochs']}"
        print(f"| {r['name']} | {r['epochs']} | {r['find_steps']}, {r['find_seconds']:.1f} | {r['chosen']:.2g} "
              f"({r['rule']}) | {r['one_cycle']:.4f} | {r['best']:.4f} ({r['best_lr']:.2g}) | {r['median']:.4f} | "
              f"{gap:+.2f} | {'yes' if r['one_cycle'] >= r['median'] else 'NO'} | {ratio} |")
    print()
    print("Constant-rate grid, final validation accuracy:")
    print("| workload | " + " | ".join(f"{lr:.2g}" for lr in GRID) + " |")
    print("|---|" + "---|" * len(GRID))
    for r in results:
        print(f"| {r['name']} | " + " | ".join(f"{r['finals'][lr]:.4f}" for lr in GRID) + " |")
    if any(r["rules"] for r in results):
        print()
        print("One-cycle at each rule's rate:")
        for r in results:
            cells = [f"{r['rule']} {r['chosen']:.2g}: {r['one_cycle']:.4f} (chosen)"]
            cells += [f"{rule} {lr:.2g}: {acc:.4f}" for rule, (lr, acc) in r["rules"].items()]
            print(f"- {r['name']}: " + "; ".join(cells))
    np.set_printoptions(precision=4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
