"""Regression quality bar: the diabetes preset against a tuned Ridge, on the same split.

Goal: the `diabetes` preset's validation MAE is within 10 % of (or below)
that of scikit-learn's `Ridge` with its `alpha` chosen by `RidgeCV`
(efficient leave-one-out) on the training split, the linear model this
small, nearly linear data set is usually fitted with; and the preset's run
stays under ~30 s on this 2-core CPU. Both sides in one process, on the same
split and the same preprocessing (`kerasguide.data.load_dataset` with the
run's seed: inputs standardized on the training split, targets raw). The
kerasguide side is `kerasguide run diabetes` itself (its final validation
metrics, run.json's seconds), with the sanity checks off (`--checks` turns
them on: they judged classification only until the checks learn regression).
Predicting the training mean is the floor both must beat.

Usage: python benchmarks/regression.py [--seeds 0 1 2] [--checks] [--set train.epochs=40 ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tomllib

import numpy as np

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

from sklearn.linear_model import Ridge, RidgeCV  # noqa: E402

from kerasguide.config import RunConfig, config_from_dict, load_config  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.spine import run  # noqa: E402
from kerasguide.training import split_seed  # noqa: E402

ALPHAS = np.logspace(-3, 3, 61)


def _with(cfg: RunConfig, settings: list[str]) -> RunConfig:
    data = cfg.to_dict()
    for item in settings:
        key, _, text = item.partition("=")
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = tomllib.loads(f"v = {text}")["v"]
    return config_from_dict(data, "--set")


def ridge_mae(cfg: RunConfig) -> tuple[float, float, float]:
    """`(Ridge's validation MAE, its alpha, the MAE of predicting the training mean)` on the run's split."""
    ds = load_dataset(cfg.data, split_seed(cfg))
    alpha = float(RidgeCV(alphas=ALPHAS).fit(ds.x_train, ds.y_train).alpha_)
    model = Ridge(alpha=alpha).fit(ds.x_train, ds.y_train)
    mae = float(np.mean(np.abs(model.predict(ds.x_val) - ds.y_val)))
    return mae, alpha, float(np.mean(np.abs(ds.y_val - ds.y_train.mean())))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--checks", action="store_true", help="run the sanity checks too")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override preset keys (TOML values)")
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    base = _with(load_config(preset_path("diabetes")), args.set)
    base.checks.enabled = args.checks
    print("| seed | Ridge alpha | Ridge val MAE | preset val MAE | ratio | mean-predictor MAE | preset val RMSE "
          "| run seconds | findings |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    with tempfile.TemporaryDirectory() as out:
        for seed in args.seeds:
            cfg = base.model_copy(deep=True)
            cfg.train.seed = seed
            reference, alpha, floor = ridge_mae(cfg)
            result = run(cfg, out=out, verbose=0)
            record = result.run_dir.read_run()
            final = result.final_metrics
            mae = final.get("val_mae", float("nan"))
            ratios.append(mae / reference)
            findings = result.run_dir.read("diagnosis.json", default={}) or {}
            codes = ", ".join(f"{f['code']} ({f['severity']})" for f in findings.get("findings", [])) or "none"
            print(f"| {seed} | {alpha:.3g} | {reference:.2f} | {mae:.2f} | **{mae / reference:.3f}** | {floor:.2f} | "
                  f"{final.get('val_rmse', float('nan')):.2f} | {record.get('seconds', 0):.1f} | {codes} |",
                  flush=True)
    worst = max(ratios)
    print(f"\nworst ratio {worst:.3f} (goal <= 1.10): {'met' if worst <= 1.10 else 'NOT met'}")
    return 0 if worst <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
