"""The final "diagnosis" stage: diagnosis.json from what the run recorded, logged and shown in TensorBoard.

Also after a failure, a divergence, an interrupt or failed checks.
"""

from __future__ import annotations

from kerasguide._logging import get_logger
from kerasguide.diagnosis import findings_markdown, write_diagnosis
from kerasguide.monitors import finish_monitors
from kerasguide.spine.context import RunContext
from kerasguide.tb_events import release_writer, shared_writer

logger = get_logger()


def stage_diagnosis(ctx: RunContext) -> None:
    finish_monitors(ctx.callbacks)  # an interrupted fit never ran on_train_end
    findings = write_diagnosis(ctx.run_dir)
    for finding in findings:
        log = logger.warning if finding.severity in ("warning", "error") else logger.info
        log("diagnosis: %s %s: %s", finding.severity, finding.code, finding.advice)
    if not findings:
        logger.info("diagnosis: nothing wrong found")
    writer = shared_writer(ctx.run_dir.tb_dir / "monitor")
    writer.text("diagnosis", findings_markdown(findings), max(1, len(ctx.history)),
                "what kerasguide diagnose found in this run (recipes E16-E20)")
    release_writer(ctx.run_dir.tb_dir / "monitor", force=True)
