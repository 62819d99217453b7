"""The run: data -> model -> checks -> [LR range test] -> fit -> evaluate -> diagnosis -> report.

`run(config)` is what `kerasguide run` does. Each stage writes to the run
directory as it goes, so a run stopped at any point (Ctrl-C, SIGTERM, a
crash, SIGKILL) leaves files every kerasguide tool can read.

Stages that later capabilities plug in (checks, LR range test, schedules,
monitors, diagnosis) are functions taking the `RunContext`; each lives in
its own module and is called from `_STAGES` below.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kerasguide._logging import get_logger, import_tensorflow
from kerasguide.config import ConfigError, RunConfig, load_config
from kerasguide.rundir import RunDir, new_run_dir, utc_now

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasguide.data import Dataset, load_dataset  # noqa: E402
from kerasguide.models import build_model, make_loss, make_metrics, make_optimizer  # noqa: E402

__all__ = ["run", "RunContext", "RunResult", "Progress", "StepEvents", "prepare", "compile_model", "build_for_fit", "make_tf_dataset"]

logger = get_logger()


def run_header(config: RunConfig, config_path: str | None, **fields: Any) -> dict[str, Any]:
    """The fields every command's run.json starts with (`run`, `check`, `lr-find`), plus `fields`."""
    return {
        "format_version": 1,
        **({"kind": fields.pop("kind")} if "kind" in fields else {}),
        "name": config.name,
        "status": "running",
        "started": utc_now(),
        "ended": None,
        "seed": config.train.seed,
        "config_path": config_path,
        "command": " ".join(sys.argv),
        "versions": _versions(),
        **fields,
        "pid": os.getpid(),
    }


def start_command_run(run_dir: RunDir, config: RunConfig, config_path: str | None, kind: str,
                      dataset: Dataset, model: keras.Model) -> None:
    """Open the run directory of a command that is not a whole run (`check`, `lr-find`).

    Writes its config.toml and run.json's opening fields (`run_header`,
    with the data summary, fingerprints and parameter count).
    """
    from kerasguide.config import dump_config

    run_dir.write_text("config.toml", dump_config(config))
    run_dir.update_run(**run_header(config, config_path, kind=kind, data=dataset.summary(),
                                    fingerprints=dataset.fingerprints(), parameters=int(model.count_params())))


def is_interrupt(error: BaseException | None) -> bool:
    """True for Ctrl-C or SIGTERM (the CLI's `KeyboardInterrupt`), also when TensorFlow has wrapped it.

    A signal that arrives while TensorFlow's C++ layer is building an
    exception of its own (seen while it traced a function) comes out as
    `RuntimeError: pybind11::error_already_set: MISMATCH ... REPLACED BY
    KeyboardInterrupt`: still the user's interruption, not a failed run.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, KeyboardInterrupt) or "REPLACED BY KeyboardInterrupt" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def unwrapped_interrupts():
    """Re-raise an interruption that TensorFlow wrapped in another exception as `KeyboardInterrupt`."""
    try:
        yield
    except Exception as error:
        if is_interrupt(error):
            raise KeyboardInterrupt from error
        raise


def record_interrupted(run_dir: RunDir, started: float, progress: Progress | None = None) -> str:
    """Mark a command's run directory `interrupted` (Ctrl-C or SIGTERM), keep what was written, rewrite report.md.

    For the commands that are not a whole run (`check`, `lr-find`); returns
    the error text. report.md is best effort: the record matters more.
    """
    from kerasguide.report import write_report

    error = "interrupted by the user (Ctrl-C or SIGTERM)"
    run_dir.update_run(status="interrupted", ended=utc_now(), seconds=round(time.perf_counter() - started, 3),
                       error=error, stop_reason="interrupted")
    try:
        write_report(run_dir)
    except Exception as report_error:  # noqa: BLE001 - the record matters more than its report
        logger.warning("could not write report.md: %s: %s", type(report_error).__name__, report_error)
    if progress is not None:
        progress.emit("end", status="interrupted", run_dir=str(run_dir.path), error=error)
    return error


class Progress:
    """Progress events: JSON lines on stdout for the desktop app, or nothing.

    Every event is one JSON object per line with an `event` key:
    `start` (run_dir, epochs), `stage` (stage), `step` (epoch, step, steps;
    `check` and `lr-find` send stage, step, steps, elapsed, eta instead, see
    `StepEvents`), `epoch` (epoch, total, metrics, seconds, eta), `check` (a
    check result), `end` (status, run_dir, error), `message` (level, text).
    """

    def __init__(self, json_lines: bool = False, stream=None):
        self.json_lines = json_lines
        self.stream = stream or sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        if not self.json_lines:
            return
        from kerasguide.rundir import _finite, _json_default

        line = json.dumps(_finite(json.loads(json.dumps({"event": event, **fields}, default=_json_default))))
        self.stream.write(line + "\n")
        self.stream.flush()


class StepEvents:
    """`step` events of a job counted in steps, with the time spent and an ETA.

    What `kerasguide check` (a step per check done) and `kerasguide lr-find`
    (a step every few sweep steps) emit: `{"event": "step", "stage": ...,
    "step": k, "steps": n, "elapsed": s, "eta": s}`. A step is emitted once
    `every` steps have passed since the last event, or `seconds` seconds,
    and always the last one.

    Args:
        progress: Where the events go.
        stage: The `stage` field of each event (`"checks"`, `"lr_find"`).
        steps: How many steps the job plans.
        every: Steps between two events. Defaults to `1`.
        seconds: Longest time between two events (while steps come).
            Defaults to `1.0`.
    """

    def __init__(self, progress: Progress, stage: str, steps: int, every: int = 1, seconds: float = 1.0):
        self.progress = progress
        self.stage = stage
        self.steps = max(int(steps), 1)
        self.every = max(int(every), 1)
        self.seconds = seconds
        self.started = time.perf_counter()
        self._last_step = 0
        self._last_time = self.started
        self._first: tuple[int, float] | None = None

    def __call__(self, step: int, **fields: Any) -> None:
        """Step `step` (1-based) is done: emit its event if it is due."""
        if not self.progress.json_lines:
            return
        now = time.perf_counter()
        if self._first is None:
            self._first = (step, now)
        due = step - self._last_step >= self.every or now - self._last_time >= self.seconds or step >= self.steps
        if not due:
            return
        self._last_step, self._last_time = step, now
        elapsed = now - self.started
        # The pace since the first step: that one also paid for tracing and compiling.
        first_step, first_time = self._first
        if step > first_step:
            eta = (now - first_time) / (step - first_step) * max(self.steps - step, 0)
        else:
            eta = elapsed / max(step, 1) * max(self.steps - step, 0)
        self.progress.emit("step", stage=self.stage, step=step, steps=self.steps, elapsed=round(elapsed, 3),
                           eta=round(eta, 3), **fields)


@dataclass
class RunContext:
    """What every stage of a run can read and add to."""

    config: RunConfig
    run_dir: RunDir
    progress: Progress
    dataset: Dataset | None = None
    model: keras.Model | None = None
    strategy: Any = None
    steps_per_epoch: int = 0
    learning_rate: Any = None  # float, or a LearningRateSchedule
    callbacks: list[keras.callbacks.Callback] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "running"
    stop_reason: str | None = None
    verbose: int = 1
    best_checkpoint: Any = None

    def update_run(self, **fields: Any) -> None:
        self.record.update(fields)
        self.run_dir.update_run(**fields)


@dataclass
class RunResult:
    """The outcome of `run`: its directory, status and metrics."""

    run_dir: RunDir
    status: str
    final_metrics: dict[str, float]
    best: dict[str, Any]
    error: str | None = None

    @property
    def path(self) -> Path:
        return self.run_dir.path


# ----------------------------------------------------------------- records
def _versions() -> dict[str, str]:
    from kerasguide import __version__

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "kerasguide": __version__,
    }


def _git_commit(cwd: Path) -> dict[str, Any] | None:
    """The git commit of the working directory (code identity, recipe I32), if any."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


# ------------------------------------------------------------------ pieces
def make_tf_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int
) -> tf.data.Dataset:
    """A cached, shuffled (with the seed), batched, prefetched `tf.data` pipeline."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _strategy(config: RunConfig):
    kind = config.train.strategy
    if kind == "mirrored":
        if not tf.config.list_physical_devices("GPU"):
            # On a CPU-only machine, mirror over two logical CPU devices (possible
            # only before TensorFlow's runtime starts; otherwise use what exists).
            try:
                cpu = tf.config.list_physical_devices("CPU")[0]
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
                )
            except RuntimeError:
                pass
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def steps_per_execution(config: RunConfig, steps_per_epoch: int) -> int:
    """`train.steps_per_execution`, with "auto" = one epoch per call, at most 64.

    Fewer Python round trips per step is most of the speed-up over a plain
    `fit` on small models (see benchmarks/README.md).
    """
    value = config.train.steps_per_execution
    if config.train.strategy != "default":
        # Keras 3.15's multi-step loop fails under MirroredStrategy (a
        # placeholder left unfed in the while loop): one step per call there.
        if value not in ("auto", 1):
            logger.warning("steps_per_execution=%s is not supported with strategy %r; using 1",
                           value, config.train.strategy)
        return 1
    if value == "auto":
        return max(1, min(steps_per_epoch, 64))
    return int(value)


def compile_model(model: keras.Model, config: RunConfig, learning_rate: Any, steps_per_exec: int = 1) -> None:
    """Compile with the config's optimizer, loss and metrics (then see `build_for_fit`)."""
    model.compile(
        optimizer=make_optimizer(config.optimizer, learning_rate),
        loss=make_loss(config),
        metrics=make_metrics(config),
        steps_per_execution=steps_per_exec,
        jit_compile=config.train.jit_compile,
    )


def build_for_fit(model: keras.Model, x: Any, y: Any) -> bool:
    """Create the optimizer's slots and the compiled metrics' state before `fit`.

    Without a distribution strategy, Keras 3 leaves them to the first trace
    of the training step. A `tf.function` that creates variables on its
    first call is traced a second time (the trace that runs must not create
    any), so the first epoch pays for two traces of the step: 0.3-0.6 s on
    the digits MLP here, a tenth of its whole fit. Keras builds the same
    state ahead (`_symbolic_build`) only under a strategy; this does it with
    public calls on a couple of real examples (inference mode, metrics reset
    afterwards, weights untouched). Returns False, and changes nothing that
    matters, for a model it cannot build this way (Keras then builds lazily).
    Under a strategy it does nothing (Keras already does it).

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    build_for_fit(model, x_train[:2], y_train[:2])
    model.fit(x_train, y_train)   # one trace of the training step
    ```
    """
    if tf.distribute.has_strategy() or model.distribute_strategy is not tf.distribute.get_strategy():
        return False
    try:
        x, y = x[:2], y[:2]
        y_pred = model(x, training=False)
        model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        model.compute_metrics(x, y, y_pred)
    except Exception as error:  # an exotic model (own train_step, dict inputs...): Keras builds lazily
        logger.debug("build_for_fit: left to Keras (%s: %s)", type(error).__name__, error)
        return False
    finally:
        model.reset_metrics()
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return True


def split_seed(config: RunConfig) -> int:
    """The data split's seed: `ensemble.split_seed` if set (ensemble members of
    different `train.seed` share one split, recipe J34), else `train.seed`."""
    value = config.ensemble.split_seed
    return config.train.seed if value is None else value


def prepare(config: RunConfig, seed: int | None = None) -> tuple[Dataset, keras.Model]:
    """Load the data and build the model of a config (for checks and tools)."""
    data_seed = split_seed(config) if seed is None else seed
    seed = config.train.seed if seed is None else seed
    keras.utils.set_random_seed(seed)
    dataset = load_dataset(config.data, data_seed)
    model = build_model(config, dataset.input_shape, dataset.num_classes, dataset.image_shape)
    return dataset, model


def initial_learning_rate(config: RunConfig) -> float:
    lr = config.optimizer.learning_rate
    return 1e-3 if lr == "auto" else float(lr)


# ------------------------------------------------------------------ stages
def _stage_data(ctx: RunContext) -> None:
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


def _stage_model(ctx: RunContext) -> None:
    cfg = ctx.config
    # The config decides, both ways (`run` restores the caller's policy at the end).
    keras.mixed_precision.set_global_policy("mixed_float16" if cfg.train.mixed_precision else "float32")
    ctx.strategy = _strategy(cfg)
    ds = ctx.dataset
    with ctx.strategy.scope():
        ctx.model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape)
    ctx.update_run(
        parameters=int(ctx.model.count_params()),
        user_code=cfg.model.builder is not None and {"path": cfg.model.builder[0], "function": cfg.model.builder[1]},
    )


def _stage_checks(ctx: RunContext) -> None:
    """Sanity checks on the fresh model (recipes B5, D12-D15, A2); may StopRun("checks_failed")."""
    from kerasguide.checks.runner import pipeline_stage

    pipeline_stage(ctx)


def _stage_lr_find(ctx: RunContext) -> None:
    """The LR range test (recipe G24), only with `optimizer.learning_rate = "auto"`; sets ctx.learning_rate."""
    from kerasguide.lr_finder import pipeline_stage

    pipeline_stage(ctx)


def _stage_schedule(ctx: RunContext) -> None:
    """Resolve the learning rate (a float or a schedule) and schedule callbacks."""
    from kerasguide.schedules import CycleMomentum, ScheduleLogger, schedule_from_config

    # The range test's choice (lr_find stage), else the config's rate.
    base = ctx.learning_rate if isinstance(ctx.learning_rate, float) else initial_learning_rate(ctx.config)
    lr, callbacks = schedule_from_config(ctx.config, ctx.steps_per_epoch, base)
    ctx.learning_rate = lr
    ctx.callbacks.extend(callbacks)
    # The rate (and a cycled momentum) of every step, to TensorBoard.
    momentum = next((c for c in callbacks if isinstance(c, CycleMomentum)), None)
    ctx.callbacks.append(ScheduleLogger(str(ctx.run_dir.tb_dir / "schedule"), momentum=momentum))


def _stage_compile(ctx: RunContext) -> None:
    spe = steps_per_execution(ctx.config, ctx.steps_per_epoch)
    with ctx.strategy.scope():
        compile_model(ctx.model, ctx.config, ctx.learning_rate, spe)
    build_for_fit(ctx.model, ctx.dataset.x_train, ctx.dataset.y_train)
    ctx.update_run(steps_per_execution=spe, steps_per_epoch=ctx.steps_per_epoch)


def _stage_fit(ctx: RunContext) -> None:
    from kerasguide.callbacks import BestCheckpoint, EpochScalars, JsonProgress, RunRecorder

    cfg = ctx.config
    ds = ctx.dataset
    train = make_tf_dataset(ds.x_train, ds.y_train, cfg.train.batch_size, True, cfg.train.seed)
    val = make_tf_dataset(ds.x_val, ds.y_val, cfg.train.batch_size, False, cfg.train.seed)
    # Stage callbacks (schedules, monitors) come first, so that what they add
    # to `logs` reaches metrics.csv, the checkpoints and TensorBoard.
    callbacks: list[keras.callbacks.Callback] = [*ctx.callbacks, RunRecorder(ctx)]
    ctx.best_checkpoint = BestCheckpoint(ctx.run_dir.checkpoints_dir, monitor=cfg.train.monitor_metric)
    callbacks.append(ctx.best_checkpoint)
    callbacks.append(EpochScalars(ctx.run_dir.tb_dir))  # what Keras' TensorBoard callback writes, faster
    if cfg.train.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.train.early_stopping_patience,
                restore_best_weights=False,
            )
        )
    if ctx.progress.json_lines:
        callbacks.append(JsonProgress(ctx.progress, cfg.train.epochs, ctx.steps_per_epoch))
    verbose = 0 if ctx.progress.json_lines or not ctx.verbose else (1 if sys.stdout.isatty() else 2)
    logger.info("training %d epochs, batch %d, %d steps/epoch", cfg.train.epochs, cfg.train.batch_size, ctx.steps_per_epoch)
    ctx.model.fit(
        train, validation_data=val, epochs=cfg.train.epochs, callbacks=callbacks, verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles, with the seed
    )


def _stage_evaluate(ctx: RunContext) -> None:
    cfg = ctx.config
    ds = ctx.dataset
    final: dict[str, float] = {}
    for prefix, x, y in (("val_", ds.x_val, ds.y_val), ("test_", ds.x_test, ds.y_test)):
        if x is None:
            continue
        values = ctx.model.evaluate(
            make_tf_dataset(x, y, cfg.train.batch_size, False, 0), verbose=0, return_dict=True
        )
        final.update({prefix + k: float(v) for k, v in values.items()})
    if ctx.history:
        last = ctx.history[-1]
        for key in ("loss", "accuracy"):
            if key in last:
                final[key] = float(last[key])
    ctx.update_run(final_metrics=final)


def _hparams(config: RunConfig) -> dict[str, Any]:
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


def _stage_tensorboard(ctx: RunContext) -> None:
    """The config as text and as HParams, so runs compare in TensorBoard (recipe I33)."""
    from tensorboard.plugins.hparams import api as hp

    from kerasguide.config import dump_config

    writer = tf.summary.create_file_writer(str(ctx.run_dir.tb_dir / "train"))
    with writer.as_default():
        tf.summary.text("config", "```toml\n" + dump_config(ctx.config) + "\n```", step=0)
        hp.hparams(_hparams(ctx.config), trial_id=ctx.run_dir.path.name)
    writer.flush()


def _stage_averaging(ctx: RunContext) -> None:
    """Averaged weights and snapshots (recipes J34-J35): `optimizer.ema` validates and
    keeps the EMA weights, `ensemble.average_epochs` averages the last epochs,
    `ensemble.snapshots` keeps the last epochs' checkpoints for a snapshot ensemble."""
    from kerasguide.averaging import averaging_callbacks

    ctx.callbacks.extend(averaging_callbacks(ctx.config))
    ens = ctx.config.ensemble
    if ens.snapshots:
        from kerasguide.ensemble import SnapshotCheckpoints

        ctx.callbacks.append(SnapshotCheckpoints(ctx.run_dir.checkpoints_dir, ens.snapshots, ens.snapshot_every_epochs))


def _stage_mlflow(ctx: RunContext) -> None:
    """Log the finished run to MLflow when KERASGUIDE_MLFLOW asks for it (recipe I33)."""
    from kerasguide.tracking import mlflow_stage

    mlflow_stage(ctx.run_dir)


def _stage_monitors(ctx: RunContext) -> None:
    """Babysitting monitors (recipes E16-E20) and the divergence guard, into `ctx.callbacks`."""
    from kerasguide.monitors import pipeline_stage

    pipeline_stage(ctx)


def _stage_diagnosis(ctx: RunContext) -> None:
    """diagnosis.json from what the run recorded (also after a failure, divergence or failed checks)."""
    from kerasguide.monitors import diagnosis_stage

    diagnosis_stage(ctx)


def _stage_report(ctx: RunContext) -> None:
    from kerasguide.report import write_report

    write_report(ctx.run_dir)


# (name, function). Stages that later issues add slot in here in order.
_STAGES: list[tuple[str, Callable[[RunContext], None]]] = [
    ("data", _stage_data),
    ("model", _stage_model),
    ("checks", _stage_checks),
    ("lr_find", _stage_lr_find),
    ("schedule", _stage_schedule),
    ("compile", _stage_compile),
    ("tensorboard", _stage_tensorboard),
    ("averaging", _stage_averaging),
    ("monitors", _stage_monitors),
    ("fit", _stage_fit),
    ("evaluate", _stage_evaluate),
]
_FINAL_STAGES: list[tuple[str, Callable[[RunContext], None]]] = [
    ("diagnosis", _stage_diagnosis),
    ("report", _stage_report),
    ("mlflow", _stage_mlflow),
]


class StopRun(Exception):
    """Raised by a stage to end the run early with a status (e.g. checks_failed)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _save_last(ctx: RunContext) -> None:
    if ctx.model is None or not ctx.model.built or getattr(ctx.model, "optimizer", None) is None:
        return
    from kerasguide.callbacks import save_model_atomic

    try:
        if ctx.best_checkpoint is not None and getattr(ctx.best_checkpoint, "_pending", None) is not None:
            ctx.best_checkpoint.flush()  # interrupted: on_train_end never ran
        save_model_atomic(ctx.model, ctx.run_dir.checkpoints_dir / "last.keras")
    except Exception as error:  # a failed save must not hide the run's own outcome
        logger.warning("could not save last checkpoint: %s", error)


def run(
    config: RunConfig | str | os.PathLike[str],
    out: str | os.PathLike[str] = "runs",
    json_progress: bool = False,
    verbose: int = 1,
    config_path: str | None = None,
) -> RunResult:
    """Run a config end to end and record everything in a new run directory.

    Args:
        config: A `RunConfig` or the path of a TOML run config.
        out: The folder that receives the run directory. Defaults to `"runs"`.
        json_progress: Emit one JSON object per line on stdout (for the
            desktop app) instead of Keras' progress bar. Defaults to `False`.
        verbose: 0 for no progress bar. Defaults to `1`.
        config_path: Recorded in run.json. Defaults to `None`.

    Returns:
        A `RunResult`; `status` is `completed`, `failed`, `interrupted`,
        `diverged` or `checks_failed`. Bad input raises `ConfigError`.

    Example:

    ```python
    result = kerasguide.run("resources/configs/digits.toml", out="runs")
    print(result.status, result.final_metrics["val_accuracy"])
    ```
    """
    if not isinstance(config, RunConfig):
        config_path = config_path or str(config)
        config = load_config(config)
    run_dir = new_run_dir(out, config)
    progress = Progress(json_progress)
    ctx = RunContext(config=config, run_dir=run_dir, progress=progress, verbose=verbose)
    run_dir.write_text("config.toml", _dump(config))
    ctx.update_run(**run_header(config, config_path, platform=platform.platform(), git=_git_commit(Path.cwd())))
    progress.emit("start", run_dir=str(run_dir.path), epochs=config.train.epochs, name=config.name)
    logger.info("run directory %s", run_dir.path)
    started = time.perf_counter()
    error_text = None
    # A global setting: a mixed-precision run must not leave later runs (search
    # and ensemble members in this process, the caller's own Keras code) mixed.
    policy_before = keras.mixed_precision.global_policy()
    try:
        with unwrapped_interrupts():
            for name, stage in _STAGES:
                progress.emit("stage", stage=name)
                stage(ctx)
        ctx.status = ctx.status if ctx.status not in ("running",) else "completed"
    except StopRun as stop:
        ctx.status = stop.status
        ctx.stop_reason = stop.reason
        error_text = stop.reason
    except KeyboardInterrupt:
        ctx.status = "interrupted"
        error_text = "interrupted by the user (Ctrl-C or SIGTERM)"
        logger.warning("interrupted: keeping what was written in %s", run_dir.path)
    except ConfigError as error:
        ctx.status = "failed"
        error_text = str(error)
        ctx.update_run(status="failed", error=error_text, ended=utc_now())
        raise
    except Exception as error:
        ctx.status = "failed"
        error_text = f"{type(error).__name__}: {error}"
        run_dir.write_text("error.txt", traceback.format_exc())
        logger.error("run failed: %s (traceback in %s)", error_text, run_dir.file("error.txt"))
    finally:
        keras.mixed_precision.set_global_policy(policy_before)
    _save_last(ctx)
    ctx.update_run(
        status=ctx.status,
        ended=utc_now(),
        seconds=round(time.perf_counter() - started, 3),
        error=error_text,
        stop_reason=ctx.stop_reason,
    )
    for name, stage in _FINAL_STAGES:
        try:
            progress.emit("stage", stage=name)
            stage(ctx)
        except KeyboardInterrupt:
            break
        except Exception as error:  # a report failure must not turn a good run bad
            logger.warning("%s stage failed: %s: %s", name, type(error).__name__, error)
    record = run_dir.read_run()
    progress.emit("end", status=ctx.status, run_dir=str(run_dir.path), error=error_text)
    return RunResult(
        run_dir=run_dir,
        status=ctx.status,
        final_metrics=record.get("final_metrics") or {},
        best=record.get("best") or {},
        error=error_text,
    )


def _dump(config: RunConfig) -> str:
    from kerasguide.config import dump_config

    header = "# The resolved run config: every default filled in. Re-run with `kerasguide run` on this file.\n"
    return header + dump_config(config)
