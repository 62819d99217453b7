"""The "data" stage: load and split the data (preprocessing fitted on the training split), seed everything."""

from __future__ import annotations

import math

import keras

from kerasguide._logging import get_logger
from kerasguide.data import load_dataset
from kerasguide.spine.context import RunContext
from kerasguide.training import split_seed

logger = get_logger()


def stage_data(ctx: RunContext) -> None:
    cfg = ctx.config
    # Python, NumPy and TensorFlow seeds: the same config reproduces its metrics.
    keras.utils.set_random_seed(cfg.train.seed)
    ctx.dataset = load_dataset(cfg.data, split_seed(cfg))
    ds = ctx.dataset
    if ds.preprocessor is not None:
        ds.preprocessor.save(ctx.run_dir.file("preprocess.npz"))
    ctx.steps_per_epoch = math.ceil(len(ds.x_train) / cfg.train.batch_size)
    ctx.update_run(data=ds.summary(), fingerprints=ds.fingerprints())
    logger.info(
        "data %s: %d train, %d validation%s, input %s, %d classes",
        ds.name, len(ds.x_train), len(ds.x_val),
        f", {len(ds.x_test)} test" if ds.x_test is not None else "",
        ds.input_shape, ds.num_classes,
    )
