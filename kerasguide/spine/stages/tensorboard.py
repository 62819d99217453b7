"""The "tensorboard" stage: the config as text and as HParams, so runs compare in TensorBoard (recipe I33).

What TensorBoard's HParams plugin reads: an experiment (`hparams_config`:
the hyperparameters with their domains, the metrics with their groups) and
one session per run (`session_start_info`: its values). A session is the
folder holding its start info, and a metric `(tag, group)` is looked up in
the scalars of `<session>/<group>`: so the session goes in the run's `tb/`
root, beside the `train/` and `validation/` folders where `EpochScalars`
writes `epoch_loss`, `epoch_accuracy`, ... as Keras' TensorBoard callback
does. A run writes its own experiment there too; a search's trials do not
(`tracking.hparams_experiment = false`): `kerasguide.search.hparams` writes
the search's one experiment at the search directory's root, so
`kerasguide board SEARCH_DIR` shows the trials as one table.
"""

from __future__ import annotations

import json
import time
import types
import typing
from pathlib import Path
from typing import Any

import tensorflow as tf
from pydantic import BaseModel
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.hparams import api as hp
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from kerasguide.config import MAX_FLOAT, MAX_INT, RunConfig, dump_config
from kerasguide.spine.context import RunContext
from kerasguide.tasks import task_settings

__all__ = ["hparams", "schema_hparams", "metric_infos", "write_hparams_events", "stage_tensorboard"]

_NOT_HPARAMS = ("tracking",)  # where a run is recorded is no hyperparameter of it
_BUILDER_HP = "model.hp"  # a builder's own hyperparameters: one HParam each, `model.hp.NAME`, as a search names them


def hparams(config: RunConfig) -> dict[str, Any]:
    """The config flattened to scalar HParams (lists as text), `model.hp` as `model.hp.NAME`."""
    flat: dict[str, Any] = {}
    for section, values in config.to_dict().items():
        if section in _NOT_HPARAMS:
            continue
        if not isinstance(values, dict):
            flat[section] = values
            continue
        for key, value in values.items():
            if f"{section}.{key}" == _BUILDER_HP and isinstance(value, dict):
                flat.update({f"{_BUILDER_HP}.{name}": _scalar(v) for name, v in value.items()})
                continue
            flat[f"{section}.{key}"] = _scalar(value)
    return flat


def _scalar(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)  # HParams take scalars only


def _bounds(info, annotation) -> dict[str, float]:
    found: dict[str, float] = {}
    metadata = list(info.metadata)
    for arg in typing.get_args(annotation) if typing.get_origin(annotation) is typing.Annotated else ():
        metadata += list(getattr(arg, "metadata", [])) + [arg]
    for item in metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(item, attr, None) is not None:
                found[attr] = float(getattr(item, attr))
    return found


def _domain(info) -> Any:
    """The HParams domain a config field's schema allows, or None (text, lists, mixed types)."""
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None
        annotation = args[0]
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation
    if base is bool:
        return hp.Discrete([False, True])
    if typing.get_origin(base) is typing.Literal:
        values = typing.get_args(base)
        return hp.Discrete(list(values)) if all(isinstance(v, str) for v in values) else None
    bounds = _bounds(info, annotation)
    if base is int:
        low = int(bounds.get("ge", bounds.get("gt", -MAX_INT - 1) + 1))
        high = int(bounds.get("le", bounds.get("lt", MAX_INT + 1) - 1))
        return hp.IntInterval(low, high)
    if base is float:
        return hp.RealInterval(bounds.get("ge", bounds.get("gt", -MAX_FLOAT)),
                               bounds.get("le", bounds.get("lt", MAX_FLOAT)))
    return None


def schema_hparams(config: RunConfig) -> list[hp.HParam]:
    """Every setting `hparams(config)` gives, with the domain its schema allows (the same for every run)."""
    names = hparams(config)
    out: list[hp.HParam] = []
    for section, field in RunConfig.model_fields.items():
        if section in _NOT_HPARAMS:
            continue
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            out.append(hp.HParam(section, _domain(field)))
            continue
        for key, info in model.model_fields.items():
            name = f"{section}.{key}"
            if name == _BUILDER_HP:
                out += [hp.HParam(n) for n in names if n.startswith(_BUILDER_HP + ".")]
            elif name in names or not info.is_required():
                out.append(hp.HParam(name, _domain(info)))
    return out


def metric_infos(names: list[str] | tuple[str, ...]) -> list[hp.Metric]:
    """`epoch_NAME` in the train and validation groups, for `loss` and each metric named."""
    out = []
    for name in dict.fromkeys(["loss", *names]):
        for group, label in (("train", name), ("validation", f"val_{name}")):
            out.append(hp.Metric(f"epoch_{name}", group=group, display_name=label))
    return out


def run_metric_names(ctx: RunContext) -> list[str]:
    """The metrics the run logs each epoch (its `logs` keys without `val_`)."""
    if ctx.own_compile and ctx.model is not None:  # the builder's compile: the model knows its metrics
        names = []
        for metric in ctx.model.metrics:
            inner = getattr(metric, "metrics", None)
            names += [m.name for m in inner] if inner else [metric.name]
        if names:
            return names
    return list(task_settings(ctx.config).metrics)


def write_hparams_events(log_dir: str | Path, summaries: list[Any]) -> Path:
    """Write HParams summaries (`hp.hparams_config_pb`, `hp.hparams_pb`) into a new event file in `log_dir`.

    Plain protos through TensorBoard's own writer: no TensorFlow op, and the folder becomes one TensorBoard run.
    """
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(log_dir), filename_suffix=".hparams")
    try:
        for summary in summaries:
            writer.add_event(event_pb2.Event(wall_time=time.time(), step=0, summary=summary))
    finally:
        writer.close()
    return Path(writer.get_logdir())


def stage_tensorboard(ctx: RunContext) -> None:
    writer = tf.summary.create_file_writer(str(ctx.run_dir.tb_dir / "train"))
    with writer.as_default():
        tf.summary.text("config", "```toml\n" + dump_config(ctx.config) + "\n```", step=0)
    writer.flush()
    summaries = []
    if ctx.config.tracking.hparams_experiment:
        summaries.append(hp.hparams_config_pb(schema_hparams(ctx.config), metric_infos(run_metric_names(ctx))))
    # The session at tb/'s root: the plugin finds its metrics in tb/train and tb/validation.
    summaries.append(hp.hparams_pb(hparams(ctx.config), trial_id=ctx.run_dir.path.name))
    write_hparams_events(ctx.run_dir.tb_dir, summaries)
