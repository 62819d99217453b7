"""Model ensembles (recipe J34): average the predicted probabilities of several models.

"Train multiple independent models, and at test time average their
predictions": the members can be

- the same config trained with different seeds (`train_members`; each a
  recorded run directory, all on one data split),
- the best checkpoints of several run directories, e.g. the top trials of a
  search (`members_from_runs`, which also expands a search directory),
- checkpoints of one run (`SnapshotCheckpoints` keeps the last K epochs or one
  per cycle of a cyclical schedule; `members_from_snapshots`).

`Ensemble` is a Keras model wrapping its members: it predicts, evaluates and
saves as one `.keras` file. `run_ensemble` is what `kerasguide ensemble` does:
it gathers the members, measures each member and the ensemble on the
validation (and test) split, and writes an ensemble directory::

    <out>/<stamp>-<name>-ensemble-<hash>/
        ensemble.json     members, their metrics, the ensemble's, the student's
        ensemble.md       the same as a table
        ensemble.keras    the Ensemble model (takes preprocessed inputs)
        preprocess.npz    the members' shared preprocessing (recipe A2)
        student.keras     with --distill: the distilled single model (J36)
        members/          with --members N: the members' run directories

Example:

```python
ensemble = Ensemble([model_a, model_b, model_c])
probabilities = ensemble.predict(x)          # the mean of the three
ensemble.save("ensemble.keras")
```
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

import kerasguide.initializers  # noqa: F401  (registers custom objects for loading members)
import kerasguide.layers  # noqa: F401
import kerasguide.losses  # noqa: F401
import kerasguide.models  # noqa: F401
from kerasguide.averaging import SnapshotCheckpoints  # re-exported: older callers
from kerasguide.config import ConfigError, RunConfig, config_from_dict, save_config
from kerasguide.data import load_dataset
from kerasguide.distill import distill_ensemble
from kerasguide.io import atomic_write_json, atomic_write_text
from kerasguide.rundir import RunDir, new_run_dir, read_json
from kerasguide.scores import accuracy, average_probabilities, ensemble_metrics, log_loss
from kerasguide.search.ranges import rank_trials
from kerasguide.spine import run
from kerasguide.tracking import ParentRun, finish_parent_run, nest_config, start_parent_run
from kerasguide.training import predict_split, save_model_atomic, split_seed

__all__ = [
    "Ensemble",
    "EnsembleError",
    "MemberFailed",
    "EnsembleResult",
    "Member",
    "SnapshotCheckpoints",
    "average_probabilities",
    "ensemble_metrics",
    "log_loss",
    "accuracy",
    "load_member",
    "members_from_runs",
    "members_from_snapshots",
    "train_members",
    "run_ensemble",
]

logger = logging.getLogger("kerasguide")



class EnsembleError(ConfigError):
    """Members that cannot form an ensemble. Its message is one line meant for a user."""


class MemberFailed(RuntimeError):
    """A member's training run did not complete (the CLI exits 1, not 2)."""


# ------------------------------------------------------------ Keras objects
@keras.saving.register_keras_serializable(package="kerasguide")
class Ensemble(keras.Model):
    """A Keras model whose prediction is the mean of its members' class probabilities.

    Members are any Keras models with the same input and the same number of
    classes. Members that output logits (scores) are put through a softmax
    first (`from_logits=True`); averaging probabilities, not logits, is what
    the recipe asks for. The ensemble saves and loads as one `.keras` file
    (the members' architectures and weights inside).

    Args:
        members: The member models (at least one).
        member_weights: One non-negative weight per member; equal if None.
            Defaults to `None`.
        from_logits: The members output logits, not probabilities.
            Defaults to `False`.

    Example:

    ```python
    ensemble = Ensemble([model_a, model_b])
    ensemble.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ensemble.evaluate(x_val, y_val)
    ensemble.member_predictions(x_val)   # (2, examples, classes)
    ```
    """

    def __init__(
        self,
        members: Sequence[keras.Model],
        member_weights: Sequence[float] | None = None,
        from_logits: bool = False,
        **kwargs: Any,
    ):
        kwargs.setdefault("name", "ensemble")
        super().__init__(**kwargs)
        members = list(members) if isinstance(members, (list, tuple)) else members
        if not isinstance(members, list) or not members:
            raise ValueError(f"Argument `members` must be a non-empty list of Keras models. Received: members={members!r}")
        for i, member in enumerate(members):
            if not isinstance(member, keras.Model):
                raise ValueError(
                    f"Argument `members` must hold Keras models. Received: members[{i}] of type "
                    f"{type(member).__name__}"
                )
        if member_weights is not None:
            w = [float(v) for v in member_weights]
            if len(w) != len(members) or any(v < 0 or not math.isfinite(v) for v in w) or sum(w) <= 0:
                raise ValueError(
                    f"Argument `member_weights` must be {len(members)} non-negative numbers, not all 0. "
                    f"Received: member_weights={list(member_weights)}"
                )
            member_weights = w
        self.members = members
        self.member_weights = member_weights
        self.from_logits = bool(from_logits)

    def member_outputs(self, inputs, training: bool = False):
        """The members' probabilities stacked: a tensor `(members, examples, classes)`."""
        outputs = []
        for member in self.members:
            out = keras.ops.cast(member(inputs, training=training), "float32")
            outputs.append(keras.ops.softmax(out, axis=-1) if self.from_logits else out)
        return keras.ops.stack(outputs, axis=0)

    def call(self, inputs, training: bool = False):
        stacked = self.member_outputs(inputs, training=training)
        if self.member_weights is None:
            return keras.ops.mean(stacked, axis=0)
        w = keras.ops.convert_to_tensor(np.asarray(self.member_weights, "float32") / sum(self.member_weights))
        return keras.ops.tensordot(w, stacked, axes=1)

    def member_predictions(self, x, batch_size: int = 256) -> np.ndarray:
        """NumPy `(members, examples, classes)` probabilities of each member on `x`."""
        x = np.asarray(x)
        parts = [
            keras.ops.convert_to_numpy(self.member_outputs(x[i : i + batch_size]))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(parts, axis=1)

    def build(self, input_shape):
        for member in self.members:
            if not member.built:
                member.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.members[0].compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            members=[keras.saving.serialize_keras_object(m) for m in self.members],
            member_weights=self.member_weights,
            from_logits=self.from_logits,
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> Ensemble:
        config = dict(config)
        config["members"] = [
            keras.saving.deserialize_keras_object(m, custom_objects=custom_objects) for m in config["members"]
        ]
        return cls(**config)


# ------------------------------------------------------------------ members
@dataclass
class Member:
    """One model of an ensemble and where it came from."""

    name: str
    model: keras.Model
    source: Path
    run_dir: Path | None = None
    from_logits: bool = False
    fingerprint: str | None = None  # the validation split's, from run.json


def _load_keras(path: Path) -> keras.Model:
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # a damaged or foreign file: one line, exit 2
        raise EnsembleError(f"{path}: cannot load this checkpoint: {type(error).__name__}: {error}") from None


def _run_config(run_dir: Path) -> RunConfig:
    if not (run_dir / "run.json").is_file() or not (run_dir / "config.toml").is_file():
        raise EnsembleError(f"{run_dir}: not a kerasguide run directory (no run.json and config.toml)")
    return RunDir(run_dir).read_config()


def load_member(run_dir: str | os.PathLike[str], which: str = "best") -> Member:
    """A run directory's `best` (or `last`) checkpoint as an ensemble member."""
    if which not in ("best", "last"):
        raise ValueError(f"Argument `which` must be 'best' or 'last'. Received: which={which!r}")
    path = Path(run_dir)
    if not path.is_dir():
        raise EnsembleError(f"{path}: no such run directory")
    config = _run_config(path)
    checkpoints = path / "checkpoints"
    found = sorted(checkpoints.glob("best-*.keras")) if which == "best" else []
    checkpoint = found[-1] if found else checkpoints / "last.keras"
    if not checkpoint.is_file():
        raise EnsembleError(f"{path}: no checkpoint in {checkpoints} (did the run train?)")
    record = read_json(path / "run.json", default={}) or {}
    return Member(
        name=path.name,
        model=_load_keras(checkpoint),
        source=checkpoint,
        run_dir=path,
        from_logits=config.train.loss != "sparse_categorical_crossentropy",
        fingerprint=(record.get("fingerprints") or {}).get("validation"),
    )


def _search_run_dirs(search_dir: Path, top: int) -> list[Path]:
    """The run directories of a search's `top` best trials (search.json)."""
    state = read_json(search_dir / "search.json", default=None)
    if not isinstance(state, dict):
        raise EnsembleError(f"{search_dir}: search.json cannot be read")
    trials = [t for stage in state.get("stages") or [] for t in stage.get("trials") or []]
    trials = [t for t in trials if t.get("status") == "completed" and t.get("run_dir")]
    direction = state.get("direction") or "max"
    ranked = rank_trials(trials, direction if direction in ("max", "min") else "max")
    if not ranked:
        raise EnsembleError(f"{search_dir}: the search has no completed trials")
    return [(search_dir / t["run_dir"]).resolve() for t in ranked[:top]]


def members_from_runs(paths: Sequence[str | os.PathLike[str]], top: int = 5) -> list[Member]:
    """Members from run directories (their best checkpoints); a search directory
    stands for its `top` best trials (recipe J34: "top models of the search")."""
    run_dirs: list[Path] = []
    for value in paths:
        path = Path(value)
        if path.is_dir() and (path / "search.json").is_file():
            run_dirs.extend(_search_run_dirs(path, top))
        else:
            run_dirs.append(path)
    members = [load_member(p) for p in run_dirs]
    seen: dict[Path, str] = {}
    for member in members:
        key = member.source.resolve()
        if key in seen:
            raise EnsembleError(f"{member.run_dir}: given twice (a member counted twice is no ensemble)")
        seen[key] = member.name
    return members


def members_from_snapshots(directory: str | os.PathLike[str]) -> list[Member]:
    """Members from a run's snapshot checkpoints (`snapshot-epoch=NNN.keras`, recipe J34).

    `directory` is a run directory (its `checkpoints/` is searched) or a
    folder of snapshot files.
    """
    path = Path(directory)
    if not path.is_dir():
        raise EnsembleError(f"{path}: no such run directory")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    files = sorted(folder.glob("snapshot-epoch=*.keras"))
    if not files:
        raise EnsembleError(
            f"{path}: no snapshot checkpoints (train it with [ensemble] snapshots = K to keep the last K epochs)"
        )
    run_dir = path if (path / "run.json").is_file() else None
    from_logits = False
    fingerprint = None
    if run_dir is not None:
        from_logits = _run_config(run_dir).train.loss != "sparse_categorical_crossentropy"
        fingerprint = ((read_json(run_dir / "run.json", default={}) or {}).get("fingerprints") or {}).get("validation")
    return [
        Member(name=f.stem, model=_load_keras(f), source=f, run_dir=run_dir, from_logits=from_logits,
               fingerprint=fingerprint)
        for f in files
    ]


def member_config(config: RunConfig, index: int) -> RunConfig:
    """Member `index` of a seed ensemble: `train.seed + index`, the split of the base seed."""
    member = config.model_copy(deep=True)
    member.ensemble.split_seed = split_seed(config)
    member.train.seed = config.train.seed + index
    suffix = f"-m{index}"
    member.name = config.name[: 64 - len(suffix)] + suffix
    return member


def train_members(
    config: RunConfig, members: int, out: str | os.PathLike[str], json_progress: bool = False, verbose: int = 1,
) -> list[Path]:
    """Train `members` copies of a config with seeds `train.seed + i` on one data split.

    Each member is a recorded run (`kerasguide.pipeline.run`) in `out`.
    Raises `MemberFailed` when a member does not complete.
    """
    if members <= 0:
        raise ValueError(f"Argument `members` must be > 0. Received: members={members}")
    paths = []
    for i in range(members):
        cfg = member_config(config, i)
        logger.info("ensemble member %d/%d: seed %d", i + 1, members, cfg.train.seed)
        result = run(cfg, out=out, json_progress=json_progress, verbose=verbose)
        if result.status != "completed":
            raise MemberFailed(
                f"member {i} (seed {cfg.train.seed}) {result.status}: {result.error or ''} ({result.path})"
            )
        paths.append(result.path)
    return paths


# ---------------------------------------------------------------- the tool
@dataclass
class EnsembleResult:
    """What `run_ensemble` measured and wrote."""

    path: Path
    members: list[Member]
    validation: dict[str, Any]
    test: dict[str, Any] | None = None
    student: dict[str, Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)


def _check_compatible(members: list[Member], dataset) -> None:
    """One data split and one preprocessing for all: else the scores would be wrong."""
    expected = dataset.fingerprints()["validation"]
    for member in members:
        if member.fingerprint is not None and member.fingerprint != expected:
            raise EnsembleError(
                f"{member.run_dir}: trained on another validation split or preprocessing than "
                f"{members[0].run_dir} (fingerprint {member.fingerprint} != {expected}); "
                "members must share one split (same data, preprocess and split seed)"
            )
        shape = tuple(member.model.input_shape[1:])
        if shape != tuple(dataset.input_shape):
            raise EnsembleError(f"{member.source}: takes inputs of shape {shape}, the data have {dataset.input_shape}")
        classes = member.model.output_shape[-1]
        if classes != dataset.num_classes:
            raise EnsembleError(f"{member.source}: predicts {classes} classes, the data have {dataset.num_classes}")


def _base_config(members: list[Member], config: RunConfig | None) -> RunConfig:
    if config is not None:
        return config
    for member in members:
        if member.run_dir is not None:
            return _run_config(member.run_dir)
    raise EnsembleError("the members come with no run directory: give the config of their data")


def _with_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    if not overrides:
        return config
    data = config.to_dict()
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    return config_from_dict(data, "overrides")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else "—"


def _markdown(record: dict[str, Any]) -> str:
    lines = [f"# Ensemble {record['name']}", "", f"{record['kind']}: {len(record['members'])} members", ""]
    for split in ("validation", "test"):
        metrics = record.get(split)
        if not metrics:
            continue
        lines += [f"## {split.title()} ({metrics['examples']} examples)", "",
                  "| model | accuracy | log-loss |", "|---|---|---|"]
        for member in metrics["members"]:
            lines.append(f"| {member['name']} | {_fmt(member['accuracy'])} | {_fmt(member['log_loss'])} |")
        for key, label in (("mean_member", "mean member"), ("best_member", "best member"),
                           ("ensemble", "**ensemble**")):
            m = metrics[key]
            lines.append(f"| {label} | {_fmt(m['accuracy'])} | {_fmt(m['log_loss'])} |")
        lines.append("")
    student = record.get("student")
    if student:
        lines += ["## Distilled student (recipe J36)", "",
                  f"T = {student['temperature']}, alpha = {student['alpha']} (weight of the hard labels), "
                  f"hidden {student['hidden']}, {student['epochs']} epochs, {student['parameters']:,} parameters", "",
                  "| model | val accuracy | val log-loss | test accuracy |", "|---|---|---|---|"]
        for key, label in (("student", "student (distilled)"), ("alone", "same size, trained alone")):
            m = student[key]
            lines.append(f"| {label} | {_fmt(m.get('val_accuracy'))} | {_fmt(m.get('val_log_loss'))} | "
                         f"{_fmt(m.get('test_accuracy'))} |")
        lines.append("")
    return "\n".join(lines)


def run_ensemble(
    config: RunConfig | None = None,
    *,
    members: int | None = None,
    runs: Sequence[str | os.PathLike[str]] | None = None,
    snapshots: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "runs",
    distill: bool = False,
    json_progress: bool = False,
    verbose: int = 1,
    overrides: dict[str, Any] | None = None,
) -> EnsembleResult:
    """Build, measure and save an ensemble; optionally distill it into one student.

    Exactly one source of members: `runs` (run or search directories),
    `snapshots` (one run's snapshot checkpoints), or else `config` trained
    `members` times with seeds `train.seed + i` (`ensemble.members` if None).

    Args:
        config: The run config (for a seed ensemble, and the data). Defaults
            to the first member's recorded config.
        members: How many seeds to train. Defaults to `ensemble.members`.
        runs: Run directories or search directories. Defaults to `None`.
        snapshots: A run directory with snapshot checkpoints. Defaults to `None`.
        out: Folder for the ensemble directory. Defaults to `"runs"`.
        distill: Also train a student on the ensemble's soft targets (J36).
            Defaults to `False`.
        json_progress: Members' runs emit JSON lines. Defaults to `False`.
        verbose: 0 for no progress bars. Defaults to `1`.
        overrides: Dotted config keys set on the config (or on the members'
            recorded config), e.g. `{"ensemble.temperature": 2.0}`.
            Defaults to `None`.

    Returns:
        An `EnsembleResult`. Bad input raises `EnsembleError` (a `ConfigError`).

    Example:

    ```python
    result = run_ensemble(load_config("resources/configs/digits_ensemble.toml"), members=3)
    result.validation["ensemble"]["accuracy"], result.validation["mean_member"]["accuracy"]
    ```
    """
    if runs and snapshots:
        raise EnsembleError("give either run directories or a snapshot run, not both")
    if not runs and snapshots is None and config is None:
        raise EnsembleError("give a config to train, run directories, or a snapshot run")
    if runs:
        gathered = members_from_runs(runs, top=members or (config.ensemble.members if config else 5))
        kind = "run directories"
    elif snapshots is not None:
        gathered = members_from_snapshots(snapshots)
        kind = "snapshots of one run"
    else:
        gathered = []
        kind = "seeds"
    base = _with_overrides(_base_config(gathered, config) if gathered else config, overrides or {})
    name = base.name if base.name.endswith("ensemble") else f"{base.name[:55]}-ensemble"
    path = new_run_dir(out, base.model_copy(update={"name": name})).path
    # The ensemble's MLflow run, open before the members train so that they nest under it.
    parent = start_parent_run(base, path.name, "ensemble", tags={"kerasguide.ensemble_dir": str(path.resolve())})
    try:
        if kind == "seeds":
            count = members or base.ensemble.members
            if count < 1:
                raise EnsembleError(f"--members must be >= 1. Received: {count}")
            run_dirs = train_members(nest_config(base, parent), count, path / "members", json_progress=json_progress, verbose=verbose)
            gathered = [load_member(p) for p in run_dirs]
            base = member_config(base, 0)  # its split seed is the members'
        if len(gathered) < 2:
            logger.warning("an ensemble of %d member is just that model", len(gathered))
        dataset = load_dataset(base.data, split_seed(base))
        _check_compatible(gathered, dataset)
        from_logits = {m.from_logits for m in gathered}
        if len(from_logits) > 1:
            raise EnsembleError("some members output probabilities and others logits; use one loss for all")
        ensemble = Ensemble([m.model for m in gathered], from_logits=from_logits.pop())
        ensemble.build((None, *dataset.input_shape))
        names = [m.name for m in gathered]
        # The whole split, streamed or not (a stream's x_val is only its sample).
        validation = ensemble_metrics(*predict_split(ensemble.member_outputs, dataset, "validation"), names)
        test = None
        if dataset.has_split("test"):
            test = ensemble_metrics(*predict_split(ensemble.member_outputs, dataset, "test"), names)
        save_model_atomic(ensemble, path / "ensemble.keras")
        if dataset.preprocessor is not None:
            dataset.preprocessor.save(path / "preprocess.npz")
        record: dict[str, Any] = {
            "format_version": 1,
            "kind": kind,
            "name": name,
            "members": [
                {"name": m.name, "checkpoint": os.path.relpath(m.source, path), "run_dir":
                 None if m.run_dir is None else os.path.relpath(m.run_dir, path)}
                for m in gathered
            ],
            "data": dataset.summary(),
            "split_seed": split_seed(base),
            "validation": validation,
            "test": test,
            "student": None,
        }
        atomic_write_json(path / "ensemble.json", record)
        student = None
        if distill:
            student = distill_ensemble(ensemble, dataset, base, path, verbose=verbose)
            record["student"] = student
            atomic_write_json(path / "ensemble.json", record)
        atomic_write_text(path / "ensemble.md", _markdown(record) + "\n")
        _copy_config(base, path)
    except BaseException:
        finish_parent_run(parent, "failed")  # its nested members say how far it got
        raise
    _log_ensemble(parent, path, record, gathered)
    return EnsembleResult(path=path, members=gathered, validation=validation, test=test, student=student,
                          record=record)


def _log_ensemble(parent: ParentRun | None, path: Path, record: dict[str, Any], members: list[Member]) -> None:
    """The ensemble's MLflow run: its scores, members (a seed ensemble's are its nested runs), files and model."""
    if parent is None:
        return
    metrics: dict[str, Any] = {}
    for split in ("validation", "test"):
        for key in ("ensemble", "mean_member", "best_member"):
            for name, value in ((record.get(split) or {}).get(key) or {}).items():
                metrics[f"{split}_{key}_{name}"] = value
    student = record.get("student") or {}
    metrics.update({f"student_{k}": v for k, v in (student.get("student") or {}).items()})
    tags = {}
    for i, member in enumerate(members):
        run = (read_json(member.run_dir / "run.json", default={}) or {}) if member.run_dir else {}
        mlflow_id = (run.get("mlflow") or {}).get("run_id")
        tags[f"kerasguide.member.{i}"] = str(member.run_dir or member.source) + (f" (mlflow {mlflow_id})" if mlflow_id else "")
    finish_parent_run(parent, "completed", metrics=metrics, tags=tags,
                      params={"ensemble.kind": record["kind"], "ensemble.size": len(members)},
                      artifacts=[path / name for name in ("ensemble.json", "ensemble.md", "config.toml")],
                      model=path / "ensemble.keras")


def _copy_config(config: RunConfig, path: Path) -> None:
    save_config(config, path / "config.toml")
