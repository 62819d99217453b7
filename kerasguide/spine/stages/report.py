"""The final "report" stage: report.md and its plots."""

from __future__ import annotations

from kerasguide.report import write_report
from kerasguide.spine.context import RunContext


def stage_report(ctx: RunContext) -> None:
    write_report(ctx.run_dir, plots=ctx.config.report.plots)
