"""What every run's backup costs (`callbacks.RunBackup`, Keras' BackupAndRestore behind `run --resume`).

Goal (issue 16, "bounded"): the backup adds at most ~5% to a run's training time. Both sides are the real
`kerasguide run` of a preset in this one process, interleaved (A B A B ...; the machine is shared and
noisy): with the backup as every run has it, and with its saves switched off; with the default
`train.backup_after` (10 s of training before the first) and with 0 (from the first epoch). Reported: the
median of the per-pair ratios of `train_seconds`, and how many backups were written.

Usage: python benchmarks/backup_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

from kerasguide.callbacks import RunBackup  # noqa: E402
from kerasguide.config import load_config  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.spine import run  # noqa: E402

_saves: list[int] = []
_on_epoch_end = RunBackup.on_epoch_end
_saved = RunBackup._saved


def _counted(self, seconds):
    _saves.append(1)
    _saved(self, seconds)


def timed(cfg, out: str, backup: bool) -> tuple[float, int]:
    _saves.clear()
    RunBackup.on_epoch_end = _on_epoch_end if backup else (lambda self, epoch, logs=None: None)
    try:
        result = run(cfg, out=out, verbose=0)
    finally:
        RunBackup.on_epoch_end = _on_epoch_end
    assert result.status == "completed", result.error
    return result.run_dir.read_run()["train_seconds"], len(_saves)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", nargs="+", default=["digits", "mnist1d_cnn"])
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    RunBackup._saved = _counted
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for preset in args.presets:
            cfg = load_config(preset_path(preset))
            cfg.checks.enabled = False
            if cfg.optimizer.learning_rate == "auto":
                cfg.optimizer.learning_rate = 1e-3  # time the training, not the range test
            timed(cfg, out, True)  # warm-up: traces, caches
            for after in (cfg.train.backup_after, 0.0):  # the default (10 s of training first), from epoch 1
                cfg.train.backup_after = after
                ratios, saves = [], []
                for _ in range(args.repeats):
                    off, _ = timed(cfg, out, False)
                    on, n = timed(cfg, out, True)
                    ratios.append(on / off)
                    saves.append(n)
                rows.append((f"{preset}, backup_after = {after:g}", cfg.train.epochs, statistics.median(ratios),
                             min(ratios), max(ratios), statistics.median(saves)))
                print(f"{rows[-1][0]}: {rows[-1][2]:.3f}x", file=sys.stderr, flush=True)
    print(f"\n{args.repeats} interleaved pairs per preset, median of the pair ratios of train_seconds\n")
    print("| preset | epochs | with backup / without (median) | range | backups written |")
    print("|---|---|---|---|---|")
    for preset, epochs, r, lo, hi, n in rows:
        print(f"| {preset} | {epochs} | **{r:.3f}x** | {lo:.3f}–{hi:.3f} | {n:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
