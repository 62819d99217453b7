"""The "tensorboard" stage: the config as text and as HParams, so runs compare in TensorBoard (recipe I33)."""

from __future__ import annotations

import json
from typing import Any

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from kerasguide.config import RunConfig, dump_config
from kerasguide.spine.context import RunContext


def hparams(config: RunConfig) -> dict[str, Any]:
    """The config flattened to scalar HParams (lists as text)."""
    flat: dict[str, Any] = {}
    for section, values in config.to_dict().items():
        if not isinstance(values, dict):
            flat[section] = values
            continue
        for key, value in values.items():
            if not isinstance(value, (bool, int, float, str)):
                value = json.dumps(value, sort_keys=True)  # HParams take scalars only
            flat[f"{section}.{key}"] = value
    return flat


def stage_tensorboard(ctx: RunContext) -> None:
    writer = tf.summary.create_file_writer(str(ctx.run_dir.tb_dir / "train"))
    with writer.as_default():
        tf.summary.text("config", "```toml\n" + dump_config(ctx.config) + "\n```", step=0)
        hp.hparams(hparams(ctx.config), trial_id=ctx.run_dir.path.name)
    writer.flush()
