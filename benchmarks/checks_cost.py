"""What the sanity checks cost (issue 5 quality bar).

Goals on this 2-core CPU: the whole `kerasguide check` on the digits
default takes <= 15 s (wall clock of the command, Python start and the
TensorFlow import included); the gradient check on a model with ~100k
parameters takes <= 10 s.

Everything runs in this one process (plus the CLI child processes), with
repetitions interleaved (A B A B ...) because the machine is shared and
noisy; the table reports medians, and each cost also as a ratio to
training the same thing side by side:

- `kerasguide check digits` (a child process) vs `kerasguide run digits`
  with `checks = false` (a child process): what the checks add to a run.
- `check_config(digits)` in process, per check, vs the digits default's
  own training time (run.json `train_seconds`, checks off).
- `check_gradients` on a 101,770-parameter MLP (784-128-10) and a
  99,376-parameter CNN (28x28x1), vs one epoch of `model.fit` of that model
  on 2,000 examples.

Usage: python benchmarks/checks_cost.py [--repeats 3]
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

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasguide.checks import check_gradients  # noqa: E402
from kerasguide.config import load_config  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.spine import check_config, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _cli(args: list[str]) -> tuple[float, int]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "kerasguide.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    return time.perf_counter() - started, proc.returncode


def _mlp() -> keras.Model:
    inp = keras.Input((784,))
    x = keras.layers.Dense(128, activation="relu")(inp)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))


def _cnn() -> keras.Model:
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(32, 3, activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(50, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))


def _gradcheck_vs_epoch(build, shape) -> tuple[float, float, int, dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, *shape)).astype("float32")
    y = rng.integers(0, 10, 2000)
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    started = time.perf_counter()
    result = check_gradients(model, x, y)
    grad_seconds = time.perf_counter() - started
    assert result.passed, result.advice
    started = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    fit_seconds = time.perf_counter() - started
    return grad_seconds, fit_seconds, model.count_params(), result.details["counts"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    cfg = load_config(preset_path("digits"))
    cli_check, cli_run, in_process, train, per_check = [], [], [], [], {}
    grads: dict[str, list] = {"MLP 784-128-10": [], "CNN 28x28x1": []}
    with tempfile.TemporaryDirectory() as out:
        no_checks = Path(out) / "digits_no_checks.toml"
        no_checks.write_text(
            preset_path("digits").read_text().replace("[data]", "checks = false\n\n[data]", 1)
        )
        for _ in range(args.repeats):
            seconds, code = _cli(["check", "digits", "--out", out])
            assert code == 0, f"kerasguide check digits exited {code}"
            cli_check.append(seconds)
            seconds, code = _cli(["run", str(no_checks), "--out", out, "--quiet"])
            assert code == 0, f"kerasguide run exited {code}"
            cli_run.append(seconds)
            started = time.perf_counter()
            _, results = check_config(cfg, out=out)
            in_process.append(time.perf_counter() - started)
            for r in results:
                per_check.setdefault(r.name, []).append(r.details["seconds"])
            plain = cfg.model_copy(deep=True)
            plain.checks.enabled = False
            train.append(run(plain, out=out, verbose=0).run_dir.read_run()["train_seconds"])
            for name, (build, shape) in zip(grads, ((_mlp, (784,)), (_cnn, (28, 28, 1))), strict=False):
                grads[name].append(_gradcheck_vs_epoch(build, shape))
    med = statistics.median
    print(f"repeats: {args.repeats} (medians; ratios are medians of per-repeat ratios)\n")
    print("| what | seconds | compared with | its seconds | ratio | goal |")
    print("|---|---|---|---|---|---|")
    print(
        f"| `kerasguide check digits` (CLI, wall clock) | {med(cli_check):.1f} | `kerasguide run digits`, "
        f"checks off (CLI, 40 epochs) | {med(cli_run):.1f} | "
        f"{med(a / b for a, b in zip(cli_check, cli_run, strict=False)):.2f} | <= 15 s |"
    )
    print(
        f"| all checks in process (`check_config`) | {med(in_process):.2f} | digits training "
        f"(train_seconds) | {med(train):.2f} | {med(a / b for a, b in zip(in_process, train, strict=False)):.2f} | |"
    )
    for name, values in per_check.items():
        print(
            f"| - {name} | {med(values):.2f} | digits training | {med(train):.2f} | "
            f"{med(v / t for v, t in zip(values, train, strict=False)):.3f} | |"
        )
    for name, rows in grads.items():
        g = [r[0] for r in rows]
        f = [r[1] for r in rows]
        params, counts = rows[0][2], rows[0][3]
        checked = sum(counts.values())
        print(
            f"| `check_gradients`, {name} ({params:,} parameters, {checked} coordinates) | {med(g):.2f} | "
            f"1 epoch of fit, 2,000 examples | {med(f):.2f} | {med(a / b for a, b in zip(g, f, strict=False)):.2f} | "
            "<= 10 s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
