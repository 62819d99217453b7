"""The config-driven commands that are not a whole run: `kerasguide check` and `kerasguide lr-find`.

Each builds a config's data and fresh model, runs one recipe on them and
records it in a new run directory through the same lifecycle as `run`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from kerasguide.builders import is_compiled
from kerasguide.checks import CheckResult, run_checks, write_checks
from kerasguide.checks.runner import planned_checks
from kerasguide.config import RunConfig
from kerasguide.lr_finder import LRFinderResult, find_on_config, planned_steps, result_record
from kerasguide.progress import Progress, StepEvents
from kerasguide.report import write_report
from kerasguide.rundir import RunDir, new_run_dir
from kerasguide.spine.lifecycle import command_run
from kerasguide.tasks import apply_task
from kerasguide.training import loss_and_optimizer, prepare

__all__ = ["check_config", "lr_find_config"]


def _opening(dataset, model, config: RunConfig | None = None) -> dict[str, Any]:
    """run.json's header fields of a command on a fresh model: the data, its fingerprints, the model's size, and
    the user's builder and data function that made them (`user_code`, `data_code`, with their files' sha256)."""
    from kerasguide.builders import data_code_record, user_code_record

    code = {} if config is None else {"user_code": user_code_record(config), "data_code": data_code_record(config)}
    return {"data": dataset.summary(), "fingerprints": dataset.fingerprints(), "parameters": int(model.count_params()),
            **{key: value for key, value in code.items() if value}}


def _prepare(config: RunConfig, out, config_path: str | None, progress: Progress, kind: str, what: str):
    """`prepare(config)`; when the user's code (a `python:` builder or data source) fails in it, a failed run
    directory records that code (file, sha256) and the error, as `run` does, before the error goes on."""
    from kerasguide.builders import data_code_record, user_code_record

    try:
        return prepare(config)
    except Exception as error:
        code = {"user_code": user_code_record(config), "data_code": data_code_record(config)}
        if not any(code.values()):
            raise  # bad input of the config's own: one line, no run directory (as before)
        run_dir = new_run_dir(out, config)
        with command_run(run_dir, config, config_path, progress, kind=kind, what=what,
                         header={key: value for key, value in code.items() if value}):
            raise error from None
    raise AssertionError("unreachable")  # pragma: no cover - command_run re-raises


def check_config(
    config: RunConfig,
    out: str | os.PathLike[str] = "runs",
    config_path: str | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    progress: Progress | None = None,
) -> tuple[RunDir, list[CheckResult]]:
    """What `kerasguide check` does: build a config's data and model, run the checks, record them.

    Writes config.toml, run.json (status `completed` or `checks_failed`),
    checks.json (rewritten after every check) and report.md into a new run
    directory. Interrupted (Ctrl-C, or SIGTERM turned into
    `KeyboardInterrupt` by the CLI), it keeps the checks done so far, marks
    run.json `interrupted`, writes the report and raises the
    `KeyboardInterrupt` again; another error is recorded as `failed` and
    raised again.

    Args:
        config: The run config.
        out: The folder that receives the run directory. Defaults to `"runs"`.
        config_path: Recorded in run.json. Defaults to `None`.
        on_result: Called with each result as it is ready. Defaults to `None`.
        progress: `start`, `stage`, then a `check` and a `step` event (step k
            of n checks, elapsed, eta) per check, and `end`. Defaults to
            `None` (no events).

    Returns:
        `(run_dir, results)`. Bad data or config raise `ConfigError`.
    """
    progress = progress or Progress(False)
    dataset, model = _prepare(config, out, config_path, progress, "check", "check")
    config = apply_task(config, dataset.task)  # the loss and metrics of the task the data show
    loss, optimizer = loss_and_optimizer(model, config, own=is_compiled(model))
    run_dir = new_run_dir(out, config)
    names = planned_checks(config.checks)
    done: list[CheckResult] = []
    with command_run(run_dir, config, config_path, progress, kind="check", what="check",
                     header=_opening(dataset, model, config), start={"planned": names},
                     final_stages=[("report", lambda: write_report(run_dir))]) as command:
        progress.emit("stage", stage="checks")
        step = StepEvents(progress, "checks", len(names))

        def record(result: CheckResult) -> None:
            done.append(result)
            write_checks(run_dir, done)  # a kill or Ctrl-C keeps the checks done so far
            progress.emit("check", **result.to_dict())
            step(len(done), name=result.name)
            if on_result is not None:
                on_result(result)

        results = run_checks(model, dataset, loss=loss, optimizer=optimizer, config=config.checks,
                             seed=config.train.seed, on_result=record)
        write_checks(run_dir, results)
        failed = [r.name for r in results if not r.passed]
        if failed:
            command.finish("checks_failed", f"sanity checks failed: {', '.join(failed)}", "checks_failed")
    return run_dir, results


def lr_find_config(
    config: RunConfig,
    out: str | os.PathLike[str] = "runs",
    config_path: str | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
    progress: Progress | None = None,
) -> tuple[RunDir, LRFinderResult]:
    """What `kerasguide lr-find` does: the range test on a config's data and fresh model, in a new run directory.

    Writes config.toml, run.json (kind `lr_find`), lr_find.json, lr_find.png,
    tb/lr_find and report.md. Interrupted (Ctrl-C, or SIGTERM turned into
    `KeyboardInterrupt` by the CLI), it marks run.json `interrupted` (the
    model is restored as always), writes the report and raises the
    `KeyboardInterrupt` again; another error is recorded as `failed` and
    raised again.

    Args:
        config: The run config.
        out: The folder that receives the run directory. Defaults to `"runs"`.
        config_path: Recorded in run.json. Defaults to `None`.
        on_step: Called as `on_step(step, lr, loss)` after each sweep step.
            Defaults to `None`.
        progress: `start`, `stage`, a `step` event every few sweep steps
            (step of steps, elapsed, eta, lr, loss; about 20 in all, and at
            least one a second) and `end`. Defaults to `None` (no events).

    Returns:
        `(run_dir, result)`. Bad data or config raise `ConfigError`.
    """
    progress = progress or Progress(False)
    dataset, model = _prepare(config, out, config_path, progress, "lr_find", "LR range test")
    config = apply_task(config, dataset.task)  # the loss and metrics of the task the data show
    run_dir = new_run_dir(out, config)
    lf = config.lr_find
    steps = planned_steps(lf.steps, lf.max_epochs, dataset.steps("train", config.train.batch_size))
    with command_run(run_dir, config, config_path, progress, kind="lr_find", what="LR range test",
                     header=_opening(dataset, model, config), start={"steps": steps},
                     final_stages=[("report", lambda: write_report(run_dir))]) as command:
        progress.emit("stage", stage="lr_find")
        step = StepEvents(progress, "lr_find", steps, every=max(1, steps // 20))

        def each_step(i, lr, loss):
            step(i + 1, lr=lr, loss=loss)
            if on_step is not None:
                on_step(i, lr, loss)

        result = find_on_config(config, dataset, model, None, each_step)
        result.save(run_dir.path)
        try:
            result.write_tensorboard(run_dir.tb_dir / "lr_find")
        except Exception as error:  # noqa: BLE001 - TensorBoard is a view, never a reason to fail
            command.fields["tensorboard_error"] = str(error)
        command.finish("completed" if result.found else "failed", None if result.found else result.reason,
                       lr_find=result_record(result, config))
    return run_dir, result
