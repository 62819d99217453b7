"""All checks in order, for a model and its data, for a config, and as a pipeline stage."""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

from kerasguide.checks._keras import keras
from kerasguide.checks.data import check_data
from kerasguide.checks.gradients import check_gradients
from kerasguide.checks.initialization import check_initialization
from kerasguide.checks.loss import check_initial_loss, check_regularization
from kerasguide.checks.overfit import check_overfit
from kerasguide.checks.result import CheckResult, all_passed, failure_lines, format_table
from kerasguide.config import ChecksConfig, RunConfig

__all__ = ["CHECK_NAMES", "planned_checks", "run_checks", "write_checks", "read_checks", "check_config",
           "pipeline_stage"]

logger = logging.getLogger("kerasguide")

CHECKS_JSON = "checks.json"
# The order they run in: data first (nothing else means much on bad data),
# the model's state at init, then the checks that compute gradients.
CHECK_NAMES = ("data", "initialization", "initial_loss", "regularization", "overfit", "gradients")


def _unpack(data: Any) -> dict[str, Any]:
    if hasattr(data, "x_train"):
        return {
            "dataset": data,
            "x": data.x_train,
            "y": data.y_train,
            "num_classes": data.num_classes or None,
        }
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        x, y = data[0], data[1]
        return {
            "dataset": None,
            "x": x,
            "y": y,
            "x_val": data[2] if len(data) == 4 else None,
            "y_val": data[3] if len(data) == 4 else None,
            "num_classes": None,
        }
    raise ValueError(
        "Argument `data` must be a kerasguide Dataset or a tuple (x_train, y_train[, x_val, y_val]). "
        f"Received: {type(data).__name__}"
    )


def _output_classes(model: keras.Model) -> int | None:
    """The width of a single-output model's class scores (labels must lie in `0..width-1`), or None."""
    try:
        outputs = getattr(model, "outputs", None)
        if outputs and len(outputs) == 1:
            width = outputs[0].shape[-1]
            return int(width) if width is not None and int(width) > 1 else None
    except (AttributeError, TypeError, ValueError, IndexError):
        pass
    return None


def run_checks(
    model: keras.Model,
    data: Any,
    *,
    loss: Any = None,
    optimizer: Any = None,
    config: ChecksConfig | None = None,
    seed: int = 0,
    skip: tuple[str, ...] | list[str] = (),
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run every sanity check on a model and its data (recipes B5, D12-D15, A2).

    The model's weights and optimizer state are the same afterwards. A check
    that cannot run on an exotic model is reported as a skipped warning
    rather than stopping the others.

    Args:
        model: A freshly initialized Keras model, compiled (or pass `loss`).
        data: A kerasguide `Dataset`, or `(x_train, y_train)` /
            `(x_train, y_train, x_val, y_val)` (class labels are then checked
            against the model's output width).
        loss: The loss; the compiled one if None. Defaults to `None`.
        optimizer: Settings for the overfit check; the compiled one if None.
            Defaults to `None`.
        config: Tolerances and sizes; `ChecksConfig()` if None.
            Defaults to `None`.
        seed: Picks subsets and coordinates. Defaults to `0`.
        skip: Names of checks not to run. Defaults to `()`.
        on_result: Called with each result as it is ready. Defaults to `None`.

    Returns:
        The list of `CheckResult`, in `CHECK_NAMES` order.

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    results = kerasguide.checks.run_checks(model, (x_train, y_train, x_val, y_val))
    print(kerasguide.checks.format_table(results))
    ```
    """
    cfg = config or ChecksConfig()
    unknown = [name for name in skip if name not in CHECK_NAMES]
    if unknown:
        raise ValueError(f"Argument `skip` has unknown checks {unknown}; known: {', '.join(CHECK_NAMES)}")
    d = _unpack(data)
    x, y = d["x"], d["y"]
    calls: dict[str, Callable[[], CheckResult]] = {
        "data": lambda: (
            check_data(d["dataset"])
            if d["dataset"] is not None
            else check_data(x, y, d.get("x_val"), d.get("y_val"), num_classes=_output_classes(model))
        ),
        "initialization": lambda: check_initialization(model, x, examples=cfg.probe_examples, seed=seed),
        "initial_loss": lambda: check_initial_loss(
            model,
            x,
            y,
            loss=loss,
            num_classes=d["num_classes"],
            tolerance=cfg.initial_loss_tolerance,
            examples=cfg.probe_examples * 2,
            seed=seed,
        ),
        "regularization": lambda: check_regularization(
            model, x, y, loss=loss, examples=cfg.probe_examples, seed=seed
        ),
        "overfit": lambda: check_overfit(
            model,
            x,
            y,
            loss=loss,
            optimizer=optimizer,
            examples=cfg.overfit_examples,
            steps=cfg.overfit_steps,
            min_accuracy=cfg.overfit_accuracy,
            seed=seed,
        ),
        "gradients": lambda: check_gradients(
            model, x, y, loss=loss, examples=cfg.gradcheck_examples, coords=cfg.gradcheck_coords, seed=seed
        ),
    }
    results = []
    for name in CHECK_NAMES:
        if name in skip or name in cfg.skip:
            continue
        started = time.perf_counter()
        try:
            result = calls[name]()
        except Exception as error:  # one check's trouble must not hide the others' findings
            logger.warning("check %s could not run: %s: %s", name, type(error).__name__, error)
            logger.debug("%s", traceback.format_exc())
            result = CheckResult(
                name,
                True,
                None,
                None,
                None,
                f"The {name} check could not run on this model ({type(error).__name__}: {error}).",
                "",
                "warning",
                {"skipped": True, "error": f"{type(error).__name__}: {error}"},
            )
        result.details["seconds"] = round(time.perf_counter() - started, 3)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def write_checks(run_dir: Any, results: list[CheckResult]) -> Any:
    """Write checks.json (atomically) into a run directory (a `RunDir` or a path)."""
    from kerasguide.rundir import RunDir

    if not isinstance(run_dir, RunDir):
        run_dir = RunDir(run_dir)
    return run_dir.write_json(CHECKS_JSON, [r.to_dict() for r in results])


def read_checks(run_dir: Any) -> list[CheckResult]:
    """The results in a run directory's checks.json ([] if there is none)."""
    from kerasguide.rundir import RunDir

    if not isinstance(run_dir, RunDir):
        run_dir = RunDir(run_dir)
    return [CheckResult.from_dict(item) for item in (run_dir.read(CHECKS_JSON, default=[]) or [])]


def _checks_inputs(config: RunConfig, dataset, model):
    from kerasguide.models import make_loss, make_optimizer

    lr = config.optimizer.learning_rate
    return make_loss(config), make_optimizer(config.optimizer, 1e-3 if lr == "auto" else float(lr))


def planned_checks(config: ChecksConfig, skip: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The names of the checks `run_checks` will run with these settings, in order."""
    return [name for name in CHECK_NAMES if name not in skip and name not in config.skip]


def check_config(
    config: RunConfig,
    out: str | os.PathLike[str] = "runs",
    config_path: str | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    progress: Any = None,
):
    """What `kerasguide check` does: build a config's data and model, run the checks, record them.

    Writes config.toml, run.json (status `completed` or `checks_failed`),
    checks.json and report.md into a new run directory. Interrupted (Ctrl-C,
    or SIGTERM turned into `KeyboardInterrupt` by the CLI), it records the
    checks done so far in checks.json, marks run.json `interrupted`, writes
    the report and raises the `KeyboardInterrupt` again.

    Args:
        config: The run config.
        out: The folder that receives the run directory. Defaults to `"runs"`.
        config_path: Recorded in run.json. Defaults to `None`.
        on_result: Called with each result as it is ready. Defaults to `None`.
        progress: A `kerasguide.pipeline.Progress`: `start`, `stage`, then a
            `check` and a `step` event (step k of n checks, elapsed, eta) per
            check, and `end`. Defaults to `None` (no events).

    Returns:
        `(run_dir, results)`. Bad data or config raise `ConfigError`.
    """
    from kerasguide.pipeline import (
        Progress,
        StepEvents,
        prepare,
        record_interrupted,
        start_command_run,
        unwrapped_interrupts,
    )
    from kerasguide.report import write_report
    from kerasguide.rundir import new_run_dir, utc_now

    progress = progress or Progress(False)
    started = time.perf_counter()
    dataset, model = prepare(config)
    loss, optimizer = _checks_inputs(config, dataset, model)
    run_dir = new_run_dir(out, config)
    done: list[CheckResult] = []
    try:
        start_command_run(run_dir, config, config_path, "check", dataset, model)
        names = planned_checks(config.checks)
        progress.emit("start", run_dir=str(run_dir.path), name=config.name, kind="check", planned=names)
        progress.emit("stage", stage="checks")
        step = StepEvents(progress, "checks", len(names))

        def record(result: CheckResult) -> None:
            done.append(result)
            progress.emit("check", **result.to_dict())
            step(len(done), name=result.name)
            if on_result is not None:
                on_result(result)

        with unwrapped_interrupts():  # Ctrl-C inside TensorFlow's C++ layer may come out wrapped
            results = run_checks(
                model,
                dataset,
                loss=loss,
                optimizer=optimizer,
                config=config.checks,
                seed=config.train.seed,
                on_result=record,
            )
        write_checks(run_dir, results)
        failed = [r.name for r in results if not r.passed]
        error = f"sanity checks failed: {', '.join(failed)}" if failed else None
        status = "checks_failed" if failed else "completed"
        run_dir.update_run(
            status=status,
            ended=utc_now(),
            seconds=round(time.perf_counter() - started, 3),
            error=error,
            stop_reason="checks_failed" if failed else None,
        )
        write_report(run_dir)
    except KeyboardInterrupt:
        logger.warning("check interrupted with %d check%s done: keeping what was written in %s",
                       len(done), "" if len(done) == 1 else "s", run_dir.path)
        write_checks(run_dir, done)
        record_interrupted(run_dir, started, progress)
        raise
    progress.emit("end", status=status, run_dir=str(run_dir.path), error=error)
    return run_dir, results


def pipeline_stage(ctx) -> None:
    """The pipeline's "checks" stage: run the checks on the fresh model, write checks.json.

    Skipped when `config.checks.enabled` is false. Emits a `check` progress
    event per result and logs the table. When a check fails and
    `checks.stop_on_failure` is set, raises `StopRun("checks_failed", ...)`
    so that training never starts.
    """
    from kerasguide.pipeline import StopRun

    cfg = ctx.config
    if not cfg.checks.enabled:
        return
    loss, optimizer = _checks_inputs(cfg, ctx.dataset, ctx.model)

    def emit(result: CheckResult) -> None:
        ctx.progress.emit("check", **result.to_dict())

    model = ctx.model
    if cfg.train.strategy != "default":
        # Distributed variables cannot be assigned or differentiated outside a
        # replica context: check a plain twin with the same weights (the
        # checks test the model's maths, not its distribution).
        from kerasguide.models import build_model

        ds = ctx.dataset
        model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape)
        model.set_weights(ctx.model.get_weights())
    results = run_checks(
        model,
        ctx.dataset,
        loss=loss,
        optimizer=optimizer,
        config=cfg.checks,
        seed=cfg.train.seed,
        on_result=emit,
    )
    write_checks(ctx.run_dir, results)
    failed = [r.name for r in results if not r.passed]
    ctx.update_run(checks={"passed": not failed, "failed": failed})
    for line in format_table(results).splitlines() + failure_lines(results):
        logger.info("%s", line)
    if failed and cfg.checks.stop_on_failure:
        raise StopRun(
            "checks_failed",
            f"sanity checks failed: {', '.join(failed)} (see checks.json; "
            "set [checks] stop_on_failure = false to train anyway)",
        )
    if not all_passed(results):
        logger.warning(
            "sanity checks failed (%s); training anyway (stop_on_failure = false)", ", ".join(failed)
        )
