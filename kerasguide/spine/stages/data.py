"""The "data" stage: load and split the data (preprocessing fitted on the training split), seed everything.

It also settles the run's task (`data.task`; "auto" asks the data): the run
goes on with the task, and the loss, metrics and monitored metric the task
takes, written into its config, and config.toml is rewritten when that
changed anything (a regression found in the data says so there). A config
that contradicts the task ends the run here, as bad input.
"""

from __future__ import annotations

import math

import keras

from kerasguide._logging import get_logger
from kerasguide.builders import data_code_record
from kerasguide.data import load_dataset
from kerasguide.spine.context import RunContext
from kerasguide.spine.lifecycle import CONFIG_HEADER
from kerasguide.spine.record import resolved_config
from kerasguide.tasks import apply_task, config_task
from kerasguide.training import make_augmenter, split_seed

logger = get_logger()


def stage_data(ctx: RunContext) -> None:
    cfg = ctx.config
    # Python, NumPy and TensorFlow seeds: the same config reproduces its metrics.
    keras.utils.set_random_seed(cfg.train.seed)
    data_code = data_code_record(cfg)
    if data_code:  # before the import: a data function that fails is recorded too (issue 15)
        ctx.update_run(data_code=data_code)
    ctx.dataset = load_dataset(cfg.data, split_seed(cfg), task=config_task(cfg))
    ds = ctx.dataset
    resolved = apply_task(cfg, ds.task)
    if resolved is not cfg:
        ctx.config = resolved
        ctx.run_dir.write_text("config.toml", resolved_config(resolved, CONFIG_HEADER))
        logger.info("task %s: loss %s, metrics %s, best checkpoint by %s", ds.task, resolved.train.loss,
                    ", ".join(resolved.train.metrics) or "none", resolved.train.monitor_metric)
    if ds.preprocessor is not None:
        ds.preprocessor.save(ctx.run_dir.file("preprocess.npz"))
    ctx.steps_per_epoch = ds.steps("train", cfg.train.batch_size)
    ctx.augmenter = make_augmenter(cfg, ds)  # bad augmentation settings end the run here, before any training
    summary = ds.summary()
    if ctx.augmenter is not None:
        summary["augment"] = ctx.augmenter.active
    ctx.update_run(data=summary, fingerprints=ds.fingerprints())
    what = (f"{ds.num_classes} classes" if ds.task != "regression" else "regression targets: mean "
            f"{float(ds.target_mean.mean()):.4g}, std {math.sqrt(summary['target_variance']):.4g}")
    logger.info(
        "data %s: %d train, %d validation%s, input %s, %s%s",
        ds.name, ds.size("train"), ds.size("validation"),
        f", {ds.size('test')} test" if ds.has_split("test") else "",
        ds.input_shape, what,
        "; augmented: " + ", ".join(f"{k} {v}" for k, v in ctx.augmenter.active.items()) if ctx.augmenter else "",
    )
