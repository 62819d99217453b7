"""What ensembles, averaged weights and distillation buy (recipes J34-J36), measured.

For each workload, `--members` seeds of one config are trained with the
optimizer's EMA of the weights on (`use_ema=True`, momentum 0.99). Each fit
gives, paired, the raw weights after the last step and their EMA (what
`EMAWeights` validates and keeps). No checkpoint is picked on the
validation set: every score is of the last epoch's weights.

- J35: raw vs EMA weights, per seed, validation (and test) accuracy and
  log-loss; once at the config's learning rate, once at 10x (noisier).
- J34: the ensemble of the EMA members (averaged probabilities) vs its mean
  and best member.
- J36: a smaller student distilled from that ensemble vs the same student
  trained alone (same initial weights, same batches, same epochs), at
  T = 4, alpha = 0.1 and at T = 1, alpha = 0.5.

The measured tables are in benchmarks/README.md.

Usage: python benchmarks/ensemble_gain.py [--members 5] [--noisy-seeds 3] [--students 3] [--workloads digits mnist1d]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from kerasguide._logging import import_tensorflow, set_verbosity

import_tensorflow()

import keras  # noqa: E402

from kerasguide.averaging import EMAWeights  # noqa: E402
from kerasguide.config import load_config  # noqa: E402
from kerasguide.data import load_dataset  # noqa: E402
from kerasguide.distill import Distiller  # noqa: E402
from kerasguide.ensemble import Ensemble, accuracy, ensemble_metrics, log_loss  # noqa: E402
from kerasguide.models import build_model, make_optimizer  # noqa: E402
from kerasguide.presets import preset_path  # noqa: E402
from kerasguide.training import compile_model, make_tf_dataset, steps_per_execution  # noqa: E402


def _workload(name: str):
    if name == "digits":
        cfg = load_config(preset_path("digits_ensemble"))  # 64-unit MLP, 30 epochs, student [16]
    else:
        cfg = load_config(preset_path("mnist1d_cnn"))
        cfg.train.epochs = 20
        cfg.model.filters = [32, 32]
        cfg.ensemble.student_hidden = [32]
    cfg.optimizer.ema = True
    cfg.optimizer.ema_momentum = 0.99
    return cfg


def _predict(model, x):
    return model.predict(x, batch_size=512, verbose=0)


def _train_member(cfg, ds, seed):
    cfg = cfg.model_copy(deep=True)
    cfg.train.seed = seed
    keras.utils.set_random_seed(seed)
    model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape)
    steps = math.ceil(len(ds.x_train) / cfg.train.batch_size)
    compile_model(model, cfg, float(cfg.optimizer.learning_rate), steps_per_execution(cfg, steps))
    raw = {}

    class Grab(keras.callbacks.Callback):
        # Placed before EMAWeights: at the last epoch's end the model still holds the raw weights.
        def on_epoch_end(self, epoch, logs=None):
            raw["weights"] = self.model.get_weights()

    train = make_tf_dataset(ds.x_train, ds.y_train, cfg.train.batch_size, True, seed)
    model.fit(train, epochs=cfg.train.epochs, verbose=0, shuffle=False, callbacks=[Grab(), EMAWeights()])
    ema = {"val": _predict(model, ds.x_val), "test": None if ds.x_test is None else _predict(model, ds.x_test)}
    model_ema = model.get_weights()
    model.set_weights(raw["weights"])
    out = {"val": _predict(model, ds.x_val), "test": None if ds.x_test is None else _predict(model, ds.x_test)}
    model.set_weights(model_ema)
    return model, out, ema


def _student(cfg, ds, teacher, seed, distill: bool):
    cfg = cfg.model_copy(deep=True)
    cfg.train.seed = seed
    cfg.model.hidden = list(cfg.ensemble.student_hidden)
    cfg.optimizer.ema = False  # compare the losses alone
    keras.utils.set_random_seed(seed)
    model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape)
    steps = math.ceil(len(ds.x_train) / cfg.train.batch_size)
    spe = steps_per_execution(cfg, steps)
    lr = float(cfg.optimizer.learning_rate)
    train = make_tf_dataset(ds.x_train, ds.y_train, cfg.train.batch_size, True, seed)
    if distill:
        fitted = Distiller(model, teacher, cfg.ensemble.temperature, cfg.ensemble.alpha)
        fitted.compile(optimizer=make_optimizer(cfg.optimizer, lr), steps_per_execution=spe)
    else:
        compile_model(model, cfg, lr, spe)
        fitted = model
    fitted.fit(train, epochs=cfg.train.epochs, verbose=0, shuffle=False)
    return {"val": _predict(model, ds.x_val), "test": None if ds.x_test is None else _predict(model, ds.x_test)}, \
        int(model.count_params())


def _fmt(values):
    return f"{np.mean(values):.4f}"


def _paired_table(rows_a, rows_b, splits, label_a, label_b, label_wins):
    print(f"| split | metric | {label_a} (mean) | {label_b} (mean) | {label_wins} |")
    print("|---|---|---|---|---|")
    for split, y in splits:
        for metric, fn, better in (("accuracy", accuracy, np.greater_equal), ("log-loss", log_loss, np.less_equal)):
            a = [fn(p[split], y) for p in rows_a]
            b = [fn(p[split], y) for p in rows_b]
            wins = int(sum(better(q, p) for p, q in zip(a, b, strict=True)))
            print(f"| {split} | {metric} | {_fmt(a)} | {_fmt(b)} | {wins}/{len(a)} seeds |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--noisy-seeds", type=int, default=3, help="seeds of the EMA run at 10x the learning rate")
    parser.add_argument("--students", type=int, default=3, help="seeds of the student comparison")
    parser.add_argument("--workloads", nargs="+", default=["digits", "mnist1d"])
    args = parser.parse_args(argv)
    set_verbosity("WARNING")
    for name in args.workloads:
        cfg = _workload(name)
        ds = load_dataset(cfg.data, cfg.train.seed)
        splits = [("val", ds.y_val)] + ([("test", ds.y_test)] if ds.x_test is not None else [])
        started = time.perf_counter()
        models, raws, emas = [], [], []
        for i in range(args.members):
            model, raw, ema = _train_member(cfg, ds, cfg.train.seed + i)
            models.append(model)
            raws.append(raw)
            emas.append(ema)
        lr = float(cfg.optimizer.learning_rate)
        print(f"\n### {name}: {cfg.model.kind} {cfg.model.filters if cfg.model.kind == 'cnn' else ''}"
              f"{cfg.model.hidden}, {cfg.optimizer.name} lr {lr:g}, {cfg.train.epochs} epochs, "
              f"{args.members} seeds ({time.perf_counter() - started:.0f} s)\n")
        print(f"J35, raw vs EMA weights (momentum {cfg.optimizer.ema_momentum}) after the last epoch, paired per seed:\n")
        _paired_table(raws, emas, splits, "raw", "EMA", "EMA at least as good in")
        noisy = cfg.model_copy(deep=True)
        noisy.optimizer.learning_rate = 10 * lr
        pairs = [_train_member(noisy, ds, cfg.train.seed + i)[1:] for i in range(args.noisy_seeds)]
        print(f"\nJ35 at 10x the learning rate ({10 * lr:g}: noisier, the case the recipe describes):\n")
        _paired_table([p[0] for p in pairs], [p[1] for p in pairs], splits, "raw", "EMA", "EMA at least as good in")
        print("\nJ34, ensemble of the EMA members (averaged probabilities):\n")
        print("| split | metric | mean member | best member | ensemble |")
        print("|---|---|---|---|---|")
        for split, y in splits:
            m = ensemble_metrics(np.stack([p[split] for p in emas]), y)
            for key, label in (("accuracy", "accuracy"), ("log_loss", "log-loss")):
                best = max(x["accuracy"] for x in m["members"]) if key == "accuracy" else \
                    min(x["log_loss"] for x in m["members"])
                print(f"| {split} | {label} | {m['mean_member'][key]:.4f} | {best:.4f} | **{m['ensemble'][key]:.4f}** |")
        teacher = Ensemble(models)
        for temperature, alpha in ((4.0, 0.1), (1.0, 0.5)):
            scfg = cfg.model_copy(deep=True)
            scfg.ensemble.temperature = temperature
            scfg.ensemble.alpha = alpha
            rows = {"alone": [], "distilled": []}
            params = 0
            for s in range(args.students):
                for role in ("alone", "distilled"):  # interleaved
                    probs, params = _student(scfg, ds, teacher, 100 + s, role == "distilled")
                    rows[role].append(probs)
            print(f"\nJ36, student hidden {cfg.ensemble.student_hidden} ({params:,} parameters), T = "
                  f"{temperature}, alpha = {alpha}, {args.students} seeds, same epochs:\n")
            _paired_table(rows["alone"], rows["distilled"], splits, "trained alone", "distilled",
                          "distilled at least as good in")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
