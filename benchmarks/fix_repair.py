"""`kerasguide fix` on planted pathologies: the accuracy after at most 2 rounds against the healthy preset's.

Each case is the digits preset (`kerasguide run digits`: sanity checks, the
LR range test, one-cycle, 20 epochs) with one thing broken; it runs as
`kerasguide run` would, then `fix_run(run_dir, rounds=2)` repairs it. The
goal (issue 13): at least 7 of 8 cases end within 1 point of the healthy
preset's validation accuracy (same seed). The measured table is in
`benchmarks/README.md`.

Usage: python benchmarks/fix_repair.py [--only NAME ...] [--rounds 2] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

from kerasguide.config import RunConfig, load_config  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.repair import fix_run  # noqa: E402
from kerasguide.spine import run  # noqa: E402

# (name, dotted key -> planted value)
CASES: list[tuple[str, dict]] = [
    ("SGD at rate 5", {"optimizer.name": "sgd", "optimizer.learning_rate": 5.0}),
    ("Adam at rate 1e-6", {"optimizer.learning_rate": 1e-6}),
    ("SGD at rate 1e-5", {"optimizer.name": "sgd", "optimizer.learning_rate": 1e-5}),
    ("deep sigmoid, tiny weights", {"model.activation": "sigmoid", "model.kernel_initializer": "normal",
                                    "model.init_stddev": 0.01, "model.hidden": [64] * 6}),
    ("tanh, normal init stddev 3", {"model.activation": "tanh", "model.kernel_initializer": "normal",
                                    "model.init_stddev": 3.0}),
    ("ReLU, normal init stddev 1", {"model.kernel_initializer": "normal", "model.init_stddev": 1.0}),
    ("ReLU biases -5", {"model.bias_init": -5.0}),
    ("zero initial weights", {"model.kernel_initializer": "zeros"}),
    ("3-unit hidden layer", {"model.hidden": [3]}),
    ("L2 0.05", {"model.l2": 0.05}),
]


def _preset(seed: int, changes: dict) -> RunConfig:
    config = load_config(preset_path("digits"))
    config.train.seed = seed
    data = config.to_dict()
    for key, value in changes.items():
        section, name = key.split(".")
        data[section][name] = value
    return RunConfig.model_validate(data)


def _accuracy(path: Path) -> float | None:
    from kerasguide.rundir import read_run

    value = read_run(path).final.get("val_accuracy")
    return float(value) if isinstance(value, (int, float)) else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="substrings of case names to run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of fix (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="keep the run directories here (default: a temporary folder)")
    args = parser.parse_args(argv)
    set_verbosity("ERROR")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        healthy = run(_preset(args.seed, {}), out=out / "healthy", verbose=0)
        reference = healthy.final_metrics.get("val_accuracy")
        print(f"healthy digits preset: val_accuracy {reference:.4f} ({healthy.status})", file=sys.stderr, flush=True)
        rows = []
        for name, changes in CASES:
            if args.only and not any(s in name for s in args.only):
                continue
            folder = out / name.replace(" ", "_").replace(",", "")
            planted = run(_preset(args.seed, changes), out=folder, verbose=0)
            result = fix_run(planted.path, rounds=args.rounds)
            before, after = _accuracy(planted.path), _accuracy(result.last)
            ok = after is not None and after >= reference - 0.01
            change_text = "; ".join(
                ", ".join(f"{k} {old!r} → {new!r}" for k, (old, new) in step["changes"].items())
                for step in result.rounds) or "—"
            rows.append((name, planted.status, before, len(result.rounds), change_text, after, result.outcome,
                         ", ".join(result.remaining) or "none", ok))
            print(f"{'ok ' if ok else 'BAD'} {name}: {planted.status} {before} -> {after} in {len(result.rounds)} "
                  f"round(s) ({result.outcome}; {change_text}; left: {', '.join(result.remaining) or 'none'})",
                  file=sys.stderr, flush=True)
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"\nhealthy digits preset (seed {args.seed}): val accuracy {fmt(reference)}\n")
    print("| planted | planted run | val acc before | rounds | changes | val acc after | outcome | left | "
          "within 1 pt |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, status, before, rounds, changes, after, outcome, left, ok in rows:
        print(f"| {name} | {status} | {fmt(before)} | {rounds} | {changes} | {fmt(after)} | {outcome} | {left} | "
              f"{'yes' if ok else '**no**'} |")
    good = sum(r[-1] for r in rows)
    print(f"\n{good}/{len(rows)} within 1 point of the healthy preset ({time.perf_counter() - start:.0f} s in all)")
    return 0 if good >= min(7, len(rows)) else 1


if __name__ == "__main__":
    sys.exit(main())
