"""Calibrate the diagnosis thresholds on many small runs, healthy and planted.

Each case is a real `kerasguide.run` (checks off, monitors at their default
cadence) on the bundled data; the script prints, for every run, the numbers
the rules read (`kerasguide.diagnosis.measure`) and the codes it found, then
for each measure the range over the healthy runs and over the runs planted
to trigger it: a threshold belongs in the gap between them. The measured
table is in `benchmarks/README.md`.

Usage: python benchmarks/diagnosis_calibration.py [--only NAME ...] [--seeds 3] [--out DIR]
       python benchmarks/diagnosis_calibration.py --rediagnose DIR   (runs kept by --out, current thresholds)
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

from kerasguide.config import RunConfig, load_config  # noqa: E402
from kerasguide.diagnosis import CODES, Thresholds, diagnose_run, load_signals, measure  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.spine import run  # noqa: E402


def _set(cfg: RunConfig, changes: dict) -> RunConfig:
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def _digits(epochs: int, checks: bool = False, **changes) -> Callable[[int], RunConfig]:
    def make(seed: int) -> RunConfig:
        cfg = RunConfig()
        cfg.name = "calib"
        cfg.checks.enabled = checks
        cfg.checks.skip = ["regularization", "gradients"]  # the overfit check is the one that stops runs
        cfg.train.epochs = epochs
        cfg.train.seed = seed
        return _set(cfg, changes)

    return make


def _preset(preset: str, epochs: int, checks: bool = False, **changes) -> Callable[[int], RunConfig]:
    def make(seed: int) -> RunConfig:
        cfg = load_config(preset_path(preset))
        cfg.checks.enabled = checks
        cfg.train.epochs = epochs
        cfg.train.seed = seed
        return _set(cfg, changes)

    return make


def _mnist1d(epochs: int, **changes) -> Callable[[int], RunConfig]:
    return _preset("mnist1d_cnn", epochs, **changes)


def _shuffled(epochs: int) -> Callable[[int], RunConfig]:
    """Digits with their labels permuted (written once to a temporary npz): nothing to learn but memorizing."""

    def make(seed: int) -> RunConfig:
        import numpy as np
        from sklearn.datasets import load_digits

        path = Path(tempfile.gettempdir()) / f"kerasguide-calib-shuffled-{seed}.npz"
        x, y = load_digits(return_X_y=True)
        np.savez(path, x=x.astype("float32"), y=np.random.default_rng(seed).permutation(y))
        return _digits(epochs, data__source=f"npz:{path}")(seed)

    return make


SGD = dict(optimizer__name="sgd", optimizer__learning_rate=0.05, optimizer__nesterov=True)
STEP = dict(schedule__kind="step", schedule__every_epochs=5.0, schedule__factor=0.5)
ONE_CYCLE = dict(schedule__kind="one_cycle")

# (name, expected codes (warning/error) or () for healthy, config factory)
CASES: list[tuple[str, tuple[str, ...], Callable[[int], RunConfig]]] = [
    # Healthy: activations relu / tanh / gelu / sigmoid with batch norm; sgd+nesterov / adam / rmsprop;
    # constant / step / one-cycle; digits, mnist1d and the diabetes regression.
    ("healthy digits adam 40ep", (), _digits(40)),
    ("healthy digits adam 5ep", (), _digits(5)),
    ("healthy digits adam batch 16", (), _digits(10, train__batch_size=16)),
    ("healthy digits adam 3e-3 no dropout", (), _digits(15, optimizer__learning_rate=3e-3, model__dropout=0.0)),
    ("healthy digits sgd 0.05", (), _digits(20, optimizer__name="sgd", optimizer__learning_rate=0.05)),
    ("healthy digits tanh glorot", (), _digits(15, model__activation="tanh", model__kernel_initializer="glorot_normal")),
    ("healthy digits batchnorm", (), _digits(10, model__batch_norm=True)),
    ("healthy digits deep relu", (), _digits(15, model__hidden=[128, 128, 128, 128])),
    ("healthy digits preset (range test, one-cycle)", (), _preset("digits", 20)),
    ("healthy digits preset, checks on", (), _preset("digits", 10, checks=True)),
    ("healthy digits sgd nesterov step", (), _digits(20, **SGD, **STEP)),
    ("healthy digits sgd nesterov one-cycle", (), _digits(15, **{**SGD, "optimizer__learning_rate": 0.1},
                                                          **ONE_CYCLE)),
    ("healthy digits rmsprop", (), _digits(15, optimizer__name="rmsprop")),
    ("healthy digits rmsprop step", (), _digits(20, optimizer__name="rmsprop", **STEP)),
    ("healthy digits tanh glorot sgd nesterov", (), _digits(20, model__activation="tanh",
                                                            model__kernel_initializer="glorot_normal", **SGD)),
    ("healthy digits tanh glorot one-cycle", (), _digits(15, model__activation="tanh",
                                                         model__kernel_initializer="glorot_normal",
                                                         optimizer__learning_rate=3e-3, **ONE_CYCLE)),
    ("healthy digits gelu adam", (), _digits(15, model__activation="gelu")),
    ("healthy digits gelu rmsprop step", (), _digits(20, model__activation="gelu", optimizer__name="rmsprop",
                                                     **STEP)),
    ("healthy digits sigmoid batchnorm adam", (), _digits(15, model__activation="sigmoid", model__batch_norm=True,
                                                          model__kernel_initializer="glorot_normal")),
    ("healthy digits sigmoid batchnorm sgd", (), _digits(20, model__activation="sigmoid", model__batch_norm=True,
                                                         model__kernel_initializer="glorot_normal",
                                                         **{**SGD, "optimizer__learning_rate": 0.1})),
    ("healthy digits relu checks on", (), _digits(10, checks=True)),
    ("healthy mnist1d cnn 12ep", (), _mnist1d(12)),
    ("healthy mnist1d cnn rmsprop", (), _mnist1d(12, optimizer__name="rmsprop")),
    ("healthy mnist1d cnn sgd nesterov one-cycle", (), _mnist1d(12, **ONE_CYCLE, **{**SGD,
                                                                                    "optimizer__learning_rate": 0.1})),
    ("healthy mnist1d cnn gelu step", (), _mnist1d(12, model__activation="gelu", **STEP)),
    ("healthy diabetes regression", (), _preset("diabetes", 40)),
    ("healthy diabetes regression rmsprop", (), _preset("diabetes", 40, optimizer__name="rmsprop")),
    # Planted, checks off: the run trains and the monitors see it.
    # Explodes (seed 0), or kills every ReLU in its first steps and stays at chance (seed 1).
    ("sgd lr 5", ("lr_too_high",), _digits(5, optimizer__name="sgd", optimizer__learning_rate=5.0)),
    ("adam lr 0.1", ("lr_too_high",), _digits(10, optimizer__learning_rate=0.1)),
    ("adam lr 1e-6", ("lr_too_low",), _digits(8, optimizer__learning_rate=1e-6)),
    ("sgd lr 1e-5", ("lr_too_low",), _digits(8, optimizer__name="sgd", optimizer__learning_rate=1e-5)),
    ("tanh stddev 3", ("saturated_units",), _digits(5, model__activation="tanh", model__kernel_initializer="normal",
                                                     model__init_stddev=3.0)),
    ("relu bias -5", ("dead_units",), _digits(5, model__bias_init=-5.0)),
    ("deep sigmoid tiny init", ("vanishing_gradients",), _digits(
        5, model__activation="sigmoid", model__kernel_initializer="normal", model__init_stddev=0.01,
        model__hidden=[64] * 6)),
    ("100 examples big MLP", ("overfitting",), _digits(
        40, data__subset=100, model__hidden=[512, 512], model__dropout=0.0, model__l2=0.0, train__batch_size=32)),
    ("2-unit hidden layer", ("underfitting",), _digits(25, model__hidden=[2], model__dropout=0.0, model__l2=0.0,
                                                       optimizer__learning_rate=3e-3)),
    ("batch 2", ("noisy_loss",), _digits(3, train__batch_size=2)),
    ("shuffled labels", ("labels_not_learnable",), _shuffled(10)),
    ("mnist1d cnn adam lr 0.05", ("lr_too_high",), _mnist1d(8, optimizer__learning_rate=0.05)),
    ("diabetes 1-unit hidden layer", ("underfitting",), _preset("diabetes", 40, model__hidden=[1],
                                                                model__dropout=0.0)),
    # Planted, checks on: issue 13's held-out runs, stopped by the overfit check before training.
    ("stopped: sgd lr 2", ("lr_too_high",), _digits(3, True, optimizer__name="sgd", optimizer__learning_rate=2.0)),
    ("stopped: adam lr 3e-6", ("lr_too_low",), _digits(3, True, optimizer__learning_rate=3e-6)),
    ("stopped: sgd lr 3e-5", ("lr_too_low",), _digits(3, True, optimizer__name="sgd", optimizer__learning_rate=3e-5)),
    ("stopped: deep sigmoid tiny init", ("vanishing_gradients",), _digits(
        3, True, model__activation="sigmoid", model__kernel_initializer="normal", model__init_stddev=0.02,
        model__hidden=[64] * 5)),
    ("stopped: 3-unit hidden layer", ("underfitting",), _digits(3, True, model__hidden=[3], model__dropout=0.0)),
]

KEYS = ("progress", "late_progress", "update_ratio_first", "update_ratio", "gap", "val_rise", "accuracy", "loss_noise", "dead_fraction",
        "saturated_fraction", "grad_ratio")


def _row(name, seed, expected, run_dir):
    signals = load_signals(run_dir)
    m = measure(signals)
    findings = diagnose_run(run_dir)
    codes = sorted({f.code for f in findings if f.severity != "info"})
    info = sorted({f.code for f in findings if f.severity == "info"})
    first = findings[0].code if findings and findings[0].severity != "info" else None
    ok = set(expected) <= set(codes) and bool(expected or not codes)
    contradiction = bool(set(codes) & {"lr_too_high", "update_ratio_high"} and set(codes) & {"lr_too_low",
                                                                                           "update_ratio_low"})
    print(f"{'ok ' if ok else 'BAD'} {name} seed {seed} ({signals.status}): found {codes} first {first} info {info}; "
          + ", ".join(f"{k}={m[k]:.3g}" for k in KEYS), file=sys.stderr, flush=True)
    return name, seed, expected, m, codes, info, ok, first, contradiction


def _per_code(results) -> None:
    """Per code: planted runs where it is found (and named first), false alarms on the healthy runs."""
    healthy = [r for r in results if not r[2]]
    print("\n| code | detected / planted | named first | false alarms / healthy |\n|---|---|---|---|")
    for code in CODES:
        planted = [r for r in results if code in r[2]]
        alarms = sum(code in r[4] for r in healthy)
        if not planted and not alarms:
            continue
        found = sum(code in r[4] for r in planted)
        first = sum(r[7] == code for r in planted)
        print(f"| `{code}` | {found} / {len(planted)} | {first} / {len(planted)} | {alarms} / {len(healthy)} |")
    print(f"\nruns with opposite causes reported together: {sum(r[8] for r in results)} / {len(results)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="substrings of case names to run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per case")
    parser.add_argument("--out", help="keep the run directories here (default: a temporary folder)")
    parser.add_argument("--rediagnose", help="diagnose the runs kept in this folder again; train nothing")
    args = parser.parse_args(argv)
    set_verbosity("ERROR")
    results = []
    expected_of = {name: expected for name, expected, _ in CASES}
    if args.rediagnose:
        for path in sorted(Path(args.rediagnose).iterdir()):
            if (path / "config.toml").exists():
                name, _, seed = load_config(path / "config.toml").description.rpartition(" seed ")
                if name in expected_of:
                    results.append(_row(name, int(seed), expected_of[name], path))
        results.sort(key=lambda r: ([c[0] for c in CASES].index(r[0]), r[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or tmp
            for name, expected, make in CASES:
                if args.only and not any(s in name for s in args.only):
                    continue
                for seed in range(args.seeds):
                    cfg = make(seed)
                    cfg.description = f"{name} seed {seed}"
                    result = run(cfg, out=out, verbose=0)
                    results.append(_row(name, seed, expected, result.run_dir))
    print("\n| case | seeds | expected | found (warning/error) | " + " | ".join(KEYS) + " |")
    print("|---|---|---|---|" + "---|" * len(KEYS))
    by_case: dict[str, list] = {}
    for r in results:
        by_case.setdefault(r[0], []).append(r)
    for name, rows in by_case.items():
        found = sorted({c for r in rows for c in r[4]})
        cells = []
        for k in KEYS:
            values = [r[3][k] for r in rows if math.isfinite(r[3][k])]
            cells.append("—" if not values else (f"{min(values):.2g}" if min(values) == max(values)
                                                 else f"{min(values):.2g}…{max(values):.2g}"))
        expected = ", ".join(rows[0][2]) or "none"
        print(f"| {name} | {len(rows)} | {expected} | {', '.join(found) or 'none'} | " + " | ".join(cells) + " |")
    _per_code(results)
    print(f"\nthresholds: {Thresholds()}")
    bad = [r for r in results if not r[6]]
    print(f"\n{len(results) - len(bad)}/{len(results)} runs diagnosed as planted", file=sys.stderr)
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
