"""Accuracy of the bundled presets (Foundation quality bar).

Goals: the digits default reaches >= 0.97 validation accuracy in under 60 s
of training on this 2-core CPU; the mnist1d CNN preset reaches >= 0.90
(published: MLP 68 %, CNN 94 %; a plain Keras CNN gets 0.91 in 60 epochs).
Each preset runs exactly as `kerasguide run PRESET` would (checks and the
range test included when the preset asks for them); training seconds are
run.json's `train_seconds`.

Usage: python benchmarks/accuracy.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

from kerasguide.config import load_config  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.spine import run  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    print("| preset | seed | val accuracy | test accuracy | train seconds | status |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as out:
        for preset in ("digits", "mnist1d_cnn"):
            for seed in args.seeds:
                cfg = load_config(preset_path(preset))
                cfg.train.seed = seed
                result = run(cfg, out=out, verbose=0)
                record = result.run_dir.read_run()
                final = result.final_metrics
                test = final.get("test_accuracy")
                print(f"| {preset} | {seed} | {final.get('val_accuracy', float('nan')):.4f} | "
                      f"{'—' if test is None else f'{test:.4f}'} | {record.get('train_seconds', 0):.1f} | "
                      f"{result.status} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
