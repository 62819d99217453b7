"""The "checks" stage: the sanity checks on the fresh model (recipes B5, D12-D15, A2), checks.json.

Skipped when `checks.enabled` is false. A failed check with
`checks.stop_on_failure` ends the run (`checks_failed`) before training.
"""

from __future__ import annotations

from kerasguide._logging import get_logger
from kerasguide.checks import CheckResult, all_passed, failure_lines, format_table, run_checks, write_checks
from kerasguide.interrupts import StopRun
from kerasguide.models import build_model
from kerasguide.spine.context import RunContext
from kerasguide.training import loss_and_optimizer

logger = get_logger()


def stage_checks(ctx: RunContext) -> None:
    cfg = ctx.config
    if not cfg.checks.enabled:
        return
    if ctx.resume is not None and ctx.resume.done("checks") is not None:
        logger.info("sanity checks: done before the run was interrupted (checks.json)")
        return
    loss, optimizer = loss_and_optimizer(ctx.model, cfg, own=ctx.own_compile)

    done: list[CheckResult] = []

    def emit(result: CheckResult) -> None:
        done.append(result)
        write_checks(ctx.run_dir, done)  # a kill keeps the checks done so far
        ctx.progress.emit("check", **result.to_dict())

    model = ctx.model
    if cfg.train.strategy != "default":
        # Distributed variables cannot be assigned or differentiated outside a
        # replica context: check a plain twin with the same weights (the
        # checks test the model's maths, not its distribution).
        ds = ctx.dataset
        model = build_model(cfg, ds.input_shape, ds.num_classes, ds.image_shape, target_stats=ds.target_stats)
        model.set_weights(ctx.model.get_weights())
    results = run_checks(model, ctx.dataset, loss=loss, optimizer=optimizer, config=cfg.checks,
                         seed=cfg.train.seed, on_result=emit)
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
        logger.warning("sanity checks failed (%s); training anyway (stop_on_failure = false)", ", ".join(failed))
