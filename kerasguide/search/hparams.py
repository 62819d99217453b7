"""A search's one HParams experiment, so TensorBoard shows its trials as one table (recipe I33).

TensorBoard's HParams plugin takes one experiment (`hparams_config`) per
logdir and pairs it with every session below: each trial's run writes its
session at its `tb/` root (`kerasguide.spine.stages.tensorboard`) and, in a
search, no experiment of its own (`tracking.hparams_experiment = false`).
The search writes the experiment at its directory's root: the searched keys
with their domains from the space (the union of every stage's ranges so
far), the epochs a trial trains (stages and rungs differ), and the train and
validation metrics. `tensorboard --logdir SEARCH_DIR` (`kerasguide board
SEARCH_DIR`) then lists the trials as sessions of that experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboard.plugins.hparams import api as hp

from kerasguide.config import RunConfig
from kerasguide.search.space import ParamRange
from kerasguide.spine.stages.tensorboard import metric_infos, write_hparams_events
from kerasguide.tasks import task_settings

__all__ = ["search_hparams", "write_search_experiment", "EXPERIMENT_SUFFIX"]

EXPERIMENT_SUFFIX = ".hparams"  # the event file's suffix (`write_hparams_events`): replaced, never added to


def _domain(ranges: list[ParamRange]) -> Any:
    """One domain holding every stage's range of a key (None when its choices mix types)."""
    if all(r.kind == "choice" for r in ranges):
        values = list(dict.fromkeys(c for r in ranges for c in r.choices))
        kinds = {bool if isinstance(v, bool) else type(v) for v in values}
        return hp.Discrete(values) if len(kinds) == 1 and kinds <= {bool, int, float, str} else None
    numeric = [r for r in ranges if r.numeric]
    low, high = min(r.low for r in numeric), max(r.high for r in numeric)
    if all(r.kind == "int" for r in numeric):
        return hp.IntInterval(int(low), int(high))
    return hp.RealInterval(float(low), float(high))


def search_hparams(stages_ranges: list[list[ParamRange]], epochs: list[int]) -> list[hp.HParam]:
    """The experiment's hyperparameters: each searched key over all `stages_ranges`, and `train.epochs`."""
    by_key: dict[str, list[ParamRange]] = {}
    for ranges in stages_ranges:
        for r in ranges:
            by_key.setdefault(r.key, []).append(r)
    out = [hp.HParam(key, _domain(ranges)) for key, ranges in by_key.items()]
    if "train.epochs" not in by_key and epochs:
        out.append(hp.HParam("train.epochs", hp.IntInterval(1, max(epochs))))
    return out


def write_search_experiment(search_dir: str | Path, config: RunConfig, stages_ranges: list[list[ParamRange]],
                            epochs: list[int]) -> Path:
    """Write (or replace) the search's experiment in `search_dir`; returns the event file's folder."""
    search_dir = Path(search_dir)
    for old in search_dir.glob(f"events.out.tfevents.*{EXPERIMENT_SUFFIX}"):
        old.unlink()  # the plugin keeps the first experiment it reads: one file, the newest ranges
    metrics = metric_infos(task_settings(config).metrics)
    return write_hparams_events(search_dir, [hp.hparams_config_pb(search_hparams(stages_ranges, epochs), metrics)])
