"""The "model" stage: the precision policy, the strategy, and the model built in its scope."""

from __future__ import annotations

import keras

from kerasguide.builders import is_compiled, user_code_record
from kerasguide.models import build_model
from kerasguide.spine.context import RunContext
from kerasguide.spine.multi_worker import patch_keras_for_multi_worker
from kerasguide.training import make_strategy


def stage_model(ctx: RunContext) -> None:
    cfg = ctx.config
    # The config decides, both ways (`run` restores the caller's policy at the end).
    keras.mixed_precision.set_global_policy("mixed_float16" if cfg.train.mixed_precision else "float32")
    if cfg.train.strategy == "multi_worker":
        patch_keras_for_multi_worker()  # Keras' fit fails on more than one worker without it (multi_worker.py)
    ctx.strategy = make_strategy(cfg)
    ds = ctx.dataset
    if cfg.model.builder is not None:  # before the import: a builder that fails is recorded too (issue 15)
        ctx.update_run(user_code=user_code_record(cfg))
    with ctx.strategy.scope():
        ctx.model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape, target_stats=ds.target_stats)
    ctx.own_compile = is_compiled(ctx.model)  # now: the checks and the LR range test compile it later
    ctx.update_run(
        parameters=int(ctx.model.count_params()),
        own_compile=ctx.own_compile,  # its own optimizer: the config's [optimizer] does not reach it (`fix` reads it)
        user_code=user_code_record(cfg) or False,
        **({"saved_model": cfg.model.saved_model} if cfg.model.saved_model else {}),
    )
